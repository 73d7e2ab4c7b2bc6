/**
 * The single entry point to @peculiar/x509 for the whole project.
 *
 * - Installs the Reflect metadata shim first (see reflect-shim.ts): importing
 *   '@peculiar/x509' directly in a process where nothing did so crashes with
 *   "tsyringe requires a reflect polyfill".
 * - Binds the library to Node's WebCrypto (W3C Web Cryptography API), so no
 *   other crypto engine is involved.
 *
 * Other modules should `import { x509 } from '../pki/index.js'` (value use);
 * `import type` from '@peculiar/x509' directly is harmless.
 */
import './reflect-shim.js';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(globalThis.crypto);

export { x509 };

// Where the tests find reference material that is not part of this repository: the one place
// that names those paths. Development and CI check it out next to the repository, in
// ../shared (a sibling directory of the checkout); an environment variable points elsewhere.
//
// - the ANS trust list (liste blanche MSSanté) copies: published by the ANS, see
//   https://github.com/ansforge/MSS-liste-blanche — $CADUCEE_TRUST_DATA, else ../shared/data;
// - Dovecot imaptest's scripted tests and their .mbox fixtures (the src/tests directory of
//   https://github.com/dovecot/imaptest, branch release-2.3) — $IMAPTEST_TESTS_DIR, else
//   ../shared/conformance/imaptest/tests.
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository's root directory (this file is test/support/reference-data.ts). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The reference checkout next to the repository. */
function beside(...parts: string[]): string {
  return resolve(REPO_ROOT, '..', 'shared', ...parts);
}

/** Directory of the ANS trust-list copies (listeblanchemssante-*.xml). */
export function trustDataDir(): string {
  return process.env['CADUCEE_TRUST_DATA'] ? resolve(process.env['CADUCEE_TRUST_DATA']) : beside('data');
}

/** Directory of imaptest's scripted tests and .mbox fixtures. */
export function imaptestTestsDir(): string {
  return process.env['IMAPTEST_TESTS_DIR'] ? resolve(process.env['IMAPTEST_TESTS_DIR']) : beside('conformance', 'imaptest', 'tests');
}

// Secrets the operator must be able to read back (TOTP shared secrets: the server computes the
// codes from them) are kept encrypted in the database with AES-256-GCM under a key that lives
// in its own file (`auth.secretsKeyFile`), so that a copy of the database alone reveals none.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const PREFIX = 'v1:';

export class SecretBox {
  private constructor(private readonly key: Buffer) {}

  /** A box over a 32-byte key. */
  static fromKey(key: Buffer): SecretBox {
    if (key.length !== 32) throw new Error(`a secrets key must be 32 bytes, got ${key.length}`);
    return new SecretBox(Buffer.from(key));
  }

  /**
   * The key in `file` (base64, 32 bytes), created with mode 0600 when missing. Errors name the
   * file and what to do.
   */
  static fromFile(file: string): SecretBox {
    if (!existsSync(file)) {
      mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
      // 'wx': never overwrite a key another process created meanwhile.
      try {
        writeFileSync(file, randomBytes(32).toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
      } catch (e: any) {
        if (e.code !== 'EEXIST') throw new Error(`cannot create the secrets key ${file}: ${e.code ?? e.message}`);
      }
    }
    let text: string;
    try {
      text = readFileSync(file, 'utf8').trim();
    } catch (e: any) {
      throw new Error(`cannot read the secrets key ${file} (auth.secretsKeyFile): ${e.code ?? e.message}`);
    }
    const key = Buffer.from(text, 'base64');
    if (key.length !== 32) throw new Error(`the secrets key ${file} must hold 32 bytes in base64 (found ${key.length}); restore it from your backup — without it, enrolled TOTP second factors must be reset`);
    try {
      chmodSync(file, 0o600);
    } catch {
      // Read-only mounts: the file's own permissions are the administrator's choice then.
    }
    return new SecretBox(key);
  }

  /** "v1:" + base64url(12-byte IV ‖ ciphertext ‖ 16-byte GCM tag). `context` is bound as AAD. */
  seal(plain: string, context: string): string {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.key, iv);
    c.setAAD(Buffer.from(context, 'utf8'));
    const body = Buffer.concat([c.update(plain, 'utf8'), c.final()]);
    return PREFIX + Buffer.concat([iv, body, c.getAuthTag()]).toString('base64url');
  }

  /** The plain value; throws when the value was sealed under another key or context, or altered. */
  open(sealed: string, context: string): string {
    if (!sealed.startsWith(PREFIX)) throw new Error('not a sealed value');
    const raw = Buffer.from(sealed.slice(PREFIX.length), 'base64url');
    if (raw.length < 12 + 16) throw new Error('sealed value too short');
    const d = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, 12));
    d.setAAD(Buffer.from(context, 'utf8'));
    d.setAuthTag(raw.subarray(raw.length - 16));
    return Buffer.concat([d.update(raw.subarray(12, raw.length - 16)), d.final()]).toString('utf8');
  }
}

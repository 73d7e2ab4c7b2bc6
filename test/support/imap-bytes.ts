// An IMAP client over implicit TLS that keeps every byte received, for tests that compare
// responses byte for byte (literals holding 8-bit or NUL octets): test/imap-binary-append,
// test/imap-utf8 (against Caducée and against Dovecot alike).
import assert from 'node:assert/strict';
import tls from 'node:tls';

export interface BytesConnection {
  /** Sends `tag parts… CRLF`; resolves with the bytes of the response, asserting a tagged OK. */
  cmd(...parts: (string | Buffer)[]): Promise<Buffer>;
  /** The same, whatever the tagged status. */
  exchange(...parts: (string | Buffer)[]): Promise<{ status: 'OK' | 'NO' | 'BAD'; text: string; bytes: Buffer }>;
  close(): void;
}

/** Connects to 127.0.0.1:port (certificate checked against `ca`, name localhost) and waits for the greeting. */
export async function connectBytes(port: number, ca: string): Promise<BytesConnection> {
  const socket = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' });
  await new Promise<void>((resolve, reject) => (socket.once('secureConnect', () => resolve()), socket.once('error', reject)));
  let received = Buffer.alloc(0);
  let wake: (() => void) | undefined;
  socket.on('data', (d: Buffer) => {
    received = Buffer.concat([received, d]);
    wake?.();
  });
  const waitFor = async (re: RegExp, from: number): Promise<Buffer> => {
    const deadline = Date.now() + 15000;
    for (;;) {
      const out = received.subarray(from);
      if (re.test(out.toString('latin1'))) return out;
      if (Date.now() > deadline) throw new Error(`no ${re} in:\n${out.toString('latin1')}`);
      await new Promise<void>((r) => ((wake = r), setTimeout(r, 200)));
    }
  };
  await waitFor(/^\* OK/m, 0);
  let n = 0;
  const exchange = async (...parts: (string | Buffer)[]) => {
    const tag = `t${++n}`;
    const from = received.length;
    socket.write(Buffer.concat([Buffer.from(`${tag} `), ...parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : p)), Buffer.from('\r\n')]));
    const bytes = await waitFor(new RegExp(`(^|\\r\\n)${tag} (OK|NO|BAD)[^\\r]*\\r\\n$`), from);
    const m = new RegExp(`(?:^|\\r\\n)${tag} (OK|NO|BAD) ?([^\\r]*)\\r\\n$`).exec(bytes.toString('latin1'))!;
    return { status: m[1] as 'OK' | 'NO' | 'BAD', text: m[2], bytes };
  };
  return {
    exchange,
    async cmd(...parts) {
      const r = await exchange(...parts);
      assert.equal(r.status, 'OK', r.bytes.toString('latin1'));
      return r.bytes;
    },
    close: () => socket.destroy(),
  };
}

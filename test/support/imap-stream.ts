// An IMAP client over implicit TLS that keeps the whole response stream, for tests asserting
// the order of untagged responses (test/imap-keywords.test.ts, test/imap-contexts.test.ts).
import assert from 'node:assert/strict';
import tls from 'node:tls';

/** An IMAP connection keeping the whole response stream (`lines`), for ordering assertions. */
export async function connect(port: number, ca: string) {
  const socket = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' });
  await new Promise<void>((resolve, reject) => (socket.once('secureConnect', () => resolve()), socket.once('error', reject)));
  const lines: string[] = [];
  let buf = '';
  let wake: (() => void) | undefined;
  socket.on('data', (d) => {
    buf += d.toString('utf8');
    let i;
    while ((i = buf.indexOf('\r\n')) >= 0) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 2);
    }
    wake?.();
  });
  /** Resolves with the index of the first line at or after `from` matching `pred`. */
  const waitLine = async (pred: (l: string) => boolean, from = 0, timeoutMs = 15000): Promise<number> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = lines.findIndex((l, k) => k >= from && pred(l));
      if (i >= 0) return i;
      if (Date.now() > deadline) throw new Error(`no matching response line after ${timeoutMs} ms; got:\n${lines.slice(from).join('\n')}`);
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 200);
      });
    }
  };
  await waitLine((l) => l.startsWith('* OK'));
  let n = 0;
  return {
    lines,
    waitLine,
    /** Sends a command (raw, may hold a LITERAL+ literal); resolves with its response lines, tagged one last. */
    async cmd(text: string): Promise<string[]> {
      const out = await this.exchange(text);
      assert.match(out.at(-1)!, /^t\d+ OK/, `${text.split('\r\n')[0]}: ${out.join('\n')}`);
      return out;
    },
    /** The same, whatever the status of the tagged response. */
    async exchange(text: string): Promise<string[]> {
      const tag = `t${++n}`;
      const from = lines.length;
      socket.write(`${tag} ${text}\r\n`);
      const end = await waitLine((l) => l.startsWith(`${tag} `), from);
      return lines.slice(from, end + 1);
    },
    /** The tag the next cmd()/exchange() will use. */
    get nextTag(): string {
      return `t${n + 1}`;
    },
    send(text: string) {
      socket.write(text);
    },
    /** Stops reading responses (the server's writes back up, as with a slow client), until resume(). */
    pause() {
      socket.pause();
    },
    resume() {
      socket.resume();
    },
    close() {
      socket.destroy();
    },
  };
}


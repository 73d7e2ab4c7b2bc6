// A line-oriented client connection (SMTP, IMAP, HTTP/1.1 head) whose socket can be upgraded to
// TLS in place (STARTTLS), and the demo listeners opened through it: shared by the TLS tests
// (renegotiation, TLS profile).
import net from 'node:net';
import tls from 'node:tls';

export class Conn {
  private buf = '';
  private wake?: () => void;
  private ended = false;
  constructor(public socket: net.Socket) {
    this.listen();
  }
  private listen() {
    this.socket.on('data', (d: Buffer) => {
      this.buf += d.toString('latin1');
      this.wake?.();
    });
    this.socket.once('close', () => {
      this.ended = true;
      this.wake?.();
    });
    this.socket.on('error', () => {});
  }
  /** Reads up to and including the first line matching `re`; fails if the connection ends first. */
  async lineMatching(re: RegExp): Promise<string> {
    for (;;) {
      let i;
      while ((i = this.buf.indexOf('\r\n')) >= 0) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 2);
        if (re.test(line)) return line;
      }
      if (this.ended) throw new Error(`connection closed before a line matching ${re}`);
      await new Promise<void>((r) => (this.wake = r));
    }
  }
  async send(text: string, re: RegExp): Promise<string> {
    this.socket.write(text + '\r\n');
    return this.lineMatching(re);
  }
  /** STARTTLS: the server's go-ahead has been read; the handshake runs over the same socket. */
  async upgrade(options: tls.ConnectionOptions): Promise<void> {
    this.socket.removeAllListeners('data');
    this.socket.removeAllListeners('close');
    this.socket = await connectTls({ socket: this.socket }, options);
    this.buf = '';
    this.listen();
  }
}

/** A TLS client verifying the demo certificate (name `localhost`) with `options` (ca, versions, ciphers). */
export function connectTls(o: { port: number } | { socket: net.Socket }, options: tls.ConnectionOptions): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ ...('port' in o ? { host: '127.0.0.1', port: o.port } : { socket: o.socket }), servername: 'localhost', ...options }, () => resolve(s));
    // A stapled OCSP response (requestOCSP) arrives during the handshake: kept on the socket.
    if ((options as { requestOCSP?: boolean }).requestOCSP) s.once('OCSPResponse', (r: Buffer) => Object.assign(s, { ocspResponse: r }));
    s.once('error', reject);
  });
}

export const plain = (port: number) =>
  new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });

export interface ListenerPorts {
  mx: number;
  submission: number;
  submissions: number;
  https: number;
  imap: number;
  imaps: number;
}

/**
 * Every TLS listener of an operator: opens a TLS session with `options` and proves it works
 * with one protocol exchange (STARTTLS listeners: the plain greeting and STARTTLS first).
 */
export function tlsListeners(ports: () => ListenerPorts): Record<string, (options: tls.ConnectionOptions) => Promise<Conn>> {
  return {
    'IMAP over implicit TLS': async (options) => {
      const c = new Conn(await connectTls({ port: ports().imaps }, options));
      await c.lineMatching(/^\* OK/);
      await c.send('a1 NOOP', /^a1 OK/);
      return c;
    },
    'IMAP STARTTLS': async (options) => {
      const c = new Conn(await plain(ports().imap));
      await c.lineMatching(/^\* OK/);
      await c.send('a1 STARTTLS', /^a1 OK/);
      await c.upgrade(options);
      await c.send('a2 CAPABILITY', /^a2 OK/);
      return c;
    },
    ...Object.fromEntries(
      (['mx', 'submission'] as const).map((k) => [
        `SMTP STARTTLS (${k})`,
        async (options: tls.ConnectionOptions) => {
          const c = new Conn(await plain(ports()[k]));
          await c.lineMatching(/^220 /);
          await c.send('EHLO client.test', /^250 /);
          await c.send('STARTTLS', /^220 /);
          await c.upgrade(options);
          await c.send('EHLO client.test', /^250 /);
          return c;
        },
      ]),
    ),
    'SMTP submission over implicit TLS': async (options) => {
      const c = new Conn(await connectTls({ port: ports().submissions }, options));
      await c.lineMatching(/^220 /);
      await c.send('EHLO client.test', /^250 /);
      return c;
    },
    HTTPS: async (options) => {
      const c = new Conn(await connectTls({ port: ports().https }, options));
      await c.send('GET /healthz HTTP/1.1\r\nHost: localhost\r\n', /^HTTP\/1\.1 200 /);
      return c;
    },
  };
}

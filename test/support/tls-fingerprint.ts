// What a TLS listener negotiates, as seen by a client probing it (Node's OpenSSL): the protocol
// versions it accepts, its TLS 1.2 and TLS 1.3 suites in its own order of preference, the key
// exchange groups it accepts in its order, the certificate chain it presents and whether it
// staples an OCSP response. Two listeners with the same fingerprint answer every handshake a
// scanner such as testssl.sh makes the same way (test/testssl.test.ts scans one of them).
import tls from 'node:tls';
import type { Conn } from './line-conn.js';

export type OpenListener = (options: tls.ConnectionOptions) => Promise<Conn>;

export interface TlsFingerprint {
  /** Version → the version negotiated when the client offers only it, or 'refused'. */
  versions: Record<string, string>;
  /** TLS 1.2 suites the server picks, in its order: each time among all the client's suites but those already picked. */
  tls12Suites: string[];
  /** TLS 1.3 suites, the same way. */
  tls13Suites: string[];
  /** Key exchange groups accepted for TLS 1.3 and TLS 1.2, in the server's order, the same way. */
  tls13Groups: string[];
  tls12Groups: string[];
  /** SHA-256 fingerprints of the presented chain, leaf first. */
  chain: string[];
  /** An OCSP response stapled on a TLS 1.3 and on a TLS 1.2 handshake. */
  stapled: { tls13: boolean; tls12: boolean };
}

/** Every TLS 1.2-and-below suite this OpenSSL knows, weak ones included (security level 0). */
const ALL12 = 'ALL:COMPLEMENTOFALL:@SECLEVEL=0';
const ALL13 = ['TLS_AES_256_GCM_SHA384', 'TLS_AES_128_GCM_SHA256', 'TLS_CHACHA20_POLY1305_SHA256', 'TLS_AES_128_CCM_SHA256', 'TLS_AES_128_CCM_8_SHA256'];
/** Groups: elliptic curves of RFC 8422 / RFC 8446 §4.2.7 and the finite-field groups of RFC 7919. */
const GROUPS = ['X25519', 'X448', 'P-256', 'P-384', 'P-521', 'ffdhe2048', 'ffdhe3072', 'ffdhe4096', 'ffdhe6144', 'ffdhe8192'];

interface Handshake {
  protocol: string | null;
  cipher: string;
  group?: string;
  chain: string[];
  stapled: boolean;
}

async function handshake(open: OpenListener, options: tls.ConnectionOptions): Promise<Handshake | null> {
  let c: Conn;
  try {
    c = await open({ rejectUnauthorized: false, requestOCSP: true, ...options } as tls.ConnectionOptions);
  } catch {
    return null; // refused: alert, closed connection or no common parameters
  }
  const s = c.socket as tls.TLSSocket;
  try {
    const chain: string[] = [];
    let cert: tls.DetailedPeerCertificate | undefined = s.getPeerCertificate(true);
    while (cert?.fingerprint256 && !chain.includes(cert.fingerprint256)) {
      chain.push(cert.fingerprint256);
      cert = cert.issuerCertificate;
    }
    const key = s.getEphemeralKeyInfo() as { name?: string; type?: string } | null;
    return { protocol: s.getProtocol(), cipher: s.getCipher().name, group: key?.name ?? key?.type, chain, stapled: Boolean((s as { ocspResponse?: Buffer }).ocspResponse?.length) };
  } finally {
    s.destroy();
  }
}

/** The server's order: what it picks from the client's offer, then without that, and so on. */
async function serverOrder(pick: (excluded: string[]) => Promise<string | undefined>): Promise<string[]> {
  const order: string[] = [];
  for (let picked; (picked = await pick(order)) && !order.includes(picked); ) order.push(picked);
  return order;
}

const GROUP_NAMES: Record<string, string> = { 'P-256': 'prime256v1', 'P-384': 'secp384r1', 'P-521': 'secp521r1' };

export async function tlsFingerprint(open: OpenListener): Promise<TlsFingerprint> {
  const versions: Record<string, string> = {};
  for (const v of ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'] as const) {
    const h = await handshake(open, { minVersion: v, maxVersion: v, ciphers: v === 'TLSv1.3' ? undefined : ALL12 });
    versions[v] = h?.protocol ?? 'refused';
  }
  // TLS 1.2: the whole OpenSSL list is offered, then the same without each suite picked.
  const tls12Suites = await serverOrder(async (ex) => (await handshake(open, { maxVersion: 'TLSv1.2', ciphers: [ALL12, ...ex.map((x) => `!${x}`)].join(':') }))?.cipher);
  const tls13Suites = await serverOrder(async (ex) => {
    const rest = ALL13.filter((x) => !ex.includes(x));
    return rest.length ? (await handshake(open, { minVersion: 'TLSv1.3', ciphers: rest.join(':') }))?.cipher : undefined;
  });
  const groupsOf = (v: 'TLSv1.2' | 'TLSv1.3') =>
    serverOrder(async (ex) => {
      const rest = GROUPS.filter((g) => !ex.includes(g));
      if (!rest.length) return undefined;
      const group = (await handshake(open, { minVersion: v, maxVersion: v, ecdhCurve: rest.join(':'), ...(v === 'TLSv1.2' ? { ciphers: ALL12 } : {}) }))?.group;
      return group && (Object.keys(GROUP_NAMES).find((k) => GROUP_NAMES[k] === group) ?? GROUPS.find((g) => g.toLowerCase() === group.toLowerCase()) ?? group);
    });
  const tls13Groups = await groupsOf('TLSv1.3');
  const tls12Groups = await groupsOf('TLSv1.2');
  const h13 = await handshake(open, { minVersion: 'TLSv1.3' });
  const h12 = await handshake(open, { maxVersion: 'TLSv1.2' });
  return { versions, tls12Suites, tls13Suites, tls13Groups, tls12Groups, chain: h13?.chain ?? [], stapled: { tls13: Boolean(h13?.stapled), tls12: Boolean(h12?.stapled) } };
}

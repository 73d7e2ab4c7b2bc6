// Seeded fuzzing of the SASL codecs (src/auth/sasl-codec.ts): XOAUTH2 (Google's format) and
// OAUTHBEARER (RFC 7628 §3.1 with the RFC 5801 §4 GS2 header) client messages, built here from
// the grammars with random fields (then they must parse back to those fields: the round trip),
// mutated (byte flips, ^A/NUL/CR inserted, truncation, invalid UTF-8, oversize), and random.
// Properties: the parsers return a result or null and never throw; a result's token is an
// RFC 6750 b64token, only an OAUTHBEARER authzid
// may hold ^A, and it never holds NUL (RFC 5801 §4); well-formed messages round-trip.
import { parseOauthbearer, parseXoauth2 } from '../../src/auth/sasl-codec.js';
import { FuzzFailure, mutateBytes, Rng } from './rng.js';

const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
const TOKEN_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/';
const NAME_PIECES = ['a', 'jean.dupont', '@', 'mssante.fr', 'é', ',', '=', ' ', '日本', '😀', '+', '%'];

export interface SaslStats {
  iterations: number;
  roundTrips: number;
  parsed: number;
  refused: number;
}

export function newSaslStats(): SaslStats {
  return { iterations: 0, roundTrips: 0, parsed: 0, refused: 0 };
}

function token(rng: Rng): string {
  let t = '';
  const n = rng.range(1, 60);
  for (let i = 0; i < n; i++) t += rng.pick([...TOKEN_CHARS]);
  return t + '='.repeat(rng.int(3));
}

function name(rng: Rng): string {
  let s = '';
  const n = rng.range(1, 6);
  for (let i = 0; i < n; i++) s += rng.pick(NAME_PIECES);
  return s;
}

/** RFC 5801 §4 saslname encoding: "," → "=2C", "=" → "=3D". */
function saslname(s: string): string {
  return s.replace(/=/g, '=3D').replace(/,/g, '=2C');
}

interface Built {
  mech: 'xoauth2' | 'oauthbearer';
  raw: Buffer;
  expect: object;
}

function build(rng: Rng): Built {
  const tok = token(rng);
  const scheme = rng.pick(['Bearer', 'bearer', 'BEARER']) + ' '.repeat(rng.range(1, 3));
  if (rng.bool()) {
    const user = name(rng);
    return { mech: 'xoauth2', raw: Buffer.from(`user=${user}\x01auth=${scheme}${tok}\x01\x01`, 'utf8'), expect: { user, token: tok } };
  }
  const authzid = rng.bool() ? name(rng) : null;
  const pairs: string[] = [`auth=${scheme}${tok}`];
  const expect: Record<string, unknown> = { authzid, token: tok };
  if (rng.bool()) {
    const host = rng.pick(['imap.example', 'mx.mssante.fr', '127.0.0.1', '[::1]']);
    pairs.push(`host=${host}`);
    expect.host = host;
  }
  if (rng.bool()) {
    const port = String(rng.int(65536));
    pairs.push(`port=${port}`);
    expect.port = port;
  }
  for (let i = pairs.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [pairs[i], pairs[j]] = [pairs[j]!, pairs[i]!];
  }
  const gs2 = `${rng.pick(['n', 'y'])},${authzid === null ? '' : `a=${saslname(authzid)}`},`;
  return { mech: 'oauthbearer', raw: Buffer.from(`${gs2}\x01${pairs.map((p) => p + '\x01').join('')}\x01`, 'utf8'), expect };
}

function saslMutate(rng: Rng, b: Buffer): Buffer {
  switch (rng.int(5)) {
    case 0:
      return Buffer.concat([b, Buffer.alloc(rng.bool(0.05) ? 70_000 : rng.range(1, 4), rng.pick([1, 0, 0x61]))]);
    case 1: {
      const at = rng.int(b.length + 1);
      return Buffer.concat([b.subarray(0, at), Buffer.from(rng.pick(['\x01', '\x00', '\r\n', ',', '=', '=2', 'a=', 'p=tls-unique,', '\xff', 'auth=Bearer x\x01'] as const), 'latin1'), b.subarray(at)]);
    }
    default:
      return mutateBytes(rng, b);
  }
}

function check(raw: Buffer, fail: (m: string) => never, stats: SaslStats): [ReturnType<typeof parseXoauth2>, ReturnType<typeof parseOauthbearer>] {
  let x: ReturnType<typeof parseXoauth2>;
  let o: ReturnType<typeof parseOauthbearer>;
  try {
    x = parseXoauth2(raw);
    o = parseOauthbearer(raw);
  } catch (e) {
    return fail(`a parser threw ${e instanceof Error ? e.stack : String(e)}`);
  }
  for (const r of [x, o]) {
    if (r === null) {
      stats.refused++;
      continue;
    }
    stats.parsed++;
    if (!B64TOKEN.test(r.token)) fail(`token ${JSON.stringify(r.token)} is not a b64token`);
    // ^A ends XOAUTH2 fields and OAUTHBEARER kvpairs; an OAUTHBEARER authzid may hold it
    // (RFC 5801 §4 UTF8-1-safe = %x01-2B / %x2D-3C / %x3E-7F) but never NUL.
    for (const [k, v] of Object.entries(r)) {
      if (typeof v !== 'string') continue;
      if ((k === 'authzid' && v.includes('\x00')) || (k !== 'authzid' && v.includes('\x01'))) fail(`field ${k} holds ^A or NUL: ${JSON.stringify(r)}`);
    }
  }
  if (o?.port !== undefined && !/^[0-9]{1,5}$/.test(o.port)) fail(`port ${o.port}`);
  return [x, o];
}

/** One iteration; throws FuzzFailure when a property does not hold. */
export function saslIteration(iseed: number, stats: SaslStats): void {
  const rng = new Rng(iseed);
  stats.iterations++;
  const built = build(rng);
  const fail = (raw: Buffer) => (m: string): never => {
    throw new FuzzFailure(`${m}; input (base64) ${raw.toString('base64').slice(0, 2000)}`, iseed);
  };
  const [x, o] = check(built.raw, fail(built.raw), stats);
  const got = built.mech === 'xoauth2' ? x : o;
  if (JSON.stringify(got) !== JSON.stringify(built.expect)) fail(built.raw)(`round trip: expected ${JSON.stringify(built.expect)}, got ${JSON.stringify(got)}`);
  stats.roundTrips++;
  const mutated = saslMutate(rng, built.raw);
  check(mutated, fail(mutated), stats);
  const random = rng.bytes(rng.range(0, 40));
  check(random, fail(random), stats);
}

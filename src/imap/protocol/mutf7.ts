// Modified UTF-7 for IMAP mailbox names (RFC 3501 §5.1.3; RFC 9051 §5.1.3 keeps it for
// IMAP4rev1 clients, RFC 6855 §3 replaces it by plain UTF-8 once UTF8=ACCEPT is enabled).
// Pure functions, no I/O.

/** Thrown by {@link decodeMutf7} (invalid encoded name) and {@link encodeMutf7} (lone surrogate). */
export class Mutf7Error extends Error {
  constructor(message: string, readonly offset: number) {
    super(message);
    this.name = 'Mutf7Error';
  }
}

// RFC 3501 §5.1.3: modified BASE64 uses "," instead of "/" and no "=" padding.
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,';
const DECODE = new Int8Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) DECODE[ALPHABET.charCodeAt(i)] = i;

/** RFC 3501 §5.1.3: "printable US-ASCII characters, except for "&", represent themselves" (0x20-0x7e). */
function isPrintable(c: number): boolean {
  return c >= 0x20 && c <= 0x7e;
}

function encodeRun(units: number[]): string {
  let out = '';
  let acc = 0;
  let bits = 0;
  for (const u of units) {
    acc = (acc << 16) | u; // UTF-16BE, as in UTF-7 (RFC 2152)
    bits += 16;
    while (bits >= 6) {
      bits -= 6;
      out += ALPHABET[(acc >> bits) & 0x3f];
    }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) out += ALPHABET[(acc << (6 - bits)) & 0x3f]; // zero padding bits, no "="
  return out;
}

/**
 * Encodes a Unicode mailbox name to modified UTF-7 (RFC 3501 §5.1.3). The output is canonical:
 * "&" becomes "&-", every maximal run of non-printable characters is one base64 run.
 * Throws {@link Mutf7Error} on a lone UTF-16 surrogate (not representable).
 */
export function encodeMutf7(name: string): string {
  let out = '';
  let i = 0;
  while (i < name.length) {
    const c = name.charCodeAt(i);
    if (isPrintable(c)) {
      out += c === 0x26 ? '&-' : name[i];
      i++;
      continue;
    }
    const units: number[] = [];
    while (i < name.length && !isPrintable(name.charCodeAt(i))) {
      const u = name.charCodeAt(i);
      if (u >= 0xd800 && u <= 0xdbff) {
        const lo = i + 1 < name.length ? name.charCodeAt(i + 1) : -1;
        if (lo < 0xdc00 || lo > 0xdfff) throw new Mutf7Error(`lone high surrogate at index ${i}`, i);
        units.push(u, lo);
        i += 2;
        continue;
      }
      if (u >= 0xdc00 && u <= 0xdfff) throw new Mutf7Error(`lone low surrogate at index ${i}`, i);
      units.push(u);
      i++;
    }
    out += '&' + encodeRun(units) + '-';
  }
  return out;
}

/**
 * Decodes a modified UTF-7 mailbox name (RFC 3501 §5.1.3) with strict validation; throws
 * {@link Mutf7Error} for: a character outside 0x20-0x7e, an unterminated base64 run, a
 * character outside the modified base64 alphabet, a run whose length leaves 6 or more bits
 * or non-zero padding bits, a printable US-ASCII character encoded in base64 ("MUST NOT be
 * used to represent any printing US-ASCII character"), a null shift ("-&" between two runs),
 * or invalid UTF-16 (unpaired surrogates). Valid input satisfies encodeMutf7(decodeMutf7(s)) === s.
 */
export function decodeMutf7(encoded: string): string {
  let out = '';
  let i = 0;
  let lastRunEnd = -2; // index just after the "-" closing the previous base64 run
  while (i < encoded.length) {
    const c = encoded.charCodeAt(i);
    if (!isPrintable(c)) {
      throw new Mutf7Error(`invalid character U+${c.toString(16).padStart(4, '0').toUpperCase()} at index ${i} (only 0x20-0x7e allowed)`, i);
    }
    if (c !== 0x26) {
      out += encoded[i];
      i++;
      continue;
    }
    const end = encoded.indexOf('-', i + 1);
    if (end === -1) throw new Mutf7Error(`unterminated base64 run starting at index ${i} (names MUST end in US-ASCII)`, i);
    if (end === i + 1) {
      out += '&'; // "&-" while in US-ASCII means "&"
      i = end + 1;
      continue;
    }
    if (i === lastRunEnd) throw new Mutf7Error(`null shift at index ${i - 1} ("-&" between two base64 runs is not permitted)`, i - 1);
    let acc = 0;
    let bits = 0;
    const units: number[] = [];
    for (let k = i + 1; k < end; k++) {
      const ch = encoded.charCodeAt(k);
      const v = ch < 128 ? DECODE[ch] : -1;
      if (v < 0) throw new Mutf7Error(`invalid modified base64 character "${encoded[k]}" at index ${k}`, k);
      acc = ((acc << 6) | v) & 0xffffff;
      bits += 6;
      if (bits >= 16) {
        bits -= 16;
        units.push((acc >> bits) & 0xffff);
      }
    }
    if (bits >= 6) throw new Mutf7Error(`truncated base64 run at index ${i + 1} (length ${end - i - 1} leaves ${bits} bits)`, i + 1);
    if ((acc & ((1 << bits) - 1)) !== 0) throw new Mutf7Error(`non-zero padding bits in base64 run at index ${i + 1}`, i + 1);
    for (let k = 0; k < units.length; k++) {
      const u = units[k];
      if (isPrintable(u)) throw new Mutf7Error(`printable US-ASCII character "${String.fromCharCode(u)}" encoded in base64 run at index ${i + 1}`, i + 1);
      if (u >= 0xd800 && u <= 0xdbff) {
        const lo = units[k + 1];
        if (lo === undefined || lo < 0xdc00 || lo > 0xdfff) throw new Mutf7Error(`unpaired high surrogate in base64 run at index ${i + 1}`, i + 1);
        k++;
      } else if (u >= 0xdc00 && u <= 0xdfff) {
        throw new Mutf7Error(`unpaired low surrogate in base64 run at index ${i + 1}`, i + 1);
      }
    }
    for (let k = 0; k < units.length; k += 4096) out += String.fromCharCode(...units.slice(k, k + 4096));
    i = end + 1;
    lastRunEnd = i;
  }
  return out;
}

/** True when `encoded` is valid modified UTF-7 (see {@link decodeMutf7}). */
export function isValidMutf7(encoded: string): boolean {
  try {
    decodeMutf7(encoded);
    return true;
  } catch {
    return false;
  }
}

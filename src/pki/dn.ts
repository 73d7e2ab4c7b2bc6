// Distinguished names (subject DNs of operator certificates) as written in the
// MSSanté trust list and as presented by peers.
//
// String form: RFC 4514 ("LDAP: String Representation of Distinguished Names"),
// read leniently the way RFC 4514 §3 allows ("Implementations MAY recognize other DN
// string representations"): the RFC 2253 §4 forms (quoted values, `;` separators, spaces
// around `,` `;` `=`, `OID.` prefixes) are accepted because the ANS list contains them.
//
// Comparison: attribute by attribute, same RDN order, attribute types compared by
// their canonical short name (OIDs and long names mapped), values compared after an
// RFC 4518-style string preparation (see prepareValue): NFKC, case folding, mapping of
// exotic spaces/invisible characters, trimming and collapsing runs of spaces. This is
// what X.520 caseIgnoreMatch (RFC 4517 §4.2.11) with RFC 4518 preparation does for the
// DirectoryString attributes found in operator certificates (CN, O, OU, L, ST, C…).
// It deliberately does NOT treat the characters `"` inside an unquoted value as quotes:
// `O=CRLCC "PAUL STRAUSS"` keeps its quotes as part of the value.

/** One attribute type and value (RFC 4514 §3 attributeTypeAndValue). */
export interface Ava {
  /** Canonical attribute type: short name (CN, O, OU, …), or dotted OID when unknown. */
  type: string;
  /**
   * Unescaped value. For a `#hexstring` value that is not a BER-encoded character
   * string this is `#` followed by the lower-case hex, and `binary` is true.
   */
  value: string;
  binary?: boolean;
}

/** A relative distinguished name: one or more AVAs (multi-valued when joined by `+`). */
export type Rdn = Ava[];

export class DnError extends Error {
  override name = 'DnError';
  constructor(
    message: string,
    readonly input: string,
    readonly position?: number,
  ) {
    super(message);
  }
}

// RFC 4519 §2 / RFC 5280 §4.1.2.4 attribute types, keyed by lower-case alias or OID.
const TYPE_ALIASES: Record<string, string> = {};
function alias(canonical: string, oid: string, ...names: string[]): void {
  TYPE_ALIASES[oid] = canonical;
  TYPE_ALIASES[canonical.toLowerCase()] = canonical;
  for (const n of names) TYPE_ALIASES[n.toLowerCase()] = canonical;
}
alias('CN', '2.5.4.3', 'commonName');
alias('SN', '2.5.4.4', 'surname');
alias('SERIALNUMBER', '2.5.4.5', 'serialNumber');
alias('C', '2.5.4.6', 'countryName');
alias('L', '2.5.4.7', 'localityName');
alias('ST', '2.5.4.8', 'stateOrProvinceName', 'S'); // `S` is Microsoft's spelling
alias('STREET', '2.5.4.9', 'streetAddress');
alias('O', '2.5.4.10', 'organizationName');
alias('OU', '2.5.4.11', 'organizationalUnitName');
alias('T', '2.5.4.12', 'title');
alias('POSTALCODE', '2.5.4.17');
alias('GN', '2.5.4.42', 'givenName');
alias('INITIALS', '2.5.4.43');
alias('DNQUALIFIER', '2.5.4.46');
alias('PSEUDONYM', '2.5.4.65');
alias('ORGANIZATIONIDENTIFIER', '2.5.4.97');
alias('DC', '0.9.2342.19200300.100.1.25', 'domainComponent'); // RFC 4519 §2.4
alias('UID', '0.9.2342.19200300.100.1.1', 'userId'); // RFC 4519 §2.39
alias('E', '1.2.840.113549.1.9.1', 'emailAddress', 'email'); // PKCS #9

const DESCR_RE = /^[A-Za-z][A-Za-z0-9-]*$/; // RFC 4512 §1.4 descr = keystring
const NUMERICOID_RE = /^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+$/; // RFC 4512 §1.4 numericoid

/** Maps an attribute type (short name, long name, `OID.`-prefixed or dotted OID) to its canonical form. */
export function canonicalAttributeType(type: string): string {
  let t = type.trim();
  if (/^oid\./i.test(t)) t = t.slice(4); // RFC 2253 §4: "OID.2.5.4.3"
  const known = TYPE_ALIASES[t.toLowerCase()];
  if (known) return known;
  if (NUMERICOID_RE.test(t)) return t;
  if (DESCR_RE.test(t)) return t.toUpperCase(); // RFC 4512 §1.4: descriptors are case-insensitive
  throw new DnError(`invalid attribute type "${type}"`, type);
}

const SPACE_RE = /[ \t\r\n]/;
const isSpace = (c: string | undefined): boolean => c !== undefined && SPACE_RE.test(c);
const isHex = (c: string | undefined): boolean => c !== undefined && /^[0-9A-Fa-f]$/.test(c);
// RFC 4514 §3: characters that may follow a backslash as themselves.
const ESCAPABLE = new Set([' ', '"', '#', '+', ',', ';', '<', '=', '>', '\\']);
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Parses an RFC 4514 distinguished name string into RDNs, in string order (the most
 * specific RDN, usually CN, first). The empty string is the empty DN (RFC 4514 §3).
 * Throws DnError on malformed input.
 */
export function parseDn(input: string): Rdn[] {
  if (typeof input !== 'string') throw new DnError('a DN must be a string', String(input));
  const s = input;
  const n = s.length;
  let i = 0;
  const fail = (msg: string, at = i): never => {
    throw new DnError(`malformed DN "${s}": ${msg} at position ${at}`, s, at);
  };
  const skipSpaces = (): void => {
    while (i < n && isSpace(s[i])) i++;
  };
  const describe = (at: number): string => (at >= n ? 'end of input' : `"${s[at]}"`);

  const parseType = (): string => {
    skipSpaces();
    const start = i;
    while (i < n && /[A-Za-z0-9.\-]/.test(s[i]!)) i++;
    const raw = s.slice(start, i);
    if (raw === '') fail(`expected an attribute type, found ${describe(i)}`);
    try {
      return canonicalAttributeType(raw);
    } catch {
      return fail(`invalid attribute type "${raw}"`, start);
    }
  };

  // An attribute value as it is read: the decoded text, and the hexpair bytes not decoded yet
  // (RFC 4514 §3: hexpair escapes are UTF-8 bytes; consecutive ones form one sequence).
  interface ValueText {
    text: string;
    bytes: number[];
  }

  // Decodes the pending hexpair bytes (if any) onto the text; true when there were some.
  const flushBytes = (v: ValueText, at: number): boolean => {
    if (!v.bytes.length) return false;
    try {
      v.text += utf8.decode(Uint8Array.from(v.bytes));
    } catch {
      fail('hex escapes do not form valid UTF-8', at);
    }
    v.bytes.length = 0;
    return true;
  };

  // Reads one backslash escape starting at s[i] === '\\': a hexpair byte stays pending, an escaped
  // special is appended (after the pending bytes). True when the text grew.
  const readEscape = (v: ValueText): boolean => {
    const at = i;
    const c1 = s[i + 1];
    if (isHex(c1) && isHex(s[i + 2])) {
      v.bytes.push(parseInt(s.slice(i + 1, i + 3), 16)); // RFC 4514 §3 hexpair
      i += 3;
      return false;
    }
    if (c1 !== undefined && ESCAPABLE.has(c1)) {
      i += 2;
      flushBytes(v, at);
      v.text += c1; // RFC 4514 §3 escaped special
      return true;
    }
    return fail(c1 === undefined ? 'dangling backslash' : `invalid escape "\\${c1}"`, at);
  };

  const parseHexValue = (): Ava['value'] | { text: string } => {
    // RFC 4514 §2.4 / §3: '#' hexstring is the BER encoding of the value.
    const start = i;
    i++;
    const hexStart = i;
    while (i < n && isHex(s[i])) i++;
    const hex = s.slice(hexStart, i).toLowerCase();
    if (hex.length === 0 || hex.length % 2 !== 0) fail('a "#" value needs an even, non-zero number of hex digits', start);
    const text = decodeBerString(hex);
    return text === undefined ? `#${hex}` : { text };
  };

  const parseQuotedValue = (): string => {
    // RFC 2253 §4 quoted value (from RFC 1779): specials need no escaping inside.
    const start = i;
    i++;
    const v: ValueText = { text: '', bytes: [] };
    for (;;) {
      if (i >= n) fail('unterminated quoted value', start);
      const c = s[i]!;
      if (c === '"') {
        flushBytes(v, i);
        i++;
        return v.text;
      }
      if (c === '\\') {
        readEscape(v);
        continue;
      }
      flushBytes(v, i);
      v.text += c;
      i++;
    }
  };

  const parseStringValue = (): string => {
    // RFC 4514 §3 string; unescaped leading spaces were skipped by the caller and
    // unescaped trailing spaces are dropped (RFC 4514 requires them escaped, so an
    // unescaped one is separator padding, as in "CN=host ,OU=...").
    const v: ValueText = { text: '', bytes: [] };
    let keep = 0;
    while (i < n) {
      const c = s[i]!;
      if (c === ',' || c === ';' || c === '+') break;
      if (c === '\\') {
        if (readEscape(v)) keep = v.text.length;
        continue;
      }
      if (flushBytes(v, i)) keep = v.text.length;
      if (c === '\u0000') fail('unescaped NUL character'); // RFC 4514 §3: NULL must be escaped
      v.text += c;
      if (!isSpace(c)) keep = v.text.length;
      i++;
    }
    if (flushBytes(v, i)) keep = v.text.length;
    return v.text.slice(0, keep);
  };

  const parseAva = (): Ava => {
    const type = parseType();
    skipSpaces();
    if (s[i] !== '=') fail(`expected "=" after attribute type ${type}, found ${describe(i)}`);
    i++;
    skipSpaces();
    let ava: Ava;
    if (s[i] === '#') {
      const v = parseHexValue();
      ava = typeof v === 'string' ? { type, value: v, binary: true } : { type, value: v.text };
      skipSpaces();
    } else if (s[i] === '"') {
      ava = { type, value: parseQuotedValue() };
      skipSpaces();
    } else {
      ava = { type, value: parseStringValue() };
    }
    if (i < n && s[i] !== ',' && s[i] !== ';' && s[i] !== '+') {
      fail(`unexpected ${describe(i)} after the value of ${type}`);
    }
    return ava;
  };

  skipSpaces();
  if (i === n) return []; // RFC 4514 §3: the empty DN
  const rdns: Rdn[] = [];
  for (;;) {
    const rdn: Rdn = [parseAva()];
    while (s[i] === '+') {
      i++; // RFC 4514 §3: multi-valued RDN
      rdn.push(parseAva());
    }
    rdns.push(rdn);
    if (i >= n) break;
    // RFC 4514 §3 COMMA; RFC 2253 §4: implementations MUST also accept ";".
    i++;
    skipSpaces();
    if (i >= n) fail('empty RDN after the last separator');
  }
  return rdns;
}

// Decodes the BER encoding of a character-string value (RFC 4514 §2.4); returns
// undefined for anything else, which is then compared as opaque bytes.
function decodeBerString(hex: string): string | undefined {
  const b = Buffer.from(hex, 'hex');
  if (b.length < 2) return undefined;
  const tag = b[0]!;
  let len = b[1]!;
  let off = 2;
  if (len & 0x80) {
    const k = len & 0x7f;
    if (k === 0 || k > 2 || b.length < 2 + k) return undefined;
    len = k === 1 ? b[2]! : (b[2]! << 8) | b[3]!;
    off = 2 + k;
  }
  if (off + len !== b.length) return undefined;
  const body = b.subarray(off);
  try {
    switch (tag) {
      case 0x0c: // UTF8String
        return utf8.decode(body);
      case 0x13: // PrintableString
      case 0x16: // IA5String
        return body.toString('ascii');
      case 0x14: // TeletexString, read as Latin-1 as most implementations do
        return body.toString('latin1');
      case 0x1e: {
        // BMPString, UTF-16BE
        if (body.length % 2) return undefined;
        const swapped = Buffer.from(body);
        swapped.swap16();
        return swapped.toString('utf16le');
      }
      default:
        return undefined;
    }
  } catch {
    return undefined;
  }
}

// RFC 4518 §2.2: characters mapped to nothing (soft hyphen, zero-width characters,
// variation selectors, BOM) and characters mapped to SPACE (all other white space).
const MAP_TO_NOTHING = /[\u00AD\u034F\u180B-\u180E\u200B-\u200D\u2060\uFE00-\uFE0F\uFEFF]/g;
const MAP_TO_SPACE = /[\t\n\u000B\f\r\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]/g;

/**
 * RFC 4518-style preparation of a value for caseIgnoreMatch:
 * §2.2 map (invisible characters removed, white space mapped to SPACE, case folded with
 * toUpperCase().toLowerCase(), which approximates RFC 3454 table B.2, e.g. ß → ss),
 * §2.3 NFKC normalization, §2.6.1 insignificant space handling (trim, collapse runs of
 * spaces to one). §2.4 prohibition and §2.5 bidi checks are not applied.
 */
export function prepareValue(value: string): string {
  const mapped = value.replace(MAP_TO_NOTHING, '').replace(MAP_TO_SPACE, ' ').toUpperCase().toLowerCase();
  return mapped.normalize('NFKC').replace(/ {2,}/g, ' ').trim();
}

/** RFC 4514 §2.4: escapes a value for the string form. */
const hex2 = (n: number): string => n.toString(16).toUpperCase().padStart(2, '0');
export function escapeDnValue(value: string): string {
  let out = '';
  const last = value.length - 1;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i]!;
    const code = ch.charCodeAt(0);
    if (ch === '"' || ch === '+' || ch === ',' || ch === ';' || ch === '<' || ch === '>' || ch === '\\') {
      out += '\\' + ch; // RFC 4514 §2.4: special characters
    } else if (i === 0 && (ch === ' ' || ch === '#')) {
      out += '\\' + ch; // RFC 4514 §2.4: leading space or '#'
    } else if (i === last && ch === ' ') {
      out += '\\ '; // RFC 4514 §2.4: trailing space
    } else if (code < 0x20 || code === 0x7f) {
      // RFC 4514 §2.4 requires NUL as \00; other controls are escaped as
      // hexpairs too (allowed by the `pair` production) so DNs stay one-line
      // and safe to log.
      out += '\\' + hex2(code);
    } else {
      out += ch;
    }
  }
  return out;
}

/** RFC 4514 §2: formats RDNs as a string, in the given order, types as stored. */
export function formatDn(rdns: readonly Rdn[]): string {
  return rdns
    .map((rdn) => rdn.map((a) => `${a.type}=${a.binary ? a.value : escapeDnValue(a.value)}`).join('+'))
    .join(',');
}

/**
 * Canonical key of a DN, for Map/Set lookups: canonical types, prepared values
 * (prepareValue), RFC 4514 escaping, the AVAs of a multi-valued RDN sorted (their order
 * is not significant, RFC 4514 §2.2), RDN order kept. Two DNs are dnEquals iff their
 * keys are equal. Throws DnError on a malformed DN string.
 */
export function normalizeDn(dn: string | readonly Rdn[]): string {
  const rdns = typeof dn === 'string' ? parseDn(dn) : dn;
  return rdns
    .map((rdn) =>
      rdn
        .map((a) => {
          const type = canonicalAttributeType(a.type);
          const value = a.binary ? a.value.toLowerCase() : escapeDnValue(prepareValue(a.value));
          return `${type}=${value}`;
        })
        .sort()
        .join('+'),
    )
    .join(',');
}

/**
 * True when both DNs have the same RDNs in the same order, attribute types compared
 * case-insensitively (and OIDs/long names mapped to short names), values compared after
 * prepareValue (trimmed, internal runs of white space collapsed, case-insensitive, NFKC).
 * A malformed DN equals nothing: the function returns false instead of throwing.
 */
export function dnEquals(a: string | readonly Rdn[], b: string | readonly Rdn[]): boolean {
  try {
    return normalizeDn(a) === normalizeDn(b);
  } catch (err) {
    if (err instanceof DnError) return false;
    throw err;
  }
}

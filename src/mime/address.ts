// Address list parsing and writing: a port of Dovecot 2.3 lib-mail/message-address.c (parse with
// MESSAGE_ADDRESS_PARSE_FLAG_FILL_MISSING and non-strict dots; write = message_address_write()).
// Dovecot's exact degradations (MISSING_MAILBOX, MISSING_DOMAIN, SYNTAX_ERROR, INVALID_ROUTE,
// "addr (Real Name)" comments as display names, groups as start/end markers) are what ENVELOPE,
// SORT and SEARCH FROM/TO/CC/BCC must reproduce, so nodemailer's addressparser is not used here.
import { isAtext, Rfc822Parser } from './rfc822.js';

export interface RawAddress {
  name: string | null;
  route: string | null;
  mailbox: string | null;
  domain: string | null;
  invalid: boolean;
}

function emptyAddr(): RawAddress {
  return { name: null, route: null, mailbox: null, domain: null, invalid: false };
}

class AddressParser {
  readonly p: Rfc822Parser;
  readonly list: RawAddress[] = [];
  addr: RawAddress = emptyAddr();
  str = { v: '' };

  constructor(
    value: string,
    readonly fillMissing: boolean,
  ) {
    this.p = new Rfc822Parser(value, { lastComment: true });
    this.p.nulReplacement = true;
  }

  private cur(): number {
    return this.p.cur();
  }

  addAddress(): void {
    this.list.push(this.addr);
    this.addr = emptyAddr();
  }

  private parseNonstrictDotAtom(): number {
    const p = this.p;
    let ret = -1;
    do {
      while (p.cur() === 0x2e) {
        this.str.v += '.';
        p.i++;
        if (p.i === p.end) return 0;
        ret = 1;
      }
      if (p.cur() === 0x40) break;
      ret = p.parseAtom(this.str);
    } while (ret > 0 && p.cur() === 0x2e);
    return ret;
  }

  private parseLocalPart(): number {
    this.str = { v: '' };
    const ret = this.cur() === 0x22 ? this.p.parseQuotedString(this.str) : this.parseNonstrictDotAtom();
    if (ret < 0) return -1;
    this.addr.mailbox = this.str.v;
    return ret;
  }

  private parseDomain(): number {
    this.str = { v: '' };
    const ret = this.p.parseDomain(this.str);
    if (ret < 0) return -1;
    this.addr.domain = this.str.v;
    return ret;
  }

  private parseDomainList(): number {
    const p = this.p;
    const route = { v: '' };
    for (;;) {
      if (p.i >= p.end) return 0;
      if (p.cur() !== 0x40) break;
      if (route.v.length > 0) route.v += ',';
      route.v += '@';
      const ret = p.parseDomain(route);
      if (ret <= 0) return ret;
      while (p.skipLwsp() > 0 && p.cur() === 0x2c) p.i++;
    }
    this.addr.route = route.v;
    return 1;
  }

  private parseAngleAddr(): number {
    const p = this.p;
    p.i++;
    if (p.skipLwsp() <= 0) return -1;
    if (p.cur() === 0x40) {
      if (this.parseDomainList() > 0 && p.cur() === 0x3a) {
        p.i++;
      } else {
        if (this.fillMissing) this.addr.route = 'INVALID_ROUTE';
        if (p.i >= p.end) return -1;
      }
      if (p.skipLwsp() <= 0) return -1;
    }
    if (p.cur() === 0x3e) {
      /* <> address isn't valid */
    } else {
      if (this.parseLocalPart() <= 0) return -1;
      if (p.cur() === 0x40) {
        if (this.parseDomain() <= 0) return -1;
      }
    }
    if (p.cur() !== 0x3e) return -1;
    p.i++;
    return p.skipLwsp();
  }

  private parseNameAddr(): number {
    const p = this.p;
    this.str = { v: '' };
    if (p.parsePhrase(this.str) <= 0 || p.cur() !== 0x3c) return -1;
    this.addr.name = this.str.v === '' ? null : this.str.v;
    if (this.parseAngleAddr() < 0) {
      if (this.fillMissing) this.addr.domain = 'SYNTAX_ERROR';
      this.addr.invalid = true;
    }
    return p.i < p.end ? 1 : 0;
  }

  private parseAddrSpec(): number {
    const p = this.p;
    let ret2 = -2;
    p.lastComment = '';
    const quoted = p.cur() === 0x22;
    let ret = this.parseLocalPart();
    if (ret <= 0) this.addr.invalid = true;
    if (ret !== 0 && p.i < p.end && p.cur() === 0x40) {
      ret2 = this.parseDomain();
      if (ret2 <= 0) ret = ret2;
    }
    if (p.lastComment !== null && p.lastComment.length > 0) {
      this.addr.name = p.lastComment;
    } else if (ret2 === -2) {
      this.str.v += ' ';
      const orig = this.str.v.length;
      p.parsePhrase(this.str);
      if (this.str.v.length !== orig) {
        this.addr.mailbox = null;
        this.addr.name = this.str.v;
      } else if (!quoted) {
        this.addr.domain = '';
      }
      this.addr.invalid = true;
      ret = -1;
    }
    return ret;
  }

  addFixedAddress(): void {
    if (this.addr.mailbox === null) {
      this.addr.mailbox = this.fillMissing ? 'MISSING_MAILBOX' : '';
      this.addr.invalid = true;
    }
    if (this.addr.domain === null || this.addr.domain === '') {
      this.addr.domain = this.fillMissing ? 'MISSING_DOMAIN' : '';
      this.addr.invalid = true;
    }
    this.addAddress();
  }

  private parseMailbox(): number {
    const p = this.p;
    const start = p.i;
    let ret = this.parseNameAddr();
    if (ret < 0) {
      p.i = start;
      ret = this.parseAddrSpec();
      const a = this.addr;
      if (a.invalid && a.name === null && a.mailbox !== null && a.domain === null) {
        a.name = a.mailbox;
        a.mailbox = null;
      }
    }
    if (ret < 0) this.addr.invalid = true;
    this.addFixedAddress();
    return ret;
  }

  private parseGroup(): number {
    const p = this.p;
    this.str = { v: '' };
    if (p.parsePhrase(this.str) <= 0 || p.cur() !== 0x3a) return -1;
    p.i++;
    let ret = p.skipLwsp();
    if (ret <= 0) this.addr.invalid = true;
    this.addr.mailbox = this.str.v;
    this.addAddress();
    if (ret > 0 && p.cur() !== 0x3b) {
      for (;;) {
        this.parseMailbox();
        if (p.i >= p.end || p.cur() !== 0x2c) break;
        p.i++;
        if (p.skipLwsp() <= 0) {
          ret = -1;
          break;
        }
      }
    }
    if (ret >= 0) {
      if (p.i >= p.end || p.cur() !== 0x3b) ret = -1;
      else {
        p.i++;
        ret = p.skipLwsp();
      }
    }
    if (ret < 0) this.addr.invalid = true;
    this.addAddress();
    return ret === 0 ? 0 : 1;
  }

  private parseAddress(): number {
    const start = this.p.i;
    let ret = this.parseGroup();
    if (ret < 0) {
      this.p.i = start;
      this.addr = emptyAddr();
      ret = this.parseMailbox();
    }
    return ret;
  }

  parseList(max: number): void {
    const p = this.p;
    while (max > 0) {
      max--;
      if (this.parseAddress() === 0) break;
      if (p.i >= p.end || p.cur() !== 0x2c) break;
      p.i++;
      const ret = p.skipLwsp();
      if (ret <= 0) {
        if (ret < 0) this.addFixedAddress();
        break;
      }
    }
  }
}

/** message_address_parse(): the addresses of a header value (full, unfolded or not). */
export function parseAddressList(value: string, max = Number.MAX_SAFE_INTEGER, fillMissing = true): RawAddress[] {
  const ap = new AddressParser(value, fillMissing);
  if (ap.p.skipLwsp() > 0) ap.parseList(max);
  return ap.list;
}

function isEscapedChar(c: string): boolean {
  return c === '"' || c === '\\' || c === "'";
}

function appendMaybeEscape(s: string, escapeDot: boolean): string {
  let needQuote = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0 || (!isAtext(c) && (escapeDot || c !== 0x2e))) {
      needQuote = true;
      break;
    }
  }
  if (!needQuote) return s;
  let out = '"';
  for (const c of s) out += isEscapedChar(c) ? '\\' + c : c;
  return out + '"';
}

/** message_address_write(): the normalized form SEARCH FROM/TO/CC/BCC match against. */
export function writeAddressList(addrs: RawAddress[]): string {
  if (addrs.length === 0) return '';
  if (addrs[0].mailbox === null && addrs[0].domain === null && addrs.length === 1) return '<>';
  let str = '';
  let first = true;
  let inGroup = false;
  for (const a of addrs) {
    if (first) first = false;
    else str += ', ';
    if (a.domain === null) {
      if (!inGroup) {
        if (a.mailbox !== null && a.mailbox !== '') {
          str += a.mailbox.includes('=?') ? a.mailbox : appendMaybeEscape(a.mailbox, true);
        } else {
          str += '""';
        }
        str += ': ';
        first = true;
      } else {
        if (str.endsWith(', ')) str = str.slice(0, -2);
        else if (str.endsWith(': ')) str = str.slice(0, -1);
        str += ';';
      }
      inGroup = !inGroup;
    } else {
      const mailbox = a.mailbox ?? '';
      if (a.name !== null) str += a.name.includes('=?') ? a.name : appendMaybeEscape(a.name, true);
      if (a.route !== null || mailbox !== '' || a.domain !== '') {
        if (a.name !== null && a.name !== '') str += ' ';
        str += '<';
        if (a.route !== null) str += a.route + ':';
        str += mailbox === '' ? '""' : appendMaybeEscape(mailbox, false);
        if (a.domain !== '') str += '@' + a.domain;
        str += '>';
      }
    }
  }
  return str;
}

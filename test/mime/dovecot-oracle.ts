// Test support (used by test/mime/dovecot-diff.test.ts): a private, preauthenticated Dovecot IMAP process
// (Debian's /usr/lib/dovecot/imap, no daemon: it speaks IMAP on stdin/stdout) as a reference
// implementation. Each run gets its own temporary directory and configuration; nothing under
// /etc/dovecot is read and no network listener is opened.
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { argsToString, atom, parseArgs, type ImapArg } from '../imap-conformance/imap-args.js';

const IMAP_BINARY = '/usr/lib/dovecot/imap';
/** INTERNALDATE of every appended message. */
export const INTERNAL_DATE = '01-Jan-2000 00:00:00 +0000';
export const INTERNAL_TIME = Date.UTC(2000, 0, 1) / 1000;

export function dovecotAvailable(): boolean {
  const ok = existsSync(IMAP_BINARY) && process.getuid?.() === 0;
  // In CI nothing skips: .ci/run installs dovecot-imapd and CI runs as root.
  if (!ok && process.env['CI']) throw new Error(`CI must not skip: Dovecot (${IMAP_BINARY}) not available or not running as root`);
  return ok;
}

export interface DovecotRun {
  /** Every FETCH reply of the session merged: message number → item name (upper case) → value. */
  fetch: Map<number, Map<string, ImapArg>>;
  /** Tagged completion of each command, by index in `commands`. */
  status: { status: string; text: string }[];
  /** ESEARCH replies by command index (for SORT/SEARCH RETURN (ALL)): the message numbers in order. */
  esearch: Map<number, number[]>;
  untagged: string[];
}

/** Splits the server output into logical lines (a line ending in {n} continues after n bytes). */
export function logicalLines(out: string): string[] {
  const lines: string[] = [];
  let i = 0;
  let cur = '';
  while (i < out.length) {
    const eol = out.indexOf('\r\n', i);
    if (eol < 0) {
      cur += out.slice(i);
      break;
    }
    const line = out.slice(i, eol);
    i = eol + 2;
    const m = /~?\{(\d+)\+?\}$/.exec(line);
    if (m) {
      const n = Number(m[1]);
      cur += line + '\r\n' + out.slice(i, i + n);
      i += n;
      continue;
    }
    lines.push(cur + line);
    cur = '';
  }
  if (cur) lines.push(cur);
  return lines;
}

/**
 * Appends `messages` (in order, as literal8 so NULs are accepted) to a fresh INBOX, selects it and
 * runs `commands` (tagged C0, C1, ...). Commands may run concurrently (Dovecot pipelines them), so
 * FETCH replies are merged per message: give each command distinct item names.
 */
export async function runDovecot(messages: Buffer[], commands: string[]): Promise<DovecotRun> {
  const dir = mkdtempSync(join(tmpdir(), 'caducee-mime-oracle-'));
  try {
    chmodSync(dir, 0o755);
    const home = join(dir, 'home');
    mkdirSync(join(home, 'u'), { recursive: true });
    mkdirSync(join(dir, 'run'));
    mkdirSync(join(dir, 'state'));
    chownSync(home, 65534, 65534);
    chownSync(join(home, 'u'), 65534, 65534);
    const conf = join(dir, 'dovecot.conf');
    writeFileSync(
      conf,
      [
        `base_dir = ${dir}/run`,
        `state_dir = ${dir}/state`,
        `log_path = ${dir}/dovecot.log`,
        `mail_location = maildir:${home}/%u/Maildir`,
        'ssl = no',
        // stored with CRLF: with LF storage, 2.3.19's BINARY.SIZE of a multipart mixes physical
        // and virtual offsets and can count a sibling's conversion (BINARY[] itself is right)
        'mail_save_crlf = yes',
        'protocols = imap',
        'mail_uid = 65534',
        'mail_gid = 65534',
        'first_valid_uid = 1',
        'first_valid_gid = 1',
        'userdb {',
        '  driver = static',
        `  args = uid=65534 gid=65534 home=${home}/%u`,
        '}',
        'passdb {',
        '  driver = static',
        '  args = password=x',
        '}',
        '',
      ].join('\n'),
    );
    const input: Buffer[] = [];
    messages.forEach((m, i) => {
      // literal8 only when needed: with it, Dovecot re-encodes "binary" parts as base64
      const lit = m.includes(0) ? '~' : '';
      const date = `"${INTERNAL_DATE}"`;
      input.push(Buffer.from(`A${i} APPEND INBOX ${date} ${lit}{${m.length}+}\r\n`, 'latin1'), m, Buffer.from('\r\n'));
    });
    input.push(Buffer.from('S SELECT INBOX\r\n'));
    commands.forEach((c, i) => input.push(Buffer.from(`C${i} ${c}\r\n`, 'utf8')));
    input.push(Buffer.from('Z LOGOUT\r\n'));

    // stdio must be files: on a socket (what Node gives a child) imap thinks it runs from inetd
    const inFile = join(dir, 'in');
    const outFile = join(dir, 'out');
    writeFileSync(inFile, Buffer.concat(input));
    const q = (s: string) => `'${s.replace(/'/g, "'\\''")}'`;
    await new Promise<void>((resolve, reject) => {
      const p = spawn('/bin/sh', ['-c', `cat ${q(inFile)} | ${IMAP_BINARY} -c ${q(conf)} > ${q(outFile)} 2>&1`], {
        env: { USER: 'u', HOME: join(home, 'u'), PATH: process.env.PATH ?? '/usr/bin:/bin' },
        stdio: 'ignore',
      });
      p.on('error', reject);
      p.on('close', () => resolve());
    });
    const out = readFileSync(outFile).toString('latin1');

    const run: DovecotRun = { fetch: new Map(), status: [], esearch: new Map(), untagged: [] };
    for (const line of logicalLines(out)) {
      if (line.startsWith('* ')) {
        const u = line.slice(2);
        run.untagged.push(u);
        if (/^\d+ FETCH /i.test(u)) mergeFetch(run.fetch, u);
        const es = /^ESEARCH \(TAG "C(\d+)"\)(?: UID)?(?: ALL (\S+))?/i.exec(u);
        if (es) run.esearch.set(Number(es[1]), es[2] === undefined ? [] : expandSet(es[2]));
        continue;
      }
      const m = /^C(\d+) (OK|NO|BAD) ?(.*)$/s.exec(line);
      if (m) run.status[Number(m[1])] = { status: m[2], text: m[3] };
    }
    return run;
  } finally {
    if (!process.env.MIME_ORACLE_KEEP) rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Reads `<seq> FETCH (name value …)` with the conformance suite's reader. That reader (like
 * Dovecot's, with ATOM_ALLCHARS) splits `BODY[HEADER.FIELDS (FROM)]` into the atom
 * `BODY[HEADER.FIELDS`, the list `(FROM)` and the atom `]`: they are joined back into the item
 * name as Dovecot wrote it.
 */
export function mergeFetch(out: Map<number, Map<string, ImapArg>>, u: string): void {
  const args = parseArgs(u);
  const seq = Number(atom(args[0]));
  const list = args[2]?.type === 'list' ? args[2].items : [];
  const items = out.get(seq) ?? new Map<string, ImapArg>();
  for (let k = 0; k < list.length; ) {
    let name = atom(list[k++]) ?? '';
    if (name.includes('[') && !name.includes(']')) {
      while (k < list.length && list[k]!.type === 'list') name += ` ${argsToString([list[k++]!])}`;
      name += atom(list[k++]) ?? '';
    }
    const value = list[k++];
    if (value !== undefined) items.set(name.toUpperCase(), value);
  }
  out.set(seq, items);
}

/** The FETCH replies in a server's output (bytes read as latin1): message number → item name (upper case) → value. */
export function fetchReplies(out: string): Map<number, Map<string, ImapArg>> {
  const fetch = new Map<number, Map<string, ImapArg>>();
  for (const line of logicalLines(out)) if (/^\* \d+ FETCH /i.test(line)) mergeFetch(fetch, line.slice(2));
  return fetch;
}

function expandSet(s: string): number[] {
  const out: number[] = [];
  for (const r of s.split(',')) {
    const [a, b] = r.split(':').map(Number);
    if (b === undefined) out.push(a);
    else if (a <= b) for (let n = a; n <= b; n++) out.push(n);
    else for (let n = a; n >= b; n--) out.push(n);
  }
  return out;
}

// Human-readable one-line logs for `caducee demo` (npm start): `10:42:07 INFO  a.mssante.test
// smtp  message delivered  recipients=1`. The JSON lines of pino stay the default of `caducee
// start` (log collectors read them); this only reformats the same records for a terminal.
import { Writable } from 'node:stream';

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO ', 40: 'WARN ', 50: 'ERROR', 60: 'FATAL' };
const SKIP = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'operator', 'component', 'v']);

function value(v: unknown): string {
  if (typeof v === 'string') return /[\s="]/.test(v) ? JSON.stringify(v) : v;
  if (v && typeof v === 'object' && 'message' in v) return JSON.stringify((v as { message: unknown }).message);
  return JSON.stringify(v);
}

/** One line per pino record; a line that is not JSON passes through unchanged. */
export function formatLogLine(line: string): string {
  let r: Record<string, unknown>;
  try {
    r = JSON.parse(line);
  } catch {
    return line;
  }
  const t = new Date(typeof r.time === 'number' ? r.time : Date.now()).toTimeString().slice(0, 8);
  const who = [r.operator, r.component].filter(Boolean).join(' ');
  const extra = Object.entries(r)
    .filter(([k, v]) => !SKIP.has(k) && v !== undefined)
    .map(([k, v]) => `${k}=${value(v)}`)
    .join(' ');
  return `${t} ${LEVELS[r.level as number] ?? 'INFO '} ${who ? `[${who}] ` : ''}${r.msg ?? ''}${extra ? `  ${extra}` : ''}`;
}

/**
 * A pino destination writing formatted lines to `out` (stderr by default). With `hold`, info
 * lines wait until `release()` (warnings and errors never wait): `caducee demo` prints its table
 * first and the start-up lines below it.
 */
export function prettyDestination(out: NodeJS.WritableStream = process.stderr, opts: { hold?: boolean } = {}): Writable & { release(): void } {
  let rest = '';
  let held: string[] | null = opts.hold ? [] : null;
  const w = new Writable({
    write(chunk, _enc, done) {
      const lines = (rest + chunk.toString()).split('\n');
      rest = lines.pop() ?? '';
      for (const l of lines) {
        if (!l) continue;
        const text = formatLogLine(l) + '\n';
        if (held && !/^\S+ (WARN|ERROR|FATAL)/.test(text)) held.push(text);
        else out.write(text);
      }
      done();
    },
  });
  return Object.assign(w, {
    release() {
      for (const t of held ?? []) out.write(t);
      held = null;
    },
  });
}

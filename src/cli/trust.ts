// `caducee trust …`: inspect an MSSanté trust list (liste blanche) file.
//
//   caducee trust lookup --list FILE DOMAIN
//       prints the operator certificate DNs listed for DOMAIN, one per line.
//       exit 0: listed; 3: not listed; 2: the list cannot be read or parsed.
//   caducee trust check --list FILE [--sha256 HEX|CHECKSUM_FILE]
//       prints a summary of the list; exit 2 on any error (including a checksum mismatch).

import { processIo, type CliIo } from './io.js';
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { parseTrustList, type TrustList } from '../trust/list.js';
import { parseChecksumText, sha256Hex } from '../trust/source.js';

export const EXIT_LISTED = 0;
export const EXIT_UNREADABLE = 2;
export const EXIT_NOT_LISTED = 3;

export type TrustCliIo = CliIo;

class CliFailure extends Error {}

async function readList(file: string): Promise<{ bytes: Buffer; list: () => TrustList }> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw new CliFailure(`cannot read trust list ${file}: ${(err as Error).message}`);
  }
  return {
    bytes,
    list: () => {
      try {
        return parseTrustList(bytes);
      } catch (err) {
        throw new CliFailure(`${file} is not a usable trust list: ${(err as Error).message}`);
      }
    },
  };
}

async function expectedDigest(value: string): Promise<string> {
  try {
    if (/^\s*[0-9a-fA-F]+\s*$/.test(value)) return parseChecksumText(value, value.trim());
    let text: string;
    try {
      text = await readFile(value, 'utf8');
    } catch (err) {
      throw new Error(`neither a hex digest nor a readable checksum file: ${(err as Error).message}`);
    }
    return parseChecksumText(text, value);
  } catch (err) {
    throw new CliFailure(`invalid --sha256 ${value}: ${(err as Error).message}`);
  }
}

/** Adds the `trust` command group to a commander program; returns the group. */
export function registerTrustCommands(program: Command, io: TrustCliIo = processIo): Command {
  const trust = program.command('trust').description('MSSanté trust list (liste blanche) tools');

  const run =
    <A extends unknown[]>(name: string, fn: (...args: A) => Promise<void>) =>
    async (...args: A): Promise<void> => {
      try {
        await fn(...args);
      } catch (err) {
        if (!(err instanceof CliFailure)) throw err;
        io.stderr(`caducee trust ${name}: ${err.message}\n`);
        io.setExitCode(EXIT_UNREADABLE);
      }
    };

  trust
    .command('lookup')
    .description('print the operator certificate DNs listed for a domain, one per line (exit 3 when not listed)')
    .requiredOption('--list <file>', 'trust list file (listeblanchemssante.xml)')
    .argument('<domain>', 'MSSanté mail domain, e.g. medimail.mssante.fr')
    .action(
      run('lookup', async (domain: string, opts: { list: string }) => {
        const list = (await readList(opts.list)).list();
        const dns = list.lookup(domain);
        if (dns.length === 0) {
          const when = list.generatedAt ? ` generated ${list.generatedAt}` : '';
          io.stderr(`caducee trust lookup: ${domain} is not in the trust list ${opts.list}${when}\n`);
          io.setExitCode(EXIT_NOT_LISTED);
          return;
        }
        io.stdout(dns.map((dn) => `${dn}\n`).join(''));
        io.setExitCode(EXIT_LISTED);
      }),
    );

  trust
    .command('check')
    .description('verify and summarize a trust list file (exit 2 on error)')
    .requiredOption('--list <file>', 'trust list file (listeblanchemssante.xml)')
    .option('--sha256 <digest>', 'expected SHA-256: hex digest, or a checksum file such as the ANS `checksum`')
    .action(
      run('check', async (opts: { list: string; sha256?: string }) => {
        const expected = opts.sha256 !== undefined ? await expectedDigest(opts.sha256) : undefined;
        const read = await readList(opts.list);
        const digest = sha256Hex(read.bytes);
        if (expected !== undefined && expected !== digest) {
          throw new CliFailure(`SHA-256 mismatch for ${opts.list}: expected ${expected}, got ${digest}`);
        }
        const started = performance.now();
        const list = read.list();
        const ms = performance.now() - started;
        const lines = [
          `file:         ${opts.list} (${read.bytes.length} bytes)`,
          `sha256:       ${digest}${expected !== undefined ? ' (matches)' : ''}`,
          `generated:    ${list.generatedAt ?? '(none)'}`,
          `entries:      ${list.entries.length}`,
          `domains:      ${list.domains}`,
          `operator DNs: ${list.dns} distinct as distinguished names (${list.dnSpellings} spellings)`,
          `parse time:   ${ms.toFixed(0)} ms`,
          `warnings:     ${list.warnings.length}`,
          ...list.warnings.map((w) => `  - ${w}`),
        ];
        io.stdout(`${lines.join('\n')}\n`);
        io.setExitCode(0);
      }),
    );

  return trust;
}

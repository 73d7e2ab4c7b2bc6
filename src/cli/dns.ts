// `caducee dns records --config FILE [--ttl SECONDS]`: the DNS zone snippet mail software needs
// (RFC 6186 SRV records with RFC 8314 preferences) plus the MX, from the operator's configuration
// (clients.*, operator.*, listen.*). docs/lps.md. Exit 2 with one line when the configuration
// cannot be read.
import type { Command } from 'commander';
import { ConfigError, loadConfig } from '../config/index.js';
import { clientSettings, dnsRecords } from '../http/autoconfig.js';

export function registerDnsCommands(program: Command, io = { stdout: (t: string) => void process.stdout.write(t), stderr: (t: string) => void process.stderr.write(t), setExitCode: (c: number) => void (process.exitCode = c) }): Command {
  const dns = program.command('dns').description('DNS records for this operator');
  dns
    .command('records')
    .description('print an RFC 6186 zone snippet (_imaps, _imap, _submissions, _submission SRV) and the MX of every hosted domain')
    .option('-c, --config <file>', 'operator configuration file (YAML or JSON; or CADUCEE_CONFIG)')
    .option('--ttl <seconds>', 'TTL of the records', '3600')
    .action((opts: { config?: string; ttl: string }) => {
      const ttl = Number(opts.ttl);
      if (!Number.isInteger(ttl) || ttl < 0 || ttl > 2147483647) {
        io.stderr(`caducee dns records: --ttl ${opts.ttl} is not a number of seconds\n`);
        return io.setExitCode(2);
      }
      try {
        io.stdout(dnsRecords(clientSettings(loadConfig(opts.config)), ttl));
        io.setExitCode(0);
      } catch (e) {
        if (!(e instanceof ConfigError) && !(e instanceof Error && /oidc/.test(e.message))) throw e;
        io.stderr(`caducee dns records: ${e.message}\n`);
        io.setExitCode(2);
      }
    });
  return dns;
}

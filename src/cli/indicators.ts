// `caducee indicators --month YYYY-MM [--format csv|json]`: the monthly usage indicators of the
// operator (issue 10; columns and meaning in docs/indicators.md). Counts only: no address, no
// subject, no content.
import { InvalidArgumentError, type Command } from 'commander';
import { IndicatorError, indicatorsCsv, indicatorsJson, monthlyIndicators, monthPeriod } from '../audit/indicators.js';
import { loadConfig } from '../config/index.js';
import { openStore } from '../open-store.js';

export function registerIndicatorsCommands(program: Command, fail: (e: unknown) => never): void {
  program
    .command('indicators')
    .description('monthly usage indicators per structure and mailbox type, and connections (content-free; docs/indicators.md)')
    .requiredOption('--month <YYYY-MM>', 'calendar month, UTC (e.g. 2026-11)')
    .option('--format <csv|json>', 'csv (RFC 4180, default) or json', 'csv')
    .option('-c, --config <file>', 'operator configuration file (YAML or JSON; or CADUCEE_CONFIG)')
    .action(async (o) => {
      try {
        if (o.format !== 'csv' && o.format !== 'json') throw new InvalidArgumentError(`--format ${o.format}: use csv or json`);
        try {
          monthPeriod(o.month);
        } catch (e) {
          if (e instanceof IndicatorError) throw new InvalidArgumentError(`--month: ${e.message}`);
          throw e;
        }
        const store = await openStore(loadConfig(o.config));
        try {
          const rows = await monthlyIndicators(store, o.month);
          process.stdout.write(o.format === 'json' ? indicatorsJson(rows, o.month) : indicatorsCsv(rows));
        } finally {
          await store.close();
        }
      } catch (e) {
        fail(e);
      }
    });
}

// `caducee api-client …` and `caducee webhook …`: medical software's access to the mail API
// (issue 11, docs/software-api.md). An API client is a user account of its own (login
// `api.<name>`), given grants on the mailboxes it serves through Core (the one access decision
// point: the token opens exactly what the grants open), and one or more bearer tokens.
import { InvalidArgumentError, type Command } from 'commander';
import { Authenticator, type AdminContext } from '../auth/index.js';
import { SecretBox } from '../auth/secret-box.js';
import { loadConfig } from '../config/index.js';
import { Core, CoreError, GRANT_RIGHTS, type GrantRight, type TraceOrigin } from '../core/index.js';
import { registerWebhook, WebhookError } from '../integration/webhooks.js';
import { openStore } from '../open-store.js';

export interface CliHelpers {
  fail: (e: unknown) => never;
  withCore: <T>(o: { config?: string }, fn: (core: Core) => Promise<T>) => Promise<T>;
  cliContext: () => AdminContext;
  cliOrigin: () => TraceOrigin;
  print: (rows: object[], json: boolean) => void;
}

const configOption = ['-c, --config <file>', 'operator configuration file (YAML or JSON; or CADUCEE_CONFIG)'] as const;
const collect = (v: string, acc: string[]) => [...acc, v];

function rightsOption(v: string): GrantRight[] {
  const rights = v.split(',').map((r) => r.trim()).filter(Boolean);
  for (const r of rights) if (!GRANT_RIGHTS.includes(r as GrantRight)) throw new InvalidArgumentError(`unknown right "${r}": use ${GRANT_RIGHTS.join(', ')}`);
  return rights as GrantRight[];
}

export function registerIntegrationCommands(program: Command, h: CliHelpers): void {
  const client = program.command('api-client').description('medical software using the mail API (bearer tokens scoped by grants)');
  client
    .command('create')
    .description('create an API client account with grants on its mailboxes, and print its first token (shown once)')
    .requiredOption('--name <name>', 'short name: the account is api.<name> (letters, digits, - and .)')
    .requiredOption('--display-name <text>', 'what traces and the webmail show, e.g. "DPI — Hôpital Nord"')
    .requiredOption('--mailbox <address>', 'a mailbox the software serves (repeat for several)', collect, [])
    .option('--rights <list>', `rights on each mailbox (${GRANT_RIGHTS.join(',')})`, 'read,send')
    .option(...configOption)
    .action((o) =>
      h
        .withCore(o, async (core) => {
          if (!/^[a-z0-9][a-z0-9.-]{0,60}$/.test(o.name)) throw new InvalidArgumentError('--name: 1–61 lower-case letters, digits, "." or "-", starting with a letter or digit');
          const rights = rightsOption(o.rights);
          const login = `api.${o.name}`;
          if (await core.store.findUserByLogin(login)) throw new CoreError(`${login} exists already: add a token with "caducee api-client token add --login ${login}"`);
          for (const a of o.mailbox) await core.requireMailbox(a);
          const user = await core.createUser({ login, displayName: o.displayName });
          for (const a of o.mailbox) await core.grant(a, login, rights, h.cliOrigin());
          const { token, secret } = await new Authenticator(core.store).createApiToken(user, `${o.displayName} — jeton initial`, h.cliContext());
          process.stdout.write(
            `API client ${login} created with ${rights.join('+')} on ${o.mailbox.join(', ')}\n` +
              `token #${token.id}: ${secret}\nIt is shown only now: give it to the software's administrator through a safe channel (Authorization: Bearer …).\n`,
          );
        })
        .catch(h.fail),
    );
  const tokens = client.command('token').description('bearer tokens of an API client');
  tokens
    .command('add')
    .requiredOption('--login <login>')
    .requiredOption('--label <label>', 'where the token is used, e.g. "serveur d’intégration 2"')
    .option(...configOption)
    .action((o) =>
      h
        .withCore(o, async (core) => {
          const u = await core.requireUser(o.login);
          const { token, secret } = await new Authenticator(core.store).createApiToken(u, o.label, h.cliContext());
          process.stdout.write(`token #${token.id} for ${u.login} (${token.label}): ${secret}\nIt is shown only now.\n`);
        })
        .catch(h.fail),
    );
  tokens
    .command('list')
    .option('--login <login>', 'only this account’s tokens')
    .option('--json')
    .option(...configOption)
    .action((o) => h.withCore(o, async (core) => h.print(await core.store.listApiTokens(o.login ? (await core.requireUser(o.login)).id : undefined), !!o.json)).catch(h.fail));
  tokens
    .command('revoke')
    .requiredOption('--id <id>', 'token number (see list)')
    .option(...configOption)
    .action((o) =>
      h
        .withCore(o, async (core) => {
          const t = await new Authenticator(core.store).revokeApiToken(Number(o.id), h.cliContext());
          if (!t) throw new CoreError(`no active API token #${o.id}`);
          process.stdout.write(`token #${t.id} revoked: requests carrying it are refused from now on\n`);
        })
        .catch(h.fail),
    );

  const hooks = program.command('webhook').description('HTTPS endpoints told of each message arriving in a mailbox (signed, retried 24 h)');
  hooks
    .command('add')
    .requiredOption('--login <login>', 'the account the endpoint acts for (an API client): it must hold the read right')
    .requiredOption('--mailbox <address>')
    .requiredOption('--url <https-url>')
    .option('--since <when>', 'now: only new messages; all: the INBOX from its start', 'now')
    .option(...configOption)
    .action((o) =>
      withSecrets(o, h, async (core, secrets) => {
        if (o.since !== 'now' && o.since !== 'all') throw new InvalidArgumentError('--since: now or all');
        const { webhook, secret } = await registerWebhook({ core, store: core.store, secrets }, await core.requireUser(o.login), o.mailbox, o.url, o.since);
        process.stdout.write(`webhook #${webhook.id} → ${webhook.url} for ${o.mailbox}\nsigning secret: ${secret}\nIt is shown only now: the endpoint checks the Caducee-Signature header with it.\n`);
      }).catch(h.fail),
    );
  hooks
    .command('list')
    .option('--json')
    .option(...configOption)
    .action((o) => h.withCore(o, async (core) => h.print(await core.store.listWebhooks(), !!o.json)).catch(h.fail));
  hooks
    .command('remove')
    .requiredOption('--id <id>')
    .option(...configOption)
    .action((o) =>
      h
        .withCore(o, async (core) => {
          if (!(await core.store.revokeWebhook(Number(o.id)))) throw new CoreError(`no active webhook #${o.id}`);
          process.stdout.write(`webhook #${o.id} removed\n`);
        })
        .catch(h.fail),
    );
}

async function withSecrets<T>(o: { config?: string }, h: CliHelpers, fn: (core: Core, secrets: SecretBox) => Promise<T>): Promise<T> {
  const config = loadConfig(o.config);
  let secrets: SecretBox;
  try {
    secrets = SecretBox.fromFile(config.auth.secretsKeyFile!);
  } catch (e: any) {
    throw new CoreError(e.message);
  }
  return h.withCore(o, (core) =>
    fn(core, secrets).catch((e) => {
      throw e instanceof WebhookError ? new CoreError(e.message) : e;
    }),
  );
}

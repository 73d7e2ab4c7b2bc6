// One demo trust space for IMAP tests over real sockets (test/imap-keywords, imap-contexts, imap-utf8, imap-access,
// imap-catenate, imap-notify): started before the suite's tests, stopped after them, with every
// connection the tests opened closed first.
import { readFileSync } from 'node:fs';
import { after, before } from 'node:test';
import { prepareDemo, startDemo, type DemoLayout, type RunningDemo } from '../../src/demo/space.js';
import { tempDir, testLogger } from '../helpers.js';
import { connect } from './imap-stream.js';

/** Call inside describe(): registers the suite's before/after hooks. */
export function imapDemo() {
  let layout: DemoLayout | undefined;
  let demo: RunningDemo | undefined;
  let ca = '';
  let cleanup = () => {};
  const open: { close(): void }[] = [];
  before(async () => {
    let dir: string;
    ({ dir, cleanup } = tempDir());
    layout = await prepareDemo(dir, { ports: 'ephemeral' });
    demo = await startDemo(layout, { logger: testLogger() });
    ca = readFileSync(layout.caBundle, 'utf8');
  });
  after(async () => {
    for (const c of open) c.close();
    await demo?.stop();
    cleanup();
  });
  return {
    get layout(): DemoLayout {
      return layout!;
    },
    get demo(): RunningDemo {
      return demo!;
    },
    /** The trust space's CA bundle (PEM), for clients of the suite's own. */
    get ca(): string {
      return ca;
    },
    /** Closes `c` after the suite, with the connections connect() opened. */
    track<T extends { close(): void }>(c: T): T {
      open.push(c);
      return c;
    },
    /** A new IMAPS connection to operator A (closed after the suite), logged in as its user `user` when given. */
    async connect(user?: number) {
      const c = await connect(demo!.operators[0].ports.imaps, ca);
      open.push(c);
      if (user !== undefined) {
        const u = layout!.operators[0].users[user]!;
        await c.cmd(`LOGIN ${u.login} "${u.appPassword}"`);
      }
      return c;
    },
  };
}

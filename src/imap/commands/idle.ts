// RFC 2177 IDLE: the session pushes untagged updates of the selected folder as they happen,
// until the client sends DONE.
import { bad } from '../errors.js';
import type { Handlers, SessionContext } from './context.js';

export const idleCommands = {
  IDLE: (ctx, _cmd, tag) => idle(ctx, tag),
} satisfies Partial<Handlers>;

async function idle(ctx: SessionContext, tag: string): Promise<string | null> {
  ctx.idle.tag = tag;
  ctx.write('+ idling\r\n');
  ctx.parser.expectLine();
  await pushIdleUpdates(ctx);
  ctx.handleEvents(ctx.parser.resume());
  return null;
}

/**
 * Sends what changed in the selected folder since the session last looked (read from the store by
 * modseq: the event only names the folder, and may come from another process or node). A change
 * announced while a push is running is not dropped: that push may have read HIGHESTMODSEQ before
 * the change was committed, so one more follows.
 */
export async function pushIdleUpdates(ctx: SessionContext) {
  if (!ctx.view) return;
  if (ctx.idle.pushing) {
    ctx.idle.again = true;
    return;
  }
  ctx.idle.pushing = true;
  try {
    do {
      ctx.idle.again = false;
      await ctx.flushUpdates(true);
    } while (ctx.idle.again && ctx.idle.tag && ctx.view);
  } finally {
    ctx.idle.pushing = false;
  }
}

export async function endIdle(ctx: SessionContext, line: string) {
  const tag = ctx.idle.tag!;
  ctx.idle.tag = null;
  if (line.trim().toUpperCase() !== 'DONE') {
    ctx.write(bad(undefined, 'expected DONE to end IDLE').response(tag));
    return;
  }
  await ctx.flushUpdates(true);
  ctx.write(`${tag} OK IDLE terminated\r\n`);
}

// Configuration of several nodes (issue 12): static routes with several hosts, the cluster section.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, loadConfig, parseConfig } from './index.js';

test('routes: HOST:PORT or a list of them; domains lower-cased; an empty list or a bad entry is refused with its path', () => {
  const c = parseConfig({ routes: { 'B.mssante.test': ['10.0.0.11:25', '[2001:db8::1]:25'], 'c.mssante.test': '127.0.0.1:2525' } });
  assert.deepEqual(c.routes, { 'b.mssante.test': ['10.0.0.11:25', '[2001:db8::1]:25'], 'c.mssante.test': '127.0.0.1:2525' });
  assert.throws(() => parseConfig({ routes: { 'b.test': [] } }), (e: Error) => e instanceof ConfigError && /routes\.b\.test/.test(e.message));
  assert.throws(() => parseConfig({ routes: { 'b.test': ['10.0.0.11:25', 'nohost'] } }), (e: Error) => e instanceof ConfigError && /routes\.b\.test/.test(e.message));
});

test('cluster: a 30 s leader lease by default, no node id (the host name is used); a lease under 3 s is refused', () => {
  assert.deepEqual(parseConfig({}).cluster, { leaderLeaseSeconds: 30 });
  assert.deepEqual(parseConfig({ cluster: { nodeId: 'node-2', leaderLeaseSeconds: 10 } }).cluster, { nodeId: 'node-2', leaderLeaseSeconds: 10 });
  assert.throws(() => parseConfig({ cluster: { leaderLeaseSeconds: 1 } }), /cluster\.leaderLeaseSeconds must be at least 3/);
  assert.throws(() => parseConfig({ cluster: { nodeid: 'x' } }), ConfigError, 'unknown keys are refused');
  // Nodes sharing one configuration file name themselves in the environment.
  assert.equal(loadConfig(undefined, { CADUCEE_NODE_ID: 'node-3' }).cluster.nodeId, 'node-3');
});

test('queue.leaseSeconds: 90 s by default (renewed every third of it while a worker holds the items); under 3 s refused', () => {
  assert.equal(parseConfig({}).queue.leaseSeconds, 90);
  assert.equal(parseConfig({ queue: { concurrency: 2 } }).queue.leaseSeconds, 90);
  assert.equal(parseConfig({ queue: { leaseSeconds: 30 } }).queue.leaseSeconds, 30);
  assert.throws(() => parseConfig({ queue: { leaseSeconds: 2 } }), /queue\.leaseSeconds must be at least 3/);
});

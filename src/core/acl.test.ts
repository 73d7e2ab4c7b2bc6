// The ACL operations of core: who may read and change a mailbox's access list, the grants they
// write (in grant terms and in RFC 4314 letters), and the refusals, over a real SQLite store.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SqliteStore } from '../store/sqlite/index.js';
import { AccessDenied, Core, CoreError, NotFound, type User } from './index.js';

describe('core ACL operations', () => {
  const store = SqliteStore.open(':memory:');
  const core = new Core(store, ['x.mssante.test']);
  const address = 'claire.martin@x.mssante.test';
  let owner: User, sec: User, stranger: User, app: User;

  before(async () => {
    await core.createPractitioner({ rpps: '10101010101', familyName: 'Martin', givenName: 'Claire' });
    const structure = await core.createStructure('FINESS', '750712184', 'Centre de santé');
    owner = await core.createUser({ login: 'claire', displayName: 'Claire Martin', rpps: '10101010101' });
    sec = await core.createUser({ login: 'secretariat', displayName: 'Secrétariat' });
    stranger = await core.createUser({ login: 'inconnu', displayName: 'Inconnu' });
    await core.createMailbox({ address, type: 'PER', displayName: 'Dr Claire Martin', owner: 'claire' });
    await core.createMailbox({ address: 'gone@x.mssante.test', type: 'PER', displayName: 'Ancienne', owner: 'claire' });
    await core.setMailboxState('gone@x.mssante.test', 'deleted');
    app = await store.applicationAccount(structure);
  });
  after(() => store.close());

  const grantOf = async (login: string) => {
    const m = await core.requireMailbox(address);
    const u = await core.requireUser(login);
    return (await store.listGrants({ mailboxId: m.id, userId: u.id }))[0]?.rights;
  };

  test('the owner lists the ACL: itself with every right, then the grants, in both terms', async () => {
    await core.grant(address, 'secretariat', ['read', 'send']);
    assert.deepEqual(await core.listAcl(owner, address), [
      { login: 'claire', owner: true, rights: ['read', 'send', 'manage'], acl: 'lrswipkxtea' },
      { login: 'secretariat', owner: false, rights: ['read', 'send'], acl: 'lrs' },
    ]);
  });

  test('neither a reader nor a stranger may read or change the ACL (AccessDenied)', async () => {
    for (const actor of [sec, stranger]) {
      await assert.rejects(core.listAcl(actor, address), AccessDenied);
      await assert.rejects(core.setAcl(actor, address, 'secretariat', { letters: 'lrswipkxtea' }), AccessDenied);
      await assert.rejects(core.removeAcl(actor, address, 'secretariat'), AccessDenied);
    }
    assert.deepEqual(await grantOf('secretariat'), ['read', 'send']);
  });

  test('letters keep send-on-behalf: +a adds manage, DELETEACL-like removal leaves send', async () => {
    assert.deepEqual((await core.setAcl(owner, address, 'secretariat', { letters: 'a' }, 'add'))?.rights, ['manage', 'read', 'send']);
    // A manage delegate may now administer the ACL too.
    assert.equal((await core.listAcl(sec, address)).length, 2);
    assert.deepEqual((await core.setAcl(sec, address, 'secretariat', { letters: 'a' }, 'remove'))?.rights, ['read', 'send']);
    assert.deepEqual((await core.removeAcl(owner, address, 'secretariat', 'imap'))?.rights, ['send']);
    // Setting letters replaces only what letters express.
    assert.deepEqual((await core.setAcl(owner, address, 'secretariat', { letters: 'lr' }))?.rights, ['read', 'send']);
    assert.deepEqual(await grantOf('secretariat'), ['read', 'send']);
  });

  test('grant terms replace everything, and removing the grant leaves nothing', async () => {
    assert.deepEqual((await core.setAcl(owner, address, 'inconnu', { rights: ['send'] }))?.rights, ['send']);
    // A send-only grant has no RFC 4314 letter.
    assert.equal((await core.listAcl(owner, address)).find((e) => e.login === 'inconnu')?.acl, '');
    assert.equal(await core.removeAcl(owner, address, 'inconnu'), undefined);
    assert.equal(await grantOf('inconnu'), undefined);
    // Core.grant is the same operation: exactly these rights.
    assert.deepEqual((await core.grant(address, 'inconnu', ['read']))?.rights, ['read']);
    assert.equal(await core.grant(address, 'inconnu', []), undefined);
  });

  test('refusals shared with Core.grant: unknown user or right, the owner, an application account, a deleted mailbox', async () => {
    await assert.rejects(core.setAcl(owner, address, 'personne', { letters: 'lr' }), NotFound);
    await assert.rejects(core.grant(address, 'personne', ['read']), NotFound);
    await assert.rejects(core.setAcl(owner, 'nobody@x.mssante.test', 'secretariat', { letters: 'lr' }), NotFound);
    await assert.rejects(core.grant(address, 'secretariat', ['write' as any]), /unknown right write/);
    await assert.rejects(core.setAcl(owner, address, 'claire', { letters: 'lr' }), (e: Error) => e instanceof CoreError && !(e instanceof AccessDenied) && /owner's rights cannot be changed/.test(e.message));
    await assert.rejects(core.grant(address, 'claire', ['read']), /owner's rights cannot be changed/);
    await assert.rejects(core.grant(address, app.login, ['read']), /application account/);
    await assert.rejects(core.listAcl(owner, 'gone@x.mssante.test'), NotFound);
    await assert.rejects(core.grant('gone@x.mssante.test', 'secretariat', ['read']), /is deleted/);
    assert.deepEqual(await grantOf('secretariat'), ['read', 'send']);
  });
});

// The monthly indicators over a real SQLite store: mailbox counts from the state history (created,
// suspended, deleted, active at the month's end, per structure and type), message rows stored with
// a delivery, and the attachment / XDM / patient classification.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Core } from '../core/index.js';
import { analyzeMessage } from '../mime/index.js';
import { SqliteStore } from '../store/sqlite/index.js';
import { indicatorsCsv, monthlyIndicators, monthPeriod, type IndicatorRow } from './indicators.js';
import { messageTraits, remotePeer } from './usage.js';

const v = (rows: IndicatorRow[], m: Partial<IndicatorRow>) =>
  rows.filter((r) => Object.entries(m).every(([k, x]) => (r as any)[k] === x)).reduce((n, r) => n + r.value, 0);

describe('monthly indicators from the store', () => {
  const store = SqliteStore.open(':memory:');
  const core = new Core(store, ['x.mssante.test']);
  const S = { structure_id_type: 'FINESS', structure_id: '750712184' };
  const NONE = { structure_id_type: '', structure_id: '' };

  before(async () => {
    await core.createStructure('FINESS', '750712184', 'Centre de santé');
    await core.createPractitioner({ rpps: '10101010101', familyName: 'Martin', givenName: 'Claire' });
    const structure = { idType: 'FINESS' as const, idValue: '750712184' };
    const box = (local: string, type: 'ORG' | 'APP' | 'PER') =>
      core.createMailbox({ address: `${local}@x.mssante.test`, type, displayName: local, ...(type === 'PER' ? { rpps: '10101010101' } : { structure }) });
    const old = await box('old', 'ORG');
    const fresh = await box('new', 'ORG');
    const app = await box('app', 'APP');
    const gone = await box('gone', 'ORG');
    const per = await box('per', 'PER');
    await core.setMailboxState('app@x.mssante.test', 'suspended');
    await core.setMailboxState('gone@x.mssante.test', 'deleted');
    await core.setMailboxState('per@x.mssante.test', 'suspended');
    // Move some history into October 2026; the rest stays in November.
    const db = store.db;
    for (const m of [old, gone, per]) db.prepare('UPDATE mailboxes SET created_at = ? WHERE id = ?').run('2026-10-05T10:00:00.000Z', m.id);
    for (const m of [fresh, app]) db.prepare("UPDATE mailboxes SET created_at = '2026-11-03T10:00:00.000Z' WHERE id = ?").run(m.id);
    db.prepare("UPDATE mailbox_state_changes SET at = '2026-10-20T10:00:00.000Z' WHERE mailbox_id = ?").run(per.id);
    db.prepare("UPDATE mailbox_state_changes SET at = '2026-11-10T10:00:00.000Z' WHERE mailbox_id <> ?").run(per.id);
    // Two messages: one from `new` to `old` with an XDM package, one received from a patient.
    const at = '2026-11-12T08:00:00.000Z';
    const sid = old.structureId;
    await store.deliver({
      blobId: 'b1',
      size: 10,
      internalDate: new Date(at),
      envelopeFrom: '',
      localMailboxIds: [old.id],
      remote: [],
      usage: [
        { at, structureId: sid, mailboxType: 'ORG', flow: 'sent', peer: 'internal', attachment: true, xdm: true },
        { at, structureId: sid, mailboxType: 'ORG', flow: 'received', peer: 'internal', attachment: true, xdm: true },
        { at, structureId: sid, mailboxType: 'ORG', flow: 'received', peer: 'patient', attachment: false, xdm: false },
      ],
    });
  });
  after(() => store.close());

  test('November: active at the end, created, suspended, deleted per structure and type', async () => {
    const rows = await monthlyIndicators(store, '2026-11');
    assert.equal(v(rows, { ...S, mailbox_type: 'ORG', indicator: 'mailboxes_active' }), 2, 'old and new; gone was deleted');
    assert.equal(v(rows, { ...S, mailbox_type: 'ORG', indicator: 'mailboxes_created' }), 1);
    assert.equal(v(rows, { ...S, mailbox_type: 'ORG', indicator: 'mailboxes_deleted' }), 1);
    assert.equal(v(rows, { ...S, mailbox_type: 'APP', indicator: 'mailboxes_active' }), 0);
    assert.equal(v(rows, { ...S, mailbox_type: 'APP', indicator: 'mailboxes_created' }), 1);
    assert.equal(v(rows, { ...S, mailbox_type: 'APP', indicator: 'mailboxes_suspended' }), 1);
    assert.equal(v(rows, { ...NONE, mailbox_type: 'PER', indicator: 'mailboxes_suspended' }), 0, 'suspended in October');
    assert.equal(v(rows, { ...NONE, mailbox_type: 'PER', indicator: 'mailboxes_active' }), 0);
    assert.equal(v(rows, { ...S, mailbox_type: 'ORG', indicator: 'messages_sent', peer: 'internal' }), 1);
    assert.equal(v(rows, { ...S, mailbox_type: 'ORG', indicator: 'messages_received_with_xdm', peer: 'internal' }), 1);
    assert.equal(v(rows, { ...S, mailbox_type: 'ORG', indicator: 'messages_received', peer: 'patient' }), 1);
    // Every group has the full set of rows, zeros included: 4 mailbox + 2 flows × 3 peers × 3.
    assert.equal(rows.filter((r) => r.structure_id === '750712184' && r.mailbox_type === 'APP').length, 22);
  });

  test('October: the history as it was then', async () => {
    const rows = await monthlyIndicators(store, '2026-10');
    assert.equal(v(rows, { ...S, mailbox_type: 'ORG', indicator: 'mailboxes_active' }), 2, 'old and gone');
    assert.equal(v(rows, { ...S, mailbox_type: 'ORG', indicator: 'mailboxes_created' }), 2);
    assert.equal(v(rows, { ...NONE, mailbox_type: 'PER', indicator: 'mailboxes_created' }), 1);
    assert.equal(v(rows, { ...NONE, mailbox_type: 'PER', indicator: 'mailboxes_suspended' }), 1);
    assert.equal(v(rows, { ...NONE, mailbox_type: 'PER', indicator: 'mailboxes_active' }), 0);
    assert.equal(rows.filter((r) => r.mailbox_type === 'APP').length, 0, 'not created yet');
    assert.equal(v(rows, { indicator: 'messages_sent' }), 0);
  });

  test('months are UTC calendar months; anything but YYYY-MM is refused', () => {
    assert.deepEqual(monthPeriod('2026-12'), { from: '2026-12-01T00:00:00.000Z', to: '2027-01-01T00:00:00.000Z' });
    for (const bad of ['2026-13', '2026-1', '202611', '2026-11-01']) assert.throws(() => monthPeriod(bad), /YYYY-MM/);
  });

  test('CSV: RFC 4180 with a header line', () => {
    const csv = indicatorsCsv([{ month: '2026-11', structure_id_type: '', structure_id: '', mailbox_type: '', indicator: 'connections', peer: '', protocol: 'imap', method: 'A,B', outcome: 'success', value: 3 }]);
    assert.equal(csv, 'month,structure_id_type,structure_id,mailbox_type,indicator,peer,protocol,method,outcome,value\r\n2026-11,,,,connections,,imap,"A,B",success,3\r\n');
  });
});

describe('message classification', () => {
  const mixed = (part: string) =>
    Buffer.from(
      'From: a@x.mssante.test\r\nTo: b@x.mssante.test\r\nSubject: s\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n' +
        '--b\r\nContent-Type: text/plain\r\n\r\nBonjour\r\n--b\r\n' +
        part +
        '\r\n\r\nUEsDBA==\r\n--b--\r\n',
    );

  test('an attachment by disposition, or a named non-text part; XDM by its name, any case', () => {
    assert.deepEqual(messageTraits(analyzeMessage(Buffer.from('From: a@x.mssante.test\r\nSubject: s\r\n\r\nBonjour\r\n'))), { attachment: false, xdm: false });
    assert.deepEqual(messageTraits(analyzeMessage(mixed('Content-Type: application/zip\r\nContent-Disposition: attachment; filename="ihe_xdm.zip"\r\nContent-Transfer-Encoding: base64'))), {
      attachment: true,
      xdm: true,
    });
    assert.deepEqual(messageTraits(analyzeMessage(mixed('Content-Type: application/pdf; name="cr.pdf"\r\nContent-Transfer-Encoding: base64'))), { attachment: true, xdm: false });
    assert.deepEqual(messageTraits(analyzeMessage(mixed('Content-Type: text/html\r\nContent-Disposition: inline'))), { attachment: false, xdm: false });
  });

  test('patients are at patient.mssante.fr; any other remote domain is another operator', () => {
    assert.equal(remotePeer('123456789012345@patient.mssante.fr'), 'patient');
    assert.equal(remotePeer('x@PATIENT.MSSANTE.FR'), 'patient');
    assert.equal(remotePeer('dr@b.mssante.test'), 'operator');
    assert.equal(remotePeer('185057512345673@patient.mssante.test', 'patient.mssante.test'), 'patient', 'patients.domain (demo stand-in)');
    assert.equal(remotePeer('185057512345673@patient.mssante.fr', 'patient.mssante.test'), 'operator');
  });
});

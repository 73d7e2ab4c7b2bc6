// The monthly usage indicators (issue 10): `caducee indicators --month YYYY-MM`. The ANS has not
// published the file format (docs/mssante.md §7), so this one is ours and stable: a long table,
// one count per row, whose columns never change (docs/indicators.md). New indicators add rows,
// never columns. Counts only: no address of a correspondent, no subject, no content — the
// store keeps none for these counts (usage_messages, mailbox_state_changes, auth_audit counted).
import type { AccountStore, UsageStore } from '../store/types.js';
import { MAILBOX_TYPES, type MailboxType } from '../model/index.js';

/** The columns, in this order, of both formats (docs/indicators.md). Never reorder or rename. */
export const INDICATOR_COLUMNS = ['month', 'structure_id_type', 'structure_id', 'mailbox_type', 'indicator', 'peer', 'protocol', 'method', 'outcome', 'value'] as const;

export type IndicatorRow = { [K in (typeof INDICATOR_COLUMNS)[number]]: K extends 'value' ? number : string };

export const FORMAT_VERSION = 1;

const PEERS = ['internal', 'operator', 'patient'] as const;
const FLOWS = ['sent', 'received'] as const;

/** How the audit trail's protocol names a connection in the indicators. */
const PROTOCOL_NAMES: Record<string, string> = { imap: 'imap', smtp: 'submission', http: 'web' };

/** [from, to) of a calendar month in UTC, as ISO instants; throws on anything but YYYY-MM. */
export function monthPeriod(month: string): { from: string; to: string } {
  const m = /^(\d{4})-(0[1-9]|1[0-2])$/.exec(month);
  if (!m) throw new IndicatorError(`month ${JSON.stringify(month)} is not valid: give it as YYYY-MM, e.g. 2026-11`);
  const y = Number(m[1]);
  const mo = Number(m[2]);
  return { from: new Date(Date.UTC(y, mo - 1, 1)).toISOString(), to: new Date(Date.UTC(y, mo, 1)).toISOString() };
}

export class IndicatorError extends Error {
  override name = 'IndicatorError';
}

/** Computes the indicators of `month` (YYYY-MM, UTC) from the store. */
export async function monthlyIndicators(store: UsageStore & Pick<AccountStore, 'getStructure'>, month: string): Promise<IndicatorRow[]> {
  const { from, to } = monthPeriod(month);
  const structures = new Map<number, { idType: string; idValue: string }>();
  const structureOf = async (id: number | null) => {
    if (id === null) return { idType: '', idValue: '' };
    if (!structures.has(id)) {
      const s = await store.getStructure(id);
      structures.set(id, s ? { idType: s.idType, idValue: s.idValue } : { idType: '', idValue: `#${id}` });
    }
    return structures.get(id)!;
  };
  const blank = { peer: '', protocol: '', method: '', outcome: '' };
  const rows: IndicatorRow[] = [];

  const mailboxes = await store.usageMailboxes(from, to);
  const messages = await store.usageMessages(from, to);
  // Every (structure, type) with a mailbox or a message gets the full set of rows, zeros included.
  const groups = new Map<string, { structureId: number | null; mailboxType: MailboxType }>();
  for (const g of [...mailboxes, ...messages]) groups.set(`${g.structureId ?? ''}|${g.mailboxType}`, { structureId: g.structureId, mailboxType: g.mailboxType });
  const order = [...groups.values()].sort((a, b) => (a.structureId ?? 0) - (b.structureId ?? 0) || MAILBOX_TYPES.indexOf(a.mailboxType) - MAILBOX_TYPES.indexOf(b.mailboxType));
  for (const g of order) {
    const s = await structureOf(g.structureId);
    const base = { month, structure_id_type: s.idType, structure_id: s.idValue, mailbox_type: g.mailboxType };
    const mb = mailboxes.find((m) => m.structureId === g.structureId && m.mailboxType === g.mailboxType);
    for (const k of ['active', 'created', 'suspended', 'deleted'] as const) rows.push({ ...base, indicator: `mailboxes_${k}`, ...blank, value: mb?.[k] ?? 0 });
    for (const flow of FLOWS)
      for (const peer of PEERS) {
        const c = messages.find((m) => m.structureId === g.structureId && m.mailboxType === g.mailboxType && m.flow === flow && m.peer === peer);
        rows.push({ ...base, indicator: `messages_${flow}`, ...blank, peer, value: c?.messages ?? 0 });
        rows.push({ ...base, indicator: `messages_${flow}_with_attachment`, ...blank, peer, value: c?.withAttachment ?? 0 });
        rows.push({ ...base, indicator: `messages_${flow}_with_xdm`, ...blank, peer, value: c?.withXdm ?? 0 });
      }
  }
  // Connections: operator-wide (a login is a user's, not a mailbox's), by protocol, method, outcome.
  for (const c of await store.usageConnections(from, to)) {
    rows.push({
      month,
      structure_id_type: '',
      structure_id: '',
      mailbox_type: '',
      indicator: 'connections',
      peer: '',
      protocol: PROTOCOL_NAMES[c.protocol] ?? c.protocol,
      method: c.method,
      outcome: c.success ? 'success' : 'failure',
      value: c.count,
    });
  }
  return rows;
}

/** RFC 4180 CSV: a header line, CRLF line ends, fields quoted only when needed. */
export function indicatorsCsv(rows: readonly IndicatorRow[]): string {
  const field = (v: string | number) => {
    const s = String(v);
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return [INDICATOR_COLUMNS.join(','), ...rows.map((r) => INDICATOR_COLUMNS.map((c) => field(r[c])).join(','))].join('\r\n') + '\r\n';
}

/** The JSON document: the format's name and version, the period, the columns, the rows. */
export function indicatorsJson(rows: readonly IndicatorRow[], month: string, generatedAt = new Date()): string {
  const { from, to } = monthPeriod(month);
  return JSON.stringify({ format: 'caducee-indicators', version: FORMAT_VERSION, month, period: { from, to }, generatedAt: generatedAt.toISOString(), columns: INDICATOR_COLUMNS, rows }, null, 2) + '\n';
}

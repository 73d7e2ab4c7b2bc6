// French formatting helpers and the MSSanté conventions the reader applies.

/** IHE XDM subject prefix (ANS "DMP / MSSanté" integration guide): hidden, a badge shows it instead. */
export const XDM_PREFIX = /^\s*XDM\/1\.0\/DDM\+?\s*/i;
export const displaySubject = (s: string) => s.replace(XDM_PREFIX, '') || '(sans objet)';

export function size(n: number): string {
  if (n < 1024) return `${n} o`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10240 ? 1 : 0).replace('.', ',')} Ko`;
  return `${(n / 1024 / 1024).toFixed(1).replace('.', ',')} Mo`;
}

const dayFmt = new Intl.DateTimeFormat('fr-FR', { day: 'numeric', month: 'short' });
const timeFmt = new Intl.DateTimeFormat('fr-FR', { hour: '2-digit', minute: '2-digit' });
const fullFmt = new Intl.DateTimeFormat('fr-FR', { dateStyle: 'full', timeStyle: 'short' });

export function shortDate(iso: string | null): string {
  if (!iso) return '';
  const d = new Date(iso);
  return d.toDateString() === new Date().toDateString() ? timeFmt.format(d) : dayFmt.format(d);
}
export const longDate = (iso: string | null) => (iso ? fullFmt.format(new Date(iso)) : '');

export const addrText = (a: { name: string | null; email: string }) => (a.name ? `${a.name} <${a.email}>` : a.email);
export const addrShort = (a: { name: string | null; email: string } | undefined) => (a ? a.name || a.email : '');

export const FOLDER_NAMES: Record<string, string> = {
  inbox: 'Boîte de réception',
  sent: 'Envoyés',
  drafts: 'Brouillons',
  trash: 'Corbeille',
  junk: 'Indésirables',
  archive: 'Archives',
};

export const STATUS_TEXT: Record<string, string> = {
  queued: 'En attente d’envoi',
  relayed: 'Transmis à l’opérateur du destinataire',
  delivered: 'Distribué',
  failed: 'Échec',
  displayed: 'Lu',
  processed: 'Traité',
  error: 'Erreur signalée par le destinataire',
};

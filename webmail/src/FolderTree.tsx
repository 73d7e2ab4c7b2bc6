// The mailbox and folder tree: my mailboxes, « Autres utilisateurs » (mailboxes delegated to
// me, golden rule 1: the secretariat reads the physician's mail) and « Partagés »
// (organisational mailboxes), each folder with its unread count.
import type { Folder, MailboxInfo } from './api';
import { FOLDER_NAMES } from './format';

const ORDER = ['inbox', 'drafts', 'sent', 'archive', 'junk', 'trash'];
const sortFolders = (f: Folder[]) => [...f].sort((a, b) => (a.role ? ORDER.indexOf(a.role) : 99) - (b.role ? ORDER.indexOf(b.role) : 99) || a.name.localeCompare(b.name, 'fr'));
export const folderLabel = (f: Folder) => (f.role ? FOLDER_NAMES[f.role] : f.name);

export function FolderTree({ mailboxes, current, onOpen }: { mailboxes: MailboxInfo[]; current: string | null; onOpen: (m: MailboxInfo, f: Folder) => void }) {
  const groups: [string, MailboxInfo[]][] = [
    ['Mes boîtes', mailboxes.filter((m) => m.role === 'own')],
    ['Autres utilisateurs', mailboxes.filter((m) => m.role === 'delegated')],
    ['Partagés', mailboxes.filter((m) => m.role === 'shared')],
  ];
  return (
    <nav className="folders" aria-label="Boîtes et dossiers">
      {groups
        .filter(([, list]) => list.length)
        .map(([title, list]) => (
          <section key={title} aria-labelledby={`g-${title}`}>
            <h2 id={`g-${title}`}>{title}</h2>
            {list.map((m) => (
              <div key={m.address} className="mailbox">
                <h3 title={m.address}>{m.displayName || m.address}</h3>
                <ul>
                  {sortFolders(m.folders).map((f) => (
                    <li key={f.id}>
                      <button type="button" aria-current={current === f.id ? 'page' : undefined} onClick={() => onOpen(m, f)}>
                        <span>{folderLabel(f)}</span>
                        {f.unreadEmails > 0 && (
                          <span className="count">
                            {f.unreadEmails}
                            <span className="sr-only"> non lus</span>
                          </span>
                        )}
                      </button>
                    </li>
                  ))}
                </ul>
              </div>
            ))}
          </section>
        ))}
    </nav>
  );
}

// The mail screens: banner (search, compose, tracking, settings, logout), the folder tree, the
// virtualised message list, the reader and the composer; live updates from the server's event
// stream (GET /api/v1/events, Server-Sent Events, resumed by the browser with Last-Event-ID);
// keyboard shortcuts for the common actions (shown by « ? »).
import { useCallback, useEffect, useRef, useState } from 'react';
import { api, ApiError, type EmailList, type EmailSummary, type Folder, type MailboxInfo, type Me, type SessionInfo } from './api';
import { Composer, replyInit, type ComposeInit } from './Composer';
import { FolderTree, folderLabel } from './FolderTree';
import { addrShort, displaySubject, shortDate } from './format';
import { Reader } from './Reader';
import { Settings } from './Settings';
import { Tracking } from './Tracking';
import { VirtualList } from './VirtualList';

type View = 'mail' | 'settings' | 'tracking';
const viewOf = (p: string): View => (p.startsWith('/reglages') ? 'settings' : p.startsWith('/suivi') ? 'tracking' : 'mail');
const PATHS: Record<View, string> = { mail: '/', settings: '/reglages', tracking: '/suivi' };
const PAGE = 200;

const SHORTCUTS: [string, string][] = [
  ['j / ↓', 'message suivant'],
  ['k / ↑', 'message précédent'],
  ['Entrée / o', 'ouvrir le message'],
  ['u / Échap', 'revenir à la liste'],
  ['r', 'répondre'],
  ['a', 'répondre à tous'],
  ['f', 'transférer'],
  ['n / c', 'nouveau message'],
  ['Suppr / #', 'supprimer'],
  ['/', 'rechercher'],
  ['Ctrl + Entrée', 'envoyer (dans le message en cours)'],
  ['?', 'afficher cette aide'],
];

interface ListState {
  key: string;
  emails: (EmailSummary | undefined)[];
  total: number;
  cursor: string | null;
  loading: boolean;
  search?: string;
}

export function MailApp({ session, onLogout }: { session: SessionInfo; onLogout: () => void }) {
  const [me, setMe] = useState<Me | null>(null);
  const [apiError, setApiError] = useState<string | null>(null);
  const [view, setView] = useState<View>(viewOf(location.pathname));
  const [folder, setFolder] = useState<{ mailbox: MailboxInfo; folder: Folder } | null>(null);
  const [list, setList] = useState<ListState | null>(null);
  const [selected, setSelected] = useState(-1);
  const [openId, setOpenId] = useState<string | null>(null);
  const [compose, setCompose] = useState<ComposeInit | null>(() => (sessionStorage.getItem('caducee.draft') ? {} : null));
  const [prefs, setPrefs] = useState<{ signature: string; listDensity: string; remoteContent: 'ask' | 'never' }>({ signature: '', listDensity: 'comfortable', remoteContent: 'ask' });
  const [subVersion, setSubVersion] = useState(0);
  const [help, setHelp] = useState(false);
  const [announce, setAnnounce] = useState('');
  const [foldersOpen, setFoldersOpen] = useState(false);
  const searchRef = useRef<HTMLInputElement>(null);
  const listRef = useRef<ListState | null>(null);
  listRef.current = list;
  const folderRef = useRef(folder);
  folderRef.current = folder;

  const go = (v: View) => {
    history.pushState(null, '', PATHS[v]);
    setView(v);
  };
  useEffect(() => {
    const onPop = () => setView(viewOf(location.pathname));
    addEventListener('popstate', onPop);
    return () => removeEventListener('popstate', onPop);
  }, []);
  useEffect(() => {
    document.title = `${view === 'settings' ? 'Réglages' : view === 'tracking' ? 'Suivi des envois' : folder ? folderLabel(folder.folder) : 'Messagerie'} — Caducée`;
  }, [view, folder]);

  const loadMe = useCallback(async () => {
    try {
      const m = await api<Me>('GET', '/api/v1/me');
      setMe(m);
      setApiError(null);
      setFolder((cur) => {
        if (cur) {
          const mb = m.mailboxes.find((x) => x.address === cur.mailbox.address);
          const f = mb?.folders.find((x) => x.id === cur.folder.id);
          if (mb && f) return { mailbox: mb, folder: f };
        }
        const first = m.mailboxes.find((x) => x.role === 'own') ?? m.mailboxes[0];
        const inbox = first?.folders.find((f) => f.role === 'inbox') ?? first?.folders[0];
        return first && inbox ? { mailbox: first, folder: inbox } : null;
      });
    } catch (e) {
      setApiError(e instanceof ApiError && e.status === 404 ? 'L’interface de programmation de la messagerie (/api/v1) n’est pas disponible sur ce serveur : seuls les réglages fonctionnent.' : e instanceof ApiError ? e.message : 'Erreur');
      setMe((cur) => cur ?? { login: session.user?.login ?? '', displayName: session.user?.displayName ?? '', maxMessageSize: 10 * 1024 * 1024, mailboxes: [], state: '' });
    }
  }, [session]);

  useEffect(() => {
    void loadMe();
    api<typeof prefs>('GET', '/api/v1/preferences').then(setPrefs, () => {});
  }, [loadMe]);

  // One request per page: the cursor being fetched is remembered (renders may ask again meanwhile).
  const inflight = useRef<string | null>(null);
  const loadPage = useCallback(async (reset: boolean) => {
    const f = folderRef.current;
    if (!f) return;
    const key = f.folder.id;
    const cur = listRef.current;
    if (!reset && (!cur || cur.key !== key || !cur.cursor || inflight.current === cur.cursor)) return;
    const cursor = reset ? null : cur!.cursor;
    inflight.current = cursor ?? `first:${key}`;
    const q = `/api/v1/folders/${encodeURIComponent(key)}/emails?sort=receivedAt&order=desc&limit=${PAGE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    try {
      const r = await api<EmailList>('GET', q);
      setList((prev) => {
        const base = !reset && prev && prev.key === key ? (prev.emails.filter(Boolean) as EmailSummary[]) : [];
        const known = new Set(base.map((e) => e.id));
        const emails = [...base, ...r.emails.filter((e) => !known.has(e.id))];
        return { key, emails, total: Math.max(r.total, emails.length), cursor: r.nextCursor, loading: false };
      });
    } catch {
      /* the next scroll or event retries */
    } finally {
      if (inflight.current === (cursor ?? `first:${key}`)) inflight.current = null;
    }
  }, []);

  useEffect(() => {
    setSelected(-1);
    setList(null);
    if (folder) void loadPage(true);
  }, [folder?.folder.id, loadPage]);

  // Live updates: a delivery to the open folder reloads its first page; counts are refreshed.
  useEffect(() => {
    if (typeof EventSource === 'undefined') return;
    const es = new EventSource('/api/v1/events');
    const onEmail = (ev: MessageEvent) => {
      let d: any = {};
      try {
        d = JSON.parse(ev.data);
      } catch {
        /* a malformed event only triggers a refresh */
      }
      if (!listRef.current?.search && (!d.folderId || d.folderId === folderRef.current?.folder.id)) {
        void loadPage(true);
        if (d.kind === 'created') setAnnounce('Nouveau message reçu.');
      }
      void loadMe();
    };
    es.addEventListener('email', onEmail);
    es.addEventListener('folder', () => void loadMe());
    es.addEventListener('mailboxes', () => void loadMe());
    es.addEventListener('submission', () => setSubVersion((v) => v + 1));
    es.addEventListener('reset', () => (void loadMe(), void loadPage(true)));
    return () => es.close();
  }, [loadMe, loadPage]);

  const search = async (text: string) => {
    if (!text.trim() || !folder) return void loadPage(true);
    try {
      const r = await api<EmailList>('GET', `/api/v1/search?mailbox=${encodeURIComponent(folder.mailbox.address)}&text=${encodeURIComponent(text)}&limit=${PAGE}`);
      setList({ key: folder.folder.id, emails: r.emails, total: r.emails.length, cursor: null, loading: false, search: text });
      setSelected(-1);
      setAnnounce(`${r.total} résultat${r.total > 1 ? 's' : ''}.`);
    } catch (e) {
      setAnnounce(e instanceof ApiError ? e.message : 'Recherche impossible.');
    }
  };

  const open = (i: number) => {
    const e = list?.emails[i];
    if (!e) return;
    setSelected(i);
    setOpenId(e.id);
    setCompose(null);
    if (!e.seen) setList((l) => (l ? { ...l, emails: l.emails.map((x, j) => (j === i && x ? { ...x, seen: true } : x)) } : l));
  };
  const myAddresses = (me?.mailboxes ?? []).map((m) => m.address.toLowerCase());
  const reply = (e: Parameters<typeof replyInit>[0], mode: 'reply' | 'reply-all' | 'forward') => {
    sessionStorage.removeItem('caducee.draft');
    setCompose(replyInit(e, mode, myAddresses));
  };
  const del = async (id: string) => {
    try {
      await api('DELETE', `/api/v1/emails/${encodeURIComponent(id)}`);
      setOpenId(null);
      setAnnounce('Message supprimé.');
      void loadPage(true);
    } catch (e) {
      setAnnounce(e instanceof ApiError ? e.message : 'Suppression impossible.');
    }
  };

  // Keyboard shortcuts (not while typing).
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const t = e.target as HTMLElement;
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      if (t.closest('input, textarea, select, [contenteditable="true"]')) {
        if (e.key === 'Escape') t.blur();
        return;
      }
      if (view !== 'mail' && !['n', 'c', '?'].includes(e.key)) return;
      const n = list?.emails.length ?? 0;
      const act: Record<string, () => void> = {
        j: () => setSelected((s) => Math.min(s + 1, n - 1)),
        ArrowDown: () => setSelected((s) => Math.min(s + 1, n - 1)),
        k: () => setSelected((s) => Math.max(s - 1, 0)),
        ArrowUp: () => setSelected((s) => Math.max(s - 1, 0)),
        o: () => open(selected),
        u: () => (setOpenId(null), setCompose(null)),
        n: () => (go('mail'), sessionStorage.removeItem('caducee.draft'), setCompose({})),
        c: () => (go('mail'), sessionStorage.removeItem('caducee.draft'), setCompose({})),
        '/': () => searchRef.current?.focus(),
        '?': () => setHelp((h) => !h),
        '#': () => openId && void del(openId),
        Delete: () => openId && void del(openId),
      };
      if (e.key === 'Escape') {
        if (help) setHelp(false);
        else if (compose === null) setOpenId(null);
        return;
      }
      if (e.key === 'Enter' && t.closest('.vlist') === null && selected >= 0 && !t.closest('button, a')) return open(selected);
      const fn = act[e.key];
      if (fn) {
        e.preventDefault();
        fn();
      }
    };
    addEventListener('keydown', onKey);
    return () => removeEventListener('keydown', onKey);
  }, [view, list, selected, openId, help, compose]);

  // Arrow keys / j / k move the focus along the list rows too.
  useEffect(() => {
    if (selected < 0) return;
    requestAnimationFrame(() => (document.querySelector(`[data-row="${selected}"]`) as HTMLElement | null)?.focus());
  }, [selected]);

  const mailboxes = me?.mailboxes ?? [];
  const dense = prefs.listDensity === 'compact';
  const showing = compose ? 'composer' : openId ? 'reader' : 'list';

  return (
    <div className="app">
      <a className="skip" href="#contenu">
        Aller au contenu
      </a>
      <header className="banner" role="banner">
        <p className="brand">
          <a href="/" onClick={(e) => (e.preventDefault(), go('mail'), setOpenId(null), setCompose(null))}>
            Caducée
          </a>
        </p>
        <form
          role="search"
          className="search"
          onSubmit={(e) => {
            e.preventDefault();
            void search(searchRef.current?.value ?? '');
          }}
        >
          <label htmlFor="q" className="sr-only">
            Rechercher dans la boîte
          </label>
          <input id="q" ref={searchRef} type="search" placeholder="Rechercher (expéditeur, objet, texte)" aria-keyshortcuts="/" />
          <button type="submit">Rechercher</button>
        </form>
        <nav aria-label="Menu principal" className="menu">
          <button type="button" className="primary" onClick={() => (go('mail'), sessionStorage.removeItem('caducee.draft'), setCompose({}))} aria-keyshortcuts="n">
            Nouveau message
          </button>
          <a href="/suivi" aria-current={view === 'tracking' ? 'page' : undefined} onClick={(e) => (e.preventDefault(), go('tracking'))}>
            Suivi des envois
          </a>
          <a href="/reglages" aria-current={view === 'settings' ? 'page' : undefined} onClick={(e) => (e.preventDefault(), go('settings'))}>
            Réglages
          </a>
          <button type="button" onClick={onLogout}>
            Se déconnecter <span className="sr-only">({session.user?.displayName})</span>
          </button>
        </nav>
      </header>
      <p className="sr-only" role="status" aria-live="polite">
        {announce}
      </p>
      {help && (
        <div className="help" role="dialog" aria-labelledby="help-h" aria-modal="false">
          <h2 id="help-h">Raccourcis clavier</h2>
          <dl>
            {SHORTCUTS.map(([k, v]) => (
              <div key={k}>
                <dt>
                  <kbd>{k}</kbd>
                </dt>
                <dd>{v}</dd>
              </div>
            ))}
          </dl>
          <button type="button" onClick={() => setHelp(false)}>
            Fermer
          </button>
        </div>
      )}
      {apiError && (
        <p className="notice" role="status">
          {apiError}
        </p>
      )}
      <div className={`layout show-${view === 'mail' ? showing : 'page'}${foldersOpen ? ' folders-open' : ''}`}>
        {view === 'mail' && (
          <FolderTree mailboxes={mailboxes} current={folder?.folder.id ?? null} onOpen={(m, f) => (setFolder({ mailbox: m, folder: f }), setOpenId(null), setCompose(null), setFoldersOpen(false))} />
        )}
        <main id="contenu" tabIndex={-1}>
          {view === 'settings' && <Settings mailboxes={mailboxes} method={session.method} onPrefs={setPrefs} />}
          {view === 'tracking' && <Tracking version={subVersion} />}
          {view === 'mail' && (
            <>
              <section className="list" aria-labelledby="list-h">
                <button type="button" className="folders-toggle" aria-expanded={foldersOpen} onClick={() => setFoldersOpen((o) => !o)}>
                  Boîtes et dossiers
                </button>
                <h1 id="list-h">
                  {folder ? `${folderLabel(folder.folder)} — ${folder.mailbox.displayName || folder.mailbox.address}` : 'Messagerie'}
                  {list?.search && ` (recherche « ${list.search} »)`}
                </h1>
                {list && list.total === 0 && <p>Aucun message.</p>}
                {list && (
                  <VirtualList
                    label="Messages"
                    count={list.total}
                    rowHeight={dense ? 44 : 68}
                    scrollTo={selected}
                    item={(i) => list.emails[i]}
                    onNeedMore={(last) => last >= list.emails.length - 20 && void loadPage(false)}
                    render={(e, i) =>
                      e ? (
                        <button
                          type="button"
                          data-row={i}
                          tabIndex={i === Math.max(selected, 0) ? 0 : -1}
                          className={`row${e.seen ? '' : ' unread'}${e.id === openId ? ' open' : ''}`}
                          aria-current={e.id === openId ? 'true' : undefined}
                          onClick={() => open(i)}
                          onKeyDown={(k) => k.key === 'Enter' && (k.preventDefault(), k.stopPropagation(), open(i))}
                        >
                          <span className="from">
                            {!e.seen && <span className="sr-only">Non lu : </span>}
                            {addrShort(e.from[0])}
                          </span>
                          <span className="date">{shortDate(e.receivedAt)}</span>
                          <span className="subject">
                            {e.xdm && <span className="badge xdm">DMP</span>}
                            {e.patient && <span className="badge patient">Patient</span>}
                            {e.attachmentCount > 0 && <span className="badge pj" title={`${e.attachmentCount} pièce(s) jointe(s)`}>PJ<span className="sr-only"> ({e.attachmentCount} pièce(s) jointe(s))</span></span>}
                            {displaySubject(e.subject)}
                          </span>
                          {!dense && <span className="preview">{e.preview}</span>}
                        </button>
                      ) : (
                        <span className="row placeholder">Chargement…</span>
                      )
                    }
                  />
                )}
              </section>
              {openId && !compose && (
                <Reader
                  id={openId}
                  remoteDefault={prefs.remoteContent}
                  onReply={reply}
                  onDelete={(e) => void del(e.id)}
                  onBack={() => {
                    setOpenId(null);
                    requestAnimationFrame(() => (document.querySelector(`[data-row="${Math.max(selected, 0)}"]`) as HTMLElement | null)?.focus());
                  }}
                />
              )}
              {compose && me && (
                <Composer
                  mailboxes={mailboxes}
                  maxMessageSize={me.maxMessageSize}
                  patientDomain={me.patientDomain ?? 'patient.mssante.fr'}
                  init={compose}
                  signature={prefs.signature}
                  onClose={(sent) => {
                    setCompose(null);
                    if (sent) {
                      setAnnounce('Message envoyé.');
                      setSubVersion((v) => v + 1);
                    }
                  }}
                />
              )}
            </>
          )}
        </main>
      </div>
    </div>
  );
}

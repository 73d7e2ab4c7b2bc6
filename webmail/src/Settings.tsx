// Settings: app passwords and sessions (list, revoke), second factor, signature and display
// preferences, delegations of my mailboxes (who may read / send on my behalf / manage: through
// Core's ACL operations on the server), and the absence message (golden rule 3).
import { useEffect, useState, type FormEvent, type ReactNode } from 'react';
import { api, ApiError, type MailboxInfo } from './api';

function Section({ id, title, children }: { id: string; title: string; children: ReactNode }) {
  return (
    <section className="card" aria-labelledby={id}>
      <h2 id={id}>{title}</h2>
      {children}
    </section>
  );
}

function useLoad<T>(path: string): [T | null, string | null, () => void] {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [n, setN] = useState(0);
  useEffect(() => {
    api<T>('GET', path)
      .then((d) => (setData(d), setError(null)))
      .catch((e) => setError(e instanceof ApiError ? (e.status === 404 ? 'Fonction pas encore disponible sur ce serveur.' : e.message) : 'Erreur'));
  }, [path, n]);
  return [data, error, () => setN((x) => x + 1)];
}

const fmt = (iso: string | null) => (iso ? new Date(iso).toLocaleString('fr-FR') : '—');

function AppPasswords() {
  const [data, error, reload] = useLoad<{ appPasswords: { id: number; label: string; createdAt: string; lastUsedAt: string | null }[] }>('/api/auth/app-passwords');
  const [created, setCreated] = useState<string | null>(null);
  const [err, setErr] = useState<string | null>(null);
  const create = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const form = e.currentTarget;
    try {
      const r = await api<{ password: string }>('POST', '/api/auth/app-passwords', { label: String(new FormData(form).get('label')) });
      setCreated(r.password);
      form.reset();
      reload();
    } catch (x) {
      setErr(x instanceof ApiError ? x.message : 'Erreur');
    }
  };
  return (
    <Section id="s-app" title="Mots de passe d’application (logiciels de messagerie)">
      {(error || err) && <p className="error" role="alert">{error ?? err}</p>}
      {created && (
        <p role="status" className="notice">
          Nouveau mot de passe (affiché une seule fois) : <code data-testid="app-password">{created}</code>
        </p>
      )}
      <div className="table-wrap" tabIndex={0} role="region" aria-label="Mots de passe d’application actifs">
<table>
        <caption className="sr-only">Mots de passe d’application actifs</caption>
        <thead>
          <tr>
            <th scope="col">Nom</th>
            <th scope="col">Créé le</th>
            <th scope="col">Dernière utilisation</th>
            <th scope="col">Action</th>
          </tr>
        </thead>
        <tbody>
          {data?.appPasswords.map((a) => (
            <tr key={a.id}>
              <td>{a.label}</td>
              <td>{fmt(a.createdAt)}</td>
              <td>{fmt(a.lastUsedAt)}</td>
              <td>
                <button type="button" onClick={() => api('DELETE', `/api/auth/app-passwords/${a.id}`).then(reload, () => {})} aria-label={`Révoquer ${a.label}`}>
                  Révoquer
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
</div>
      <form onSubmit={create} className="inline">
        <label htmlFor="ap-label">Nom de l’appareil</label>
        <input id="ap-label" name="label" required maxLength={100} />
        <button type="submit">Créer un mot de passe</button>
      </form>
    </Section>
  );
}

function Sessions() {
  const [data, error, reload] = useLoad<{ sessions: { id: number; method: string; createdAt: string; lastSeenAt: string; remote: string | null; userAgent: string | null; current: boolean }[] }>('/api/auth/sessions');
  return (
    <Section id="s-sessions" title="Sessions ouvertes">
      {error && <p className="error" role="alert">{error}</p>}
      <div className="table-wrap" tabIndex={0} role="region" aria-label="Sessions web ouvertes">
<table>
        <caption className="sr-only">Sessions web ouvertes</caption>
        <thead>
          <tr>
            <th scope="col">Ouverte le</th>
            <th scope="col">Méthode</th>
            <th scope="col">Adresse</th>
            <th scope="col">Navigateur</th>
            <th scope="col">Action</th>
          </tr>
        </thead>
        <tbody>
          {data?.sessions.map((s) => (
            <tr key={s.id}>
              <td>{fmt(s.createdAt)}</td>
              <td>{s.method}</td>
              <td>{s.remote ?? '—'}</td>
              <td>{(s.userAgent ?? '—').slice(0, 60)}</td>
              <td>
                {s.current ? (
                  'Cette session'
                ) : (
                  <button type="button" onClick={() => api('DELETE', `/api/auth/sessions/${s.id}`).then(reload, () => {})}>
                    Fermer
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
</div>
    </Section>
  );
}

function SecondFactor({ method }: { method?: string }) {
  return (
    <Section id="s-2fa" title="Vérification en deux étapes">
      <p>
        Votre connexion actuelle : <strong>{method === 'CERTIFICATE' ? 'carte CPS / certificat' : method === 'OIDC' ? 'Pro Santé Connect' : 'mot de passe et code à usage unique'}</strong>.
        La vérification en deux étapes est obligatoire. En cas de perte de votre téléphone, utilisez un code de secours ou demandez à votre administrateur de la réinitialiser.
      </p>
    </Section>
  );
}

interface Prefs {
  signature: string;
  listDensity: 'comfortable' | 'compact';
  remoteContent: 'ask' | 'never';
}
function Preferences({ onSaved }: { onSaved: (p: Prefs) => void }) {
  const [data, error] = useLoad<Prefs>('/api/v1/preferences');
  const [msg, setMsg] = useState<string | null>(null);
  const save = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    const p: Prefs = { signature: String(f.get('signature')), listDensity: f.get('density') === 'compact' ? 'compact' : 'comfortable', remoteContent: f.get('remote') === 'never' ? 'never' : 'ask' };
    try {
      onSaved(await api<Prefs>('PUT', '/api/v1/preferences', p));
      setMsg('Préférences enregistrées.');
    } catch (x) {
      setMsg(x instanceof ApiError ? x.message : 'Erreur');
    }
  };
  return (
    <Section id="s-prefs" title="Signature et affichage">
      {error && <p className="error">{error}</p>}
      {data && (
        <form onSubmit={save}>
          <label htmlFor="p-sig">Signature</label>
          <textarea id="p-sig" name="signature" defaultValue={data.signature} rows={4} />
          <label htmlFor="p-density">Densité de la liste</label>
          <select id="p-density" name="density" defaultValue={data.listDensity}>
            <option value="comfortable">Confortable</option>
            <option value="compact">Compacte</option>
          </select>
          <label htmlFor="p-remote">Contenu distant des messages</label>
          <select id="p-remote" name="remote" defaultValue={data.remoteContent}>
            <option value="ask">Bloqué, affichable à la demande</option>
            <option value="never">Toujours bloqué</option>
          </select>
          <button type="submit">Enregistrer</button>
          {msg && <span role="status">{msg}</span>}
        </form>
      )}
    </Section>
  );
}

const RIGHTS: [string, string][] = [
  ['read', 'Lire'],
  ['send', 'Envoyer de ma part'],
  ['manage', 'Gérer'],
];
function Delegations({ mailbox }: { mailbox: MailboxInfo }) {
  const path = `/api/v1/mailboxes/${encodeURIComponent(mailbox.address)}/grants`;
  const [data, error, reload] = useLoad<{ grants: { login: string; displayName: string; rights: string[]; owner?: boolean }[] }>(path);
  const [err, setErr] = useState<string | null>(null);
  const put = (login: string, rights: string[]) =>
    (rights.length ? api('PUT', `${path}/${encodeURIComponent(login)}`, { rights }) : api('DELETE', `${path}/${encodeURIComponent(login)}`)).then(reload, (x) => setErr(x instanceof ApiError ? x.message : 'Erreur'));
  const add = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    void put(String(f.get('login')).trim(), RIGHTS.filter(([r]) => f.get(r)).map(([r]) => r));
  };
  const id = `d-${mailbox.address.replace(/[^a-z0-9]/gi, '-')}`;
  return (
    <div className="delegation">
      <h3>{mailbox.address}</h3>
      {(error || err) && <p className="error" role="alert">{error ?? err}</p>}
      <div className="table-wrap" tabIndex={0} role="region" aria-label={`Délégations de ${mailbox.address}`}>
<table>
        <caption className="sr-only">Délégations de {mailbox.address}</caption>
        <thead>
          <tr>
            <th scope="col">Personne</th>
            {RIGHTS.map(([r, l]) => (
              <th key={r} scope="col">
                {l}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {data?.grants.filter((g) => !g.owner).map((g) => (
            <tr key={g.login}>
              <td>{g.displayName || g.login}</td>
              {RIGHTS.map(([r, l]) => (
                <td key={r}>
                  <input
                    type="checkbox"
                    aria-label={`${l} : ${g.displayName || g.login}`}
                    checked={g.rights.includes(r)}
                    onChange={(e) => void put(g.login, e.target.checked ? [...g.rights, r] : g.rights.filter((x) => x !== r))}
                  />
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
</div>
      <form onSubmit={add} className="inline">
        <label htmlFor={`${id}-login`}>Identifiant de la personne</label>
        <input id={`${id}-login`} name="login" required />
        {RIGHTS.map(([r, l]) => (
          <label key={r}>
            <input type="checkbox" name={r} defaultChecked={r === 'read'} /> {l}
          </label>
        ))}
        <button type="submit">Déléguer</button>
      </form>
    </div>
  );
}

function Absence({ mailbox }: { mailbox: MailboxInfo }) {
  const path = `/api/v1/mailboxes/${encodeURIComponent(mailbox.address)}/absence`;
  const [data, setData] = useState<any>(undefined);
  const [msg, setMsg] = useState<string | null>(null);
  useEffect(() => {
    api('GET', path).then(setData, () => setData(null));
  }, [path]);
  const save = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    const v = (k: string) => String(f.get(k) ?? '').trim() || null;
    const iso = (k: string) => (v(k) ? new Date(v(k)!).toISOString() : null);
    try {
      setData(await api('PUT', path, { startsAt: iso('startsAt'), endsAt: iso('endsAt'), subject: v('subject'), body: v('body'), substitute: v('substitute') }));
      setMsg('Message d’absence enregistré.');
    } catch (x) {
      setMsg(x instanceof ApiError ? x.message : 'Erreur');
    }
  };
  const local = (iso?: string | null) => (iso ? new Date(iso).toISOString().slice(0, 16) : '');
  const id = `a-${mailbox.address.replace(/[^a-z0-9]/gi, '-')}`;
  if (data === undefined) return null;
  return (
    <form onSubmit={save} className="absence">
      <h3>{mailbox.address}</h3>
      <label htmlFor={`${id}-s`}>Début</label>
      <input id={`${id}-s`} name="startsAt" type="datetime-local" defaultValue={local(data?.startsAt)} />
      <label htmlFor={`${id}-e`}>Fin</label>
      <input id={`${id}-e`} name="endsAt" type="datetime-local" defaultValue={local(data?.endsAt)} />
      <label htmlFor={`${id}-o`}>Objet</label>
      <input id={`${id}-o`} name="subject" defaultValue={data?.subject ?? ''} />
      <label htmlFor={`${id}-b`}>Message</label>
      <textarea id={`${id}-b`} name="body" rows={3} defaultValue={data?.body ?? ''} />
      <label htmlFor={`${id}-r`}>Adresse du remplaçant (facultatif)</label>
      <input id={`${id}-r`} name="substitute" type="email" defaultValue={data?.substitute ?? ''} />
      <button type="submit">Enregistrer</button>
      {data && (
        <button type="button" onClick={() => api('DELETE', path).then(() => (setData(null), setMsg('Message d’absence supprimé.')), () => {})}>
          Supprimer
        </button>
      )}
      {msg && <span role="status">{msg}</span>}
    </form>
  );
}

export function Settings({ mailboxes, method, onPrefs }: { mailboxes: MailboxInfo[]; method?: string; onPrefs: (p: Prefs) => void }) {
  const manageable = mailboxes.filter((m) => m.role === 'own' || m.rights.includes('manage'));
  return (
    <div className="settings">
      <h1 tabIndex={-1}>Réglages</h1>
      <AppPasswords />
      <Sessions />
      <SecondFactor method={method} />
      <Preferences onSaved={onPrefs} />
      <Section id="s-deleg" title="Délégations de mes boîtes">
        {manageable.length ? manageable.map((m) => <Delegations key={m.address} mailbox={m} />) : <p>Aucune boîte dont vous gérez les délégations.</p>}
      </Section>
      <Section id="s-absence" title="Message d’absence">
        {manageable.map((m) => (
          <Absence key={m.address} mailbox={m} />
        ))}
      </Section>
    </div>
  );
}

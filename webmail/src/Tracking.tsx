// Delivery tracking: each sent message, per recipient, where it is (queued, relayed to the next
// operator, delivered by its DSN — RFC 3464 —, failed with the reason, read when an MDN came
// back — RFC 8098). Reloaded on `submission` events.
import { useEffect, useState } from 'react';
import { api, ApiError, type Submission } from './api';
import { displaySubject, STATUS_TEXT } from './format';

export function Tracking({ version }: { version: number }) {
  const [list, setList] = useState<Submission[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api<{ submissions: Submission[] }>('GET', '/api/v1/submissions?limit=100')
      .then((r) => (setList(r.submissions), setError(null)))
      .catch((e) => setError(e instanceof ApiError ? e.message : 'Erreur'));
  }, [version]);
  return (
    <div className="tracking">
      <h1 tabIndex={-1}>Suivi des envois</h1>
      {error && <p role="status">{error}</p>}
      {list && !list.length && <p>Aucun message envoyé.</p>}
      {list?.map((s) => (
        <section key={s.id} className="card" aria-labelledby={`t-${s.id}`}>
          <h2 id={`t-${s.id}`}>{displaySubject(s.subject)}</h2>
          <p className="meta">
            De {s.from}, le {new Date(s.sentAt).toLocaleString('fr-FR')}
          </p>
          <div className="table-wrap" tabIndex={0} role="region" aria-label="État par destinataire">
<table>
            <caption className="sr-only">État par destinataire</caption>
            <thead>
              <tr>
                <th scope="col">Destinataire</th>
                <th scope="col">État</th>
                <th scope="col">Détail</th>
              </tr>
            </thead>
            <tbody>
              {s.recipients.map((r) => (
                <tr key={r.address} data-status={r.status}>
                  <td>{r.address}</td>
                  <td>
                    <span className={`status-${r.status}`}>{STATUS_TEXT[r.status] ?? r.status}</span>
                  </td>
                  <td>{r.detail ?? ''}</td>
                </tr>
              ))}
            </tbody>
          </table>
</div>
        </section>
      ))}
    </div>
  );
}

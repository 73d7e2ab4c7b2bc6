// The reader: headers, MSSanté marks (XDM document badge with the `XDM/1.0/DDM+` subject prefix
// hidden, patient conversation), the read-receipt offer (RFC 8098 §2.1: the recipient chooses),
// attachments (name, type, size, download) and the body. HTML is sanitised by DOMPurify and
// shown in a sandboxed iframe (no scripts, opaque origin); remote images and CSS urls are
// removed until the user asks for them (they tell the sender when and where mail is read).
import DOMPurify from 'dompurify';
import { useEffect, useMemo, useRef, useState } from 'react';
import { api, ApiError, type Email } from './api';
import { addrText, displaySubject, longDate, size } from './format';

const REMOTE = /^(https?:)?\/\//i;

export function sanitize(html: string, allowRemote: boolean): { html: string; blocked: number } {
  let blocked = 0;
  const purify = DOMPurify();
  purify.addHook('afterSanitizeAttributes', (node) => {
    if (node instanceof Element) {
      if (node.tagName === 'A') {
        node.setAttribute('target', '_blank');
        node.setAttribute('rel', 'noopener noreferrer');
      }
      for (const attr of ['src', 'srcset', 'background', 'poster']) {
        const v = node.getAttribute(attr);
        if (v && !allowRemote && (REMOTE.test(v.trim()) || attr === 'srcset')) {
          node.removeAttribute(attr);
          blocked++;
        }
      }
      const style = node.getAttribute('style');
      if (style && !allowRemote && /url\s*\(/i.test(style)) {
        node.setAttribute('style', style.replace(/url\s*\([^)]*\)/gi, 'none'));
        blocked++;
      }
    }
  });
  purify.addHook('uponSanitizeElement', (node, data) => {
    if (data.tagName === 'style' && !allowRemote && node.textContent && /url\s*\(|@import/i.test(node.textContent)) {
      node.textContent = node.textContent.replace(/@import[^;]*;?/gi, '').replace(/url\s*\([^)]*\)/gi, 'none');
      blocked++;
    }
  });
  const clean = purify.sanitize(html, { WHOLE_DOCUMENT: true, FORBID_TAGS: ['form', 'input', 'button', 'textarea', 'select'], ADD_TAGS: ['style'] }) as string;
  return { html: clean, blocked };
}

export function Reader(props: { id: string; onReply: (e: Email, mode: 'reply' | 'reply-all' | 'forward') => void; onDelete: (e: Email) => void; onBack: () => void; remoteDefault: 'ask' | 'never' }) {
  const [email, setEmail] = useState<Email | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [remote, setRemote] = useState(false);
  const [receipt, setReceipt] = useState<'offer' | 'confirm' | 'sent' | 'declined' | null>(null);
  const [receiptError, setReceiptError] = useState<string | null>(null);
  const heading = useRef<HTMLHeadingElement>(null);

  useEffect(() => {
    let live = true;
    setEmail(null);
    setError(null);
    setRemote(false);
    setReceiptError(null);
    api<Email>('GET', `/api/v1/emails/${encodeURIComponent(props.id)}`)
      .then((e) => {
        if (!live) return;
        setEmail(e);
        setReceipt(e.readReceiptRequested && !e.mdnSent ? 'offer' : null);
        if (!e.seen) void api('PATCH', `/api/v1/emails/${encodeURIComponent(e.id)}`, { seen: true }).catch(() => {});
      })
      .catch((e) => live && setError(e instanceof ApiError ? e.message : 'Message introuvable.'));
    return () => {
      live = false;
    };
  }, [props.id]);

  useEffect(() => {
    if (email) heading.current?.focus();
  }, [email]);

  // Shortcuts on the open message: r reply, a reply to all, f forward (not while typing).
  useEffect(() => {
    if (!email) return;
    const onKey = (e: KeyboardEvent) => {
      if (e.ctrlKey || e.metaKey || e.altKey || (e.target as HTMLElement).closest('input, textarea, select, [contenteditable="true"]')) return;
      const mode = ({ r: 'reply', a: 'reply-all', f: 'forward' } as const)[e.key as 'r' | 'a' | 'f'];
      if (!mode) return;
      e.preventDefault();
      props.onReply(email, mode);
    };
    addEventListener('keydown', onKey);
    return () => removeEventListener('keydown', onKey);
  }, [email, props.onReply]);

  const body = useMemo(() => (email?.htmlBody ? sanitize(email.htmlBody, remote) : null), [email, remote]);

  if (error)
    return (
      <section className="reader" aria-label="Lecture">
        <p role="alert" className="error">
          {error}
        </p>
      </section>
    );
  if (!email)
    return (
      <section className="reader" aria-busy="true" aria-label="Lecture">
        <p>Chargement du message…</p>
      </section>
    );

  // RFC 8098 §3.2.6 (manual-action/MDN-sent-manually; displayed): sent only when the user
  // chooses; the server refuses with a French detail (409 already sent, 400 not asked / not
  // allowed); an address other than the return path needs the user's confirmation (§2.1).
  const sendReceipt = async (confirmed: boolean) => {
    setReceiptError(null);
    try {
      await api('POST', `/api/v1/emails/${encodeURIComponent(email.id)}/mdn`, confirmed ? { confirmed: true } : {});
      setReceipt('sent');
    } catch (e) {
      if (e instanceof ApiError && e.status === 400 && (e.problem as { reason?: string }).reason === 'different-address') setReceipt('confirm');
      else if (e instanceof ApiError && e.status === 409) setReceipt(null);
      setReceiptError(e instanceof ApiError ? e.message : 'Accusé de lecture non envoyé : réessayez.');
    }
  };

  return (
    <article className="reader" aria-labelledby="reader-subject">
      <div className="reader-actions" role="toolbar" aria-label="Actions sur le message">
        <button type="button" className="back" onClick={props.onBack}>
          ← Retour à la liste
        </button>
        <button type="button" onClick={() => props.onReply(email, 'reply')} aria-keyshortcuts="r">
          Répondre
        </button>
        <button type="button" onClick={() => props.onReply(email, 'reply-all')} aria-keyshortcuts="a">
          Répondre à tous
        </button>
        <button type="button" onClick={() => props.onReply(email, 'forward')} aria-keyshortcuts="f">
          Transférer
        </button>
        <button type="button" onClick={() => props.onDelete(email)} aria-keyshortcuts="Delete">
          Supprimer
        </button>
        <a className="button" href={`/api/v1/emails/${encodeURIComponent(email.id)}/raw`} download>
          Message source (.eml)
        </a>
      </div>
      <h2 id="reader-subject" tabIndex={-1} ref={heading}>
        {email.xdm && <span className="badge xdm">Document DMP (XDM)</span>}
        {email.patient && <span className="badge patient">Échange avec un patient</span>}
        {displaySubject(email.subject)}
      </h2>
      <dl className="headers">
        <dt>De</dt>
        <dd>{email.from.map(addrText).join(', ')}</dd>
        {email.sender.length > 0 && email.sender[0]!.email !== email.from[0]?.email && (
          <>
            <dt>Envoyé par</dt>
            <dd>{email.sender.map(addrText).join(', ')}</dd>
          </>
        )}
        <dt>À</dt>
        <dd>{email.to.map(addrText).join(', ')}</dd>
        {email.cc.length > 0 && (
          <>
            <dt>Cc</dt>
            <dd>{email.cc.map(addrText).join(', ')}</dd>
          </>
        )}
        <dt>Date</dt>
        <dd>{longDate(email.sentAt ?? email.receivedAt)}</dd>
      </dl>
      {receipt === 'offer' && (
        <div className="receipt" role="region" aria-label="Accusé de lecture demandé">
          <p>L’expéditeur demande un accusé de lecture.</p>
          <button type="button" onClick={() => void sendReceipt(false)}>
            Envoyer l’accusé de lecture
          </button>
          <button type="button" onClick={() => setReceipt('declined')}>
            Ne pas envoyer
          </button>
        </div>
      )}
      {receipt === 'confirm' && (
        <div className="receipt" role="region" aria-label="Accusé de lecture demandé">
          <p>L’accusé de lecture est demandé à l’adresse {email.dispositionNotificationTo.map(addrText).join(', ')}.</p>
          <button type="button" onClick={() => void sendReceipt(true)}>
            Confirmer l’envoi à cette adresse
          </button>
          <button type="button" onClick={() => (setReceipt('declined'), setReceiptError(null))}>
            Ne pas envoyer
          </button>
        </div>
      )}
      {receiptError && (
        <p role="alert" className="error receipt-error">
          {receiptError}
        </p>
      )}
      {receipt === 'sent' && <p role="status">Accusé de lecture envoyé.</p>}
      {(email.documents?.length ?? 0) > 0 && <Documents email={email} />}
      {(email.documentErrors?.length ?? 0) > 0 && (
        <div className="error doc-errors" role="alert">
          <p>Le dossier de documents (IHE_XDM.ZIP) joint à ce message n’a pas pu être lu :</p>
          <ul>
            {email.documentErrors!.map((d) => (
              <li key={d.partId}>Détail technique (à transmettre à l’expéditeur ou au support) : {d.error}</li>
            ))}
          </ul>
        </div>
      )}
      {email.attachments.length > 0 && (
        <section className="attachments" aria-labelledby="pj-h">
          <h3 id="pj-h">Pièces jointes ({email.attachments.length})</h3>
          <ul>
            {email.attachments.map((a) => (
              <li key={a.partId}>
                <a href={`/api/v1/emails/${encodeURIComponent(email.id)}/parts/${encodeURIComponent(a.partId)}`} download={a.name ?? true}>
                  <span className="name">{a.name ?? 'pièce jointe'}</span>
                </a>{' '}
                <span className="meta">
                  {a.type} · {size(a.size)}
                </span>
              </li>
            ))}
          </ul>
        </section>
      )}
      {body && body.blocked > 0 && !remote && (
        <p className="remote" role="status">
          Le contenu distant (images hébergées ailleurs) est bloqué pour protéger votre confidentialité.{' '}
          {props.remoteDefault === 'ask' && (
            <button type="button" onClick={() => setRemote(true)}>
              Afficher le contenu distant
            </button>
          )}
        </p>
      )}
      {body ? (
        <iframe className="mail-html" title="Contenu du message" sandbox="allow-popups allow-popups-to-escape-sandbox" srcDoc={body.html} />
      ) : (
        <pre className="mail-text">{email.textBody ?? ''}</pre>
      )}
    </article>
  );
}

const KIND_TEXT: Record<string, string> = { NIR: 'NIR', NIA: 'NIA (identifiant d’attente)', test: 'identifiant de test', other: 'autre identifiant' };

/** The documents of an IHE_XDM.ZIP (read by the server with src/xdm: title, type, patient). */
function Documents({ email }: { email: Email }) {
  const docs = email.documents!;
  return (
    <section className="documents" aria-labelledby="docs-h">
      <h3 id="docs-h">Documents du dossier IHE_XDM.ZIP ({docs.length})</h3>
      <div className="table-wrap" tabIndex={0} role="region" aria-label="Documents du dossier">
        <table>
          <caption className="sr-only">Documents du dossier IHE_XDM.ZIP</caption>
          <thead>
            <tr>
              <th scope="col">Titre</th>
              <th scope="col">Type</th>
              <th scope="col">Taille</th>
              <th scope="col">Patient</th>
              <th scope="col">Alertes</th>
            </tr>
          </thead>
          <tbody>
            {docs.map((d) => (
              <tr key={`${d.partId}/${d.path}`} data-doc={d.path}>
                <td>{d.title || d.path}</td>
                <td>
                  {d.typeCode?.displayName ?? d.typeCode?.code ?? d.mimeType ?? 'inconnu'}
                  {d.mimeType && (d.typeCode ? ` (${d.mimeType})` : '')}
                </td>
                <td>{size(d.size)}</td>
                <td>{d.patient ? `${d.patient.id} (${KIND_TEXT[d.patient.kind] ?? d.patient.kind})` : 'non indiqué'}</td>
                <td>{d.warnings ? `${d.warnings} alerte${d.warnings > 1 ? 's' : ''}` : 'aucune'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

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
  const [receipt, setReceipt] = useState<'offer' | 'sent' | 'declined' | null>(null);
  const heading = useRef<HTMLHeadingElement>(null);

  useEffect(() => {
    let live = true;
    setEmail(null);
    setError(null);
    setRemote(false);
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

  const sendReceipt = async () => {
    try {
      await api('POST', `/api/v1/emails/${encodeURIComponent(email.id)}/mdn`, { disposition: 'displayed' });
      setReceipt('sent');
    } catch (e) {
      setError(e instanceof ApiError ? e.message : 'Accusé de lecture non envoyé.');
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
          <button type="button" onClick={sendReceipt}>
            Envoyer l’accusé de lecture
          </button>
          <button type="button" onClick={() => setReceipt('declined')}>
            Ne pas envoyer
          </button>
        </div>
      )}
      {receipt === 'sent' && <p role="status">Accusé de lecture envoyé.</p>}
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

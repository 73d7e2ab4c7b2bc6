// The composer: From (own mailboxes and those I may send on behalf of: the message then carries
// Sender:, RFC 5322 §3.6.2), recipients with directory autocomplete (the server never suggests
// liste-rouge entries), attachments by drag and drop with a progress bar and the operator's size
// limit checked before upload, rich or plain text, drafts saved automatically (server Drafts
// folder, and sessionStorage so that a session expiry loses nothing), replies with
// In-Reply-To/References (RFC 5322 §3.6.4), DSN (RFC 3461 NOTIFY) and read receipt (RFC 8098
// Disposition-Notification-To) options, and golden rule 4: an urgent message to someone who will
// not read it soon gets a warning to phone instead (POST /api/v1/compose/check).
import { useCallback, useEffect, useMemo, useRef, useState, type DragEvent, type KeyboardEvent } from 'react';
import { api, ApiError, upload, type Draft, type Email, type MailboxInfo } from './api';
import { addrText, displaySubject, longDate, size } from './format';

export interface ComposeInit {
  from?: string;
  to?: string[];
  cc?: string[];
  subject?: string;
  text?: string;
  inReplyTo?: string;
  references?: string[];
  forwardOf?: Email;
}

interface Att {
  key: string;
  name: string;
  size: number;
  type: string;
  progress: number;
  uploadId?: string;
  part?: { emailId: string; partId: string };
  error?: string;
}

const DRAFT_KEY = 'caducee.draft';

export function replyInit(e: Email, mode: 'reply' | 'reply-all' | 'forward', me: string[]): ComposeInit {
  const subj = displaySubject(e.subject);
  const quoted = `\n\nLe ${longDate(e.sentAt ?? e.receivedAt)}, ${e.from.map(addrText).join(', ')} a écrit :\n` + (e.textBody ?? '').split('\n').map((l) => `> ${l}`).join('\n');
  if (mode === 'forward')
    return { subject: /^tr\s*:/i.test(subj) ? subj : `Tr : ${subj}`, text: `\n\n-------- Message transféré --------\n${quoted}`, forwardOf: e };
  const target = e.replyTo.length ? e.replyTo : e.from;
  const to = target.map((a) => a.email);
  const cc = mode === 'reply-all' ? [...e.to, ...e.cc].map((a) => a.email).filter((a) => !me.includes(a.toLowerCase()) && !to.includes(a)) : [];
  // RFC 5322 §3.6.4: In-Reply-To is the parent's Message-ID; References its References + Message-ID.
  const references = [...(e.references ?? []), ...(e.messageId ? [e.messageId] : [])];
  return {
    from: e.mailbox,
    to,
    cc,
    subject: /^re\s*:/i.test(subj) ? subj : `Re : ${subj}`,
    text: quoted,
    inReplyTo: e.messageId ?? undefined,
    references: references.length ? references : undefined,
  };
}

type Suggestion = { label: string; address: string; detail?: string };

function RecipientField({ id, label, value, onChange, refused, own }: { id: string; label: string; value: string[]; onChange: (v: string[]) => void; refused: Record<string, string>; own: Suggestion[] }) {
  const [text, setText] = useState('');
  const [suggestions, setSuggestions] = useState<Suggestion[]>([]);
  const [active, setActive] = useState(-1);
  useEffect(() => {
    const q = text.trim();
    if (q.length < 2) return setSuggestions([]);
    const t = setTimeout(() => {
      // Our own mailboxes first (those I use), then the national directory (never liste rouge: the server filters).
      const fold = (x: string) => x.normalize('NFD').replace(/[\u0300-\u036f]/g, '').toLowerCase();
      const mine = own.filter((o) => fold(`${o.label} ${o.address}`).includes(fold(q)));
      api<{ suggestions: Suggestion[] }>('GET', `/api/directory/autocomplete?q=${encodeURIComponent(q)}`)
        .then((r) => setSuggestions([...mine, ...r.suggestions.filter((x) => !mine.some((m) => m.address === x.address))].slice(0, 10)))
        .catch(() => setSuggestions(mine));
    }, 150);
    return () => clearTimeout(t);
  }, [text, own]);
  const add = (a: string) => {
    const v = a.trim().replace(/[,;]$/, '');
    if (v && !value.includes(v)) onChange([...value, v]);
    setText('');
    setSuggestions([]);
    setActive(-1);
  };
  const onKey = (e: KeyboardEvent<HTMLInputElement>) => {
    if (e.key === 'ArrowDown' && suggestions.length) {
      e.preventDefault();
      setActive((a) => Math.min(a + 1, suggestions.length - 1));
    } else if (e.key === 'ArrowUp' && suggestions.length) {
      e.preventDefault();
      setActive((a) => Math.max(a - 1, 0));
    } else if (e.key === 'Enter' || e.key === ',' || e.key === ';') {
      if (active >= 0 && suggestions[active]) {
        e.preventDefault();
        add(suggestions[active]!.address);
      } else if (text.trim()) {
        e.preventDefault();
        add(text);
      }
    } else if (e.key === 'Escape') setSuggestions([]);
    else if (e.key === 'Backspace' && !text && value.length) onChange(value.slice(0, -1));
  };
  const listId = `${id}-suggestions`;
  return (
    <div className="field recipients">
      <label htmlFor={id}>{label}</label>
      <div className="chips">
        {value.map((a) => (
          <span key={a} className={refused[a.toLowerCase()] ? 'chip refused' : 'chip'}>
            {a}
            {refused[a.toLowerCase()] && <span className="reason"> — {refused[a.toLowerCase()]}</span>}
            <button type="button" aria-label={`Retirer ${a}`} onClick={() => onChange(value.filter((x) => x !== a))}>
              ×
            </button>
          </span>
        ))}
        <input
          id={id}
          role="combobox"
          aria-autocomplete="list"
          aria-expanded={suggestions.length > 0}
          aria-controls={listId}
          aria-activedescendant={active >= 0 ? `${listId}-${active}` : undefined}
          value={text}
          autoComplete="off"
          onChange={(e) => setText(e.target.value)}
          onKeyDown={onKey}
          onBlur={() => setTimeout(() => text.includes('@') && add(text), 150)}
        />
      </div>
      {suggestions.length > 0 && (
        <ul id={listId} role="listbox" className="suggestions" aria-label="Suggestions de l’annuaire">
          {suggestions.map((s, i) => (
            <li key={s.address} id={`${listId}-${i}`} role="option" aria-selected={i === active} onMouseDown={(e) => (e.preventDefault(), add(s.address))}>
              <strong>{s.label}</strong> <span>{s.address}</span>
              {s.detail && <small> — {s.detail}</small>}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

export function Composer(props: { mailboxes: MailboxInfo[]; maxMessageSize: number; patientDomain: string; init: ComposeInit; signature: string; onClose: (sent: boolean) => void }) {
  const senders = props.mailboxes.filter((m) => m.role === 'own' || m.rights.includes('send'));
  const own = useMemo(() => props.mailboxes.map((m) => ({ label: m.displayName || m.address, address: m.address, detail: 'Boîte que j’utilise' })), [props.mailboxes]);
  const saved = (() => {
    try {
      return JSON.parse(sessionStorage.getItem(DRAFT_KEY) ?? 'null');
    } catch {
      return null;
    }
  })();
  const start = saved ?? {
    from: props.init.from && senders.some((m) => m.address === props.init.from) ? props.init.from : senders[0]?.address,
    to: props.init.to ?? [],
    cc: props.init.cc ?? [],
    bcc: [],
    subject: props.init.subject ?? '',
    text: (props.init.text ?? '') + (props.signature ? `\n\n-- \n${props.signature}` : ''),
    rich: false,
    notify: false,
    readReceipt: false,
    inReplyTo: props.init.inReplyTo,
    references: props.init.references,
    draftId: undefined,
  };
  const [from, setFrom] = useState<string>(start.from ?? '');
  const [to, setTo] = useState<string[]>(start.to);
  const [cc, setCc] = useState<string[]>(start.cc);
  const [bcc, setBcc] = useState<string[]>(start.bcc);
  const [subject, setSubject] = useState<string>(start.subject);
  const [text, setText] = useState<string>(start.text);
  const [rich, setRich] = useState<boolean>(start.rich);
  const [notify, setNotify] = useState<boolean>(start.notify);
  const [readReceipt, setReadReceipt] = useState<boolean>(start.readReceipt);
  const [atts, setAtts] = useState<Att[]>(() =>
    (props.init.forwardOf?.attachments ?? []).map((a) => ({ key: a.partId, name: a.name ?? 'pièce jointe', size: a.size, type: a.type, progress: 1, part: { emailId: props.init.forwardOf!.id, partId: a.partId } })),
  );
  const [draftId, setDraftId] = useState<string | undefined>(start.draftId);
  const [status, setStatus] = useState<string | null>(saved ? 'Brouillon restauré.' : null);
  const [error, setError] = useState<string | null>(null);
  // Refusals: those of the last sending attempt (422) and those the check names as soon as an
  // address is entered (POST /api/v1/compose/check `refused`: outside the liste blanche, unknown).
  const [sendRefused, setRefused] = useState<Record<string, string>>({});
  const [checked, setChecked] = useState<Record<string, string>>({});
  const refused = useMemo(() => ({ ...checked, ...sendRefused }), [checked, sendRefused]);
  const [warn, setWarn] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [dragging, setDragging] = useState(false);
  const editor = useRef<HTMLDivElement>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  const heading = useRef<HTMLHeadingElement>(null);
  const dirty = useRef(false);
  // One key per message being written: a send retried after a network failure is not sent twice.
  const idempotencyKey = useRef(crypto.randomUUID());

  useEffect(() => heading.current?.focus(), []);

  // Each recipient checked once entered: the chip shows the refusal at once (issue 9).
  const recipients = useMemo(() => [...to, ...cc, ...bcc], [to, cc, bcc]);
  useEffect(() => {
    if (!recipients.length) return setChecked({});
    let live = true;
    api<{ refused?: { address: string; reason: string }[] }>('POST', '/api/v1/compose/check', { subject: '', text: '', to: recipients })
      .then((c) => live && setChecked(Object.fromEntries((c.refused ?? []).map((r) => [r.address.toLowerCase(), r.reason]))))
      .catch(() => {}); // the sending checks again
    return () => {
      live = false;
    };
  }, [recipients]);
  // mssante.md §8: a conversation with a patient (Mon espace santé) is ended by the professional.
  const patientSuffix = `@${props.patientDomain.toLowerCase()}`;
  const toPatients = recipients.length > 0 && recipients.every((a) => a.toLowerCase().endsWith(patientSuffix));
  const refusedCount = recipients.filter((a) => refused[a.toLowerCase()]).length;

  const html = () => (rich && editor.current ? editor.current.innerHTML : undefined);
  const plain = () => (rich && editor.current ? editor.current.innerText : text);

  const draft = useCallback(
    (): Draft => ({
      from,
      to,
      cc,
      bcc,
      subject,
      text: plain(),
      ...(rich ? { html: html() } : {}),
      attachments: atts.filter((a) => a.uploadId || a.part).map((a) => (a.uploadId ? { uploadId: a.uploadId } : a.part!)),
      ...(start.inReplyTo ? { inReplyTo: start.inReplyTo } : {}),
      ...(start.references ? { references: start.references } : {}),
      ...(notify ? { notify: ['SUCCESS', 'FAILURE', 'DELAY'] } : {}),
      ...(readReceipt ? { readReceipt: true } : {}),
    }),
    [from, to, cc, bcc, subject, text, rich, atts, notify, readReceipt],
  );

  // Always in sessionStorage (survives a session expiry and a reload of this tab).
  useEffect(() => {
    sessionStorage.setItem(DRAFT_KEY, JSON.stringify({ from, to, cc, bcc, subject, text: plain(), rich: false, notify, readReceipt, inReplyTo: start.inReplyTo, references: start.references, draftId }));
    dirty.current = true;
  }, [from, to, cc, bcc, subject, text, notify, readReceipt, draftId]);

  const saveDraft = useCallback(async () => {
    dirty.current = false;
    const r = draftId ? await api<{ id: string }>('PUT', `/api/v1/drafts/${encodeURIComponent(draftId)}`, draft()) : await api<{ id: string }>('POST', '/api/v1/drafts', draft());
    setDraftId(r.id);
    setStatus(`Brouillon enregistré à ${new Date().toLocaleTimeString('fr-FR', { hour: '2-digit', minute: '2-digit' })}.`);
  }, [draft, draftId]);

  // On the server every 5 s while something changed.
  useEffect(() => {
    const t = setInterval(() => {
      if (dirty.current && !busy) saveDraft().catch(() => {}); // kept in this tab; the next change retries
    }, 5000);
    return () => clearInterval(t);
  }, [saveDraft, busy]);

  const addFiles = (files: FileList | File[]) => {
    const total = atts.reduce((n, a) => n + a.size, 0);
    let running = total;
    for (const file of Array.from(files)) {
      const key = `${file.name}-${file.size}-${Math.random()}`;
      // Base64 makes an attachment about 4/3 bigger in the message: check before sending a byte.
      if ((running + file.size) * 1.37 > props.maxMessageSize) {
        setError(`« ${file.name} » (${size(file.size)}) dépasse la taille maximale d’un message (${size(props.maxMessageSize)}, pièces jointes encodées comprises).`);
        continue;
      }
      running += file.size;
      setAtts((l) => [...l, { key, name: file.name, size: file.size, type: file.type || 'application/octet-stream', progress: 0 }]);
      upload(file, (p) => setAtts((l) => l.map((a) => (a.key === key ? { ...a, progress: p } : a))))
        .then((r) => setAtts((l) => l.map((a) => (a.key === key ? { ...a, progress: 1, uploadId: r.uploadId } : a))))
        .catch((e) => setAtts((l) => l.map((a) => (a.key === key ? { ...a, error: e instanceof ApiError ? e.message : 'échec' } : a))));
    }
  };
  const onDrop = (e: DragEvent) => {
    e.preventDefault();
    setDragging(false);
    if (e.dataTransfer.files.length) addFiles(e.dataTransfer.files);
  };

  const send = async (confirmed: boolean, endConversation = false) => {
    setError(null);
    setRefused({});
    if (!to.length && !cc.length && !bcc.length) return setError('Ajoutez au moins un destinataire.');
    if (atts.some((a) => !a.uploadId && !a.part && !a.error)) return setError('Attendez la fin de l’envoi des pièces jointes.');
    setBusy(true);
    try {
      if (!confirmed) {
        const c = await api<{ warn: boolean; notReadSoon: { address: string; reason?: string; until?: string }[] }>('POST', '/api/v1/compose/check', { subject, text: plain(), to: [...to, ...cc, ...bcc] }).catch(() => null);
        if (c?.warn) {
          setWarn(
            `Ce message semble urgent, mais ${c.notReadSoon.map((r) => r.address).join(', ')} ne le lira pas rapidement (absence ou retard de lecture). Pour une urgence, téléphonez.`,
          );
          return;
        }
      }
      // X-MSS-MES: FIN (docs/patients.md): the patient can no longer answer this conversation.
      await api('POST', '/api/v1/submissions', { ...draft(), ...(draftId ? { draftId } : {}), ...(endConversation ? { endConversation: true } : {}) }, { headers: { 'idempotency-key': idempotencyKey.current } });
      sessionStorage.removeItem(DRAFT_KEY);
      props.onClose(true);
    } catch (e) {
      if (e instanceof ApiError && e.problem.recipients) {
        setRefused(Object.fromEntries(e.problem.recipients.map((r) => [r.address.toLowerCase(), r.reason])));
      }
      setError(e instanceof ApiError ? e.message : 'Envoi impossible : réessayez.');
    } finally {
      setBusy(false);
    }
  };

  const discard = async () => {
    sessionStorage.removeItem(DRAFT_KEY);
    if (draftId) await api('DELETE', `/api/v1/drafts/${encodeURIComponent(draftId)}`).catch(() => {});
    props.onClose(false);
  };

  const selected = senders.find((m) => m.address === from);
  return (
    <section className={dragging ? 'composer dragging' : 'composer'} aria-labelledby="composer-h" onDragOver={(e) => (e.preventDefault(), setDragging(true))} onDragLeave={() => setDragging(false)} onDrop={onDrop}>
      <h2 id="composer-h" tabIndex={-1} ref={heading}>
        Nouveau message
      </h2>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {warn && (
        <div className="warn" role="alertdialog" aria-labelledby="warn-t">
          <p id="warn-t">{warn}</p>
          <button type="button" onClick={() => (setWarn(null), void send(true))}>
            Envoyer quand même
          </button>
          <button type="button" onClick={() => setWarn(null)}>
            Ne pas envoyer
          </button>
        </div>
      )}
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void send(false);
        }}
        onKeyDown={(e) => {
          if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
            e.preventDefault();
            void send(false);
          }
        }}
      >
        <div className="field">
          <label htmlFor="c-from">De</label>
          <select id="c-from" value={from} onChange={(e) => setFrom(e.target.value)}>
            {senders.map((m) => (
              <option key={m.address} value={m.address}>
                {m.displayName ? `${m.displayName} <${m.address}>` : m.address}
                {m.role === 'delegated' ? ' (de la part de)' : ''}
              </option>
            ))}
          </select>
          {selected?.role === 'delegated' && <p className="hint">Vous envoyez de la part du titulaire : votre adresse figurera comme expéditeur réel (en-tête Sender).</p>}
        </div>
        <RecipientField own={own} id="c-to" label="À" value={to} onChange={setTo} refused={refused} />
        <RecipientField own={own} id="c-cc" label="Cc" value={cc} onChange={setCc} refused={refused} />
        <RecipientField own={own} id="c-bcc" label="Cci" value={bcc} onChange={setBcc} refused={refused} />
        <p role="status" className={refusedCount ? 'error' : 'sr-only'}>
          {refusedCount === 1 ? 'Un destinataire sera refusé : voir son adresse.' : refusedCount > 1 ? `${refusedCount} destinataires seront refusés : voir leurs adresses.` : ''}
        </p>
        {toPatients && <p className="hint patient-note">Échange avec un patient (Mon espace santé) : « Terminer l’échange » envoie ce message et clôt la conversation ; le patient ne pourra plus répondre.</p>}
        <div className="field">
          <label htmlFor="c-subject">Objet</label>
          <input id="c-subject" value={subject} onChange={(e) => setSubject(e.target.value)} />
        </div>
        <fieldset className="format">
          <legend>Format</legend>
          <label>
            <input type="radio" name="fmt" checked={!rich} onChange={() => setRich(false)} /> Texte brut
          </label>
          <label>
            <input
              type="radio"
              name="fmt"
              checked={rich}
              onChange={() => {
                setRich(true);
                setTimeout(() => editor.current && (editor.current.innerText = text));
              }}
            />{' '}
            Texte enrichi
          </label>
        </fieldset>
        {rich ? (
          <>
            <div role="toolbar" aria-label="Mise en forme" className="format-bar">
              <button type="button" onClick={() => document.execCommand('bold')}>
                Gras
              </button>
              <button type="button" onClick={() => document.execCommand('italic')}>
                Italique
              </button>
              <button type="button" onClick={() => document.execCommand('insertUnorderedList')}>
                Liste
              </button>
            </div>
            <div id="c-body" ref={editor} className="editor" contentEditable role="textbox" aria-multiline="true" aria-label="Texte du message" onInput={(e) => setText(e.currentTarget.innerText)} />
          </>
        ) : (
          <div className="field">
            <label htmlFor="c-body">Texte du message</label>
            <textarea id="c-body" value={text} onChange={(e) => setText(e.target.value)} rows={14} />
          </div>
        )}
        <div className="dropzone">
          <p>
            Glissez-déposez des fichiers ici ou{' '}
            <button type="button" onClick={() => fileInput.current?.click()}>
              joindre un fichier
            </button>{' '}
            (au plus {size(Math.floor(props.maxMessageSize / 1.37))} au total).
          </p>
          <input ref={fileInput} type="file" multiple hidden aria-label="Fichiers à joindre" onChange={(e) => e.target.files && (addFiles(e.target.files), (e.target.value = ''))} />
          <ul className="att-list">
            {atts.map((a) => (
              <li key={a.key}>
                {a.name} ({size(a.size)}){' '}
                {a.error ? (
                  <span className="error">{a.error}</span>
                ) : (
                  <progress max={1} value={a.progress} aria-label={`Envoi de ${a.name}`}>
                    {Math.round(a.progress * 100)} %
                  </progress>
                )}
                <button type="button" aria-label={`Retirer ${a.name}`} onClick={() => setAtts((l) => l.filter((x) => x.key !== a.key))}>
                  ×
                </button>
              </li>
            ))}
          </ul>
        </div>
        <fieldset className="options">
          <legend>Options</legend>
          <label>
            <input type="checkbox" checked={notify} onChange={(e) => setNotify(e.target.checked)} /> Demander un accusé de réception (distribution)
          </label>
          <label>
            <input type="checkbox" checked={readReceipt} onChange={(e) => setReadReceipt(e.target.checked)} /> Demander un accusé de lecture
          </label>
        </fieldset>
        <div className="composer-actions">
          <button type="submit" className="primary" disabled={busy} aria-keyshortcuts="Control+Enter">
            Envoyer
          </button>
          {toPatients && (
            <button type="button" disabled={busy} onClick={() => void send(true, true)}>
              Terminer l’échange
            </button>
          )}
          <button
            type="button"
            onClick={async () => {
              await saveDraft().catch(() => {});
              sessionStorage.removeItem(DRAFT_KEY);
              props.onClose(false);
            }}
          >
            Fermer (brouillon conservé)
          </button>
          <button type="button" onClick={discard}>
            Supprimer le brouillon
          </button>
          {status && (
            <span role="status" className="status">
              {status}
            </span>
          )}
        </div>
      </form>
    </section>
  );
}

// The webmail's only way to the server: JSON over fetch, same origin, the session cookie sent
// by the browser, the CSRF token (GET /api/auth/session) on every state-changing request
// (docs/authentication.md). Errors are RFC 9457 problems whose French `detail` is shown as is.
// A 401 `not-authenticated` on any call means the session ended: the app goes back to login.

export interface Problem {
  status: number;
  code?: string;
  title?: string;
  detail?: string;
  field?: string;
  recipients?: { address: string; reason: string }[];
}

export class ApiError extends Error {
  constructor(readonly problem: Problem) {
    super(problem.detail ?? problem.title ?? `Erreur ${problem.status}`);
  }
  get status() {
    return this.problem.status;
  }
  get code() {
    return this.problem.code;
  }
}

let csrfToken: string | undefined;
let onExpired: (() => void) | undefined;

export function setCsrf(token: string | undefined) {
  csrfToken = token;
}
export function onSessionExpired(fn: () => void) {
  onExpired = fn;
}

const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export async function api<T = any>(method: string, path: string, body?: unknown, init: { headers?: Record<string, string>; raw?: BodyInit } = {}): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json', ...init.headers };
  if (STATE_CHANGING.has(method) && csrfToken) headers['x-csrf-token'] = csrfToken;
  let payload: BodyInit | undefined = init.raw;
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body: payload, credentials: 'same-origin' });
  } catch {
    throw new ApiError({ status: 0, code: 'network', detail: 'Le serveur de messagerie ne répond pas : vérifiez votre connexion puis réessayez.' });
  }
  if (res.status === 204) return undefined as T;
  const type = res.headers.get('content-type') ?? '';
  const data = /json/.test(type) ? await res.json().catch(() => undefined) : await res.text();
  if (!res.ok) {
    const problem: Problem = typeof data === 'object' && data ? { status: res.status, ...data } : { status: res.status, detail: `Erreur ${res.status}` };
    if (res.status === 401 && problem.code === 'not-authenticated' && !path.startsWith('/api/auth/session')) onExpired?.();
    throw new ApiError(problem);
  }
  if (data && typeof data === 'object' && typeof (data as any).csrfToken === 'string') csrfToken = (data as any).csrfToken;
  return data as T;
}

/** Uploads one file with progress (fetch has no upload progress: XMLHttpRequest does). */
export function upload(file: File, onProgress: (fraction: number) => void): Promise<{ uploadId: string; name: string; type: string; size: number }> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/api/v1/uploads');
    xhr.setRequestHeader('content-type', file.type || 'application/octet-stream');
    xhr.setRequestHeader('x-filename', encodeURIComponent(file.name));
    if (csrfToken) xhr.setRequestHeader('x-csrf-token', csrfToken);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onload = () => {
      let data: any;
      try {
        data = JSON.parse(xhr.responseText);
      } catch {
        data = {};
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(data);
      else {
        if (xhr.status === 401) onExpired?.();
        reject(new ApiError({ status: xhr.status, ...data }));
      }
    };
    xhr.onerror = () => reject(new ApiError({ status: 0, detail: 'Envoi de la pièce jointe interrompu.' }));
    xhr.send(file);
  });
}

// ---- the /api/v1 model (docs/mail-api.md) ----------------------------------------------------
export interface Addr {
  name: string | null;
  email: string;
}
export interface Folder {
  id: string;
  name: string;
  role: 'inbox' | 'sent' | 'drafts' | 'trash' | 'junk' | 'archive' | null;
  totalEmails: number;
  unreadEmails: number;
  state: string;
}
export interface MailboxInfo {
  address: string;
  displayName: string;
  type: 'PER' | 'ORG' | 'APP' | 'CAB';
  role: 'own' | 'delegated' | 'shared';
  rights: ('read' | 'send' | 'manage')[];
  folders: Folder[];
}
export interface Me {
  login: string;
  displayName: string;
  maxMessageSize: number;
  /** Patient addresses are `<INS>@patientDomain` (Mon espace santé). */
  patientDomain?: string;
  mailboxes: MailboxInfo[];
  state: string;
}
export interface EmailSummary {
  id: string;
  folderId: string;
  mailbox: string;
  threadId: string;
  receivedAt: string;
  sentAt: string | null;
  from: Addr[];
  to: Addr[];
  cc: Addr[];
  subject: string;
  preview: string;
  size: number;
  seen: boolean;
  flagged: boolean;
  answered: boolean;
  draft: boolean;
  keywords: string[];
  attachmentCount: number;
  xdm: boolean;
  patient: boolean;
  readReceiptRequested: boolean;
}
export interface Attachment {
  partId: string;
  name: string | null;
  type: string;
  size: number;
  disposition: string | null;
  cid: string | null;
}
export interface Email extends EmailSummary {
  messageId: string | null;
  inReplyTo: string[];
  references: string[];
  replyTo: Addr[];
  sender: Addr[];
  bcc: Addr[];
  headers: { name: string; value: string }[];
  textBody: string | null;
  htmlBody: string | null;
  attachments: Attachment[];
  dispositionNotificationTo: Addr[];
  mdnSent: boolean;
  /** The documents of an attached IHE_XDM.ZIP (docs/mail-api.md `XdmDocument`). */
  documents?: XdmDocument[];
  documentErrors?: { partId: string; error: string }[];
}
export interface XdmCode {
  code: string;
  codingScheme?: string;
  displayName?: string;
}
export interface XdmDocument {
  partId: string;
  path: string;
  title: string | null;
  mimeType: string | null;
  size: number;
  hash: string;
  patient: { id: string; oid: string; kind: 'NIR' | 'NIA' | 'test' | 'other' } | null;
  typeCode: XdmCode | null;
  classCode: XdmCode | null;
  cdaCode: string | null;
  /** How many deviations from the profile were found (details: `caducee xdm inspect`). */
  warnings: number;
}
export interface EmailList {
  emails: EmailSummary[];
  total: number;
  nextCursor: string | null;
  state: string;
}
export interface Draft {
  from: string;
  to: string[];
  cc: string[];
  bcc: string[];
  subject: string;
  text: string;
  html?: string;
  attachments: ({ uploadId: string } | { emailId: string; partId: string })[];
  inReplyTo?: string;
  references?: string[];
  notify?: string[];
  readReceipt?: boolean;
  endConversation?: boolean;
}
export interface Submission {
  id: string;
  emailId: string;
  messageId: string;
  from: string;
  subject: string;
  sentAt: string;
  recipients: { address: string; status: string; detail: string | null; updatedAt: string }[];
}
export interface SessionInfo {
  stage: 'full' | 'second-factor' | 'enrol-second-factor';
  user?: { login: string; displayName: string };
  method?: string;
  csrfToken?: string;
  expiresAt?: string;
  idleExpiresAt?: string;
}

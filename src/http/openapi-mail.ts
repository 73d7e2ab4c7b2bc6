// OpenAPI 3.1 description of the mail API /api/v1 (docs/mail-api.md), merged into
// /api/openapi.json by openapi.ts. test/mail-api.test.ts checks every registered /api route is
// described here, with its documented errors.
const problem = { $ref: '#/components/schemas/Problem' };
const p = (description: string) => ({ description, content: { 'application/problem+json': { schema: problem } } });
const json = (schema: object) => ({ 'application/json': { schema } });
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });

/** Any of the three ways: session (+CSRF on state-changing requests), Bearer token, client certificate. */
const read = [{ session: [] }, { bearer: [] }, { clientCertificate: [] }];
const write = [{ session: [], csrf: [] }, { bearer: [] }, { clientCertificate: [] }];

const E401 = { '401': p('Not authenticated: no session, refused token (WWW-Authenticate: Bearer) or certificate (not-authenticated)') };
const E403 = { '403': p('Plain HTTP (https-required), foreign Origin (foreign-origin), missing or wrong X-CSRF-Token with a session (csrf), or a right missing on a visible mailbox (forbidden)') };
const E404 = { '404': p('No such resource, or one of a mailbox the caller may not read (not-found): existence is never revealed') };
const E400 = { '400': p('Bad input (invalid-request, with field)') };
const E413 = { '413': p('Larger than the operator’s maximum message size (too-large)') };
const ERR = { ...E401, ...E403 };

const path = (name: string, description?: string, schema: object = { type: 'string' }) => ({ name, in: 'path', required: true, schema, ...(description ? { description } : {}) });
const query = (name: string, schema: object, description?: string) => ({ name, in: 'query', required: false, schema, ...(description ? { description } : {}) });
const PAGING = [
  query('sort', { type: 'string', enum: ['receivedAt', 'sentAt', 'from', 'subject', 'size'], default: 'receivedAt' }),
  query('order', { type: 'string', enum: ['asc', 'desc'], default: 'desc' }),
  query('limit', { type: 'integer', minimum: 1, maximum: 200, default: 50 }),
  query('cursor', { type: 'string' }, 'nextCursor of the previous page (stable under new deliveries)'),
];
const draftBody = {
  required: true,
  content: {
    ...json(ref('Draft')),
    'multipart/form-data': { schema: { type: 'object', required: ['message'], properties: { message: { type: 'string', description: 'The Draft as JSON' }, files: { type: 'array', items: { type: 'string', format: 'binary' } } } } },
  },
};

export function mailPaths(): Record<string, Record<string, object>> {
  const emailId = path('id', 'Email id (e<n>)');
  return {
    '/api/v1/me': { get: { operationId: 'me', summary: 'The caller, the maximum message size and the mailboxes they may open or send as.', security: read, responses: { '200': { description: 'Me', content: json(ref('Me')) }, ...ERR } } },
    '/api/v1/mailboxes': {
      get: { operationId: 'listMailboxes', summary: 'Own, delegated and shared mailboxes with rights and folders (counts).', security: read, responses: { '200': { description: 'Mailboxes', content: json({ type: 'object', required: ['mailboxes', 'state'], properties: { mailboxes: { type: 'array', items: ref('MailboxInfo') }, state: { type: 'string' } } }) }, ...ERR } },
    },
    '/api/v1/folders/{folderId}/emails': {
      get: { operationId: 'listEmails', summary: 'One page of a folder’s messages, sorted, paged by cursor.', security: read, parameters: [path('folderId', 'Folder id (f<n>)'), ...PAGING], responses: { '200': { description: 'A page', content: json(ref('EmailPage')) }, ...E400, ...ERR, ...E404 } },
    },
    '/api/v1/search': {
      get: {
        operationId: 'searchEmails',
        summary: 'The IMAP SEARCH engine (same semantics as UID SEARCH, RFC 9051 §6.4.4) over one folder, a mailbox, or every readable mailbox.',
        security: read,
        parameters: [
          query('mailbox', { type: 'string', format: 'email' }),
          query('folder', { type: 'string' }),
          query('from', { type: 'string' }),
          query('to', { type: 'string' }, 'To or Cc'),
          query('subject', { type: 'string' }),
          query('text', { type: 'string' }, 'Headers and body text (IMAP TEXT)'),
          query('after', { type: 'string', format: 'date' }, 'Received on or after (IMAP SINCE)'),
          query('before', { type: 'string', format: 'date' }, 'Received before (IMAP BEFORE)'),
          query('seen', { type: 'boolean' }),
          query('flagged', { type: 'boolean' }),
          query('hasAttachment', { type: 'boolean' }, 'A multipart/mixed message'),
          ...PAGING,
        ],
        responses: { '200': { description: 'A page', content: json(ref('EmailPage')) }, ...E400, ...ERR, ...E404 },
      },
    },
    '/api/v1/emails/{id}': {
      get: { operationId: 'getEmail', summary: 'One message: headers, decoded text and HTML bodies (NOT sanitised), attachments.', security: read, parameters: [emailId], responses: { '200': { description: 'The message', content: json(ref('Email')) }, ...ERR, ...E404 } },
      patch: {
        operationId: 'updateEmail',
        summary: 'Flags and keywords (\\Seen needs the read right, other flags manage: RFC 4314 s / w).',
        security: write,
        parameters: [emailId],
        requestBody: { required: true, content: json(ref('EmailPatch')) },
        responses: { '200': { description: 'The summary after the change', content: json(ref('EmailSummary')) }, ...E400, ...ERR, ...E404 },
      },
      delete: { operationId: 'deleteEmail', summary: 'Moves to the mailbox’s Trash; in Trash already, expunged for good (manage right).', security: write, parameters: [emailId], responses: { '204': { description: 'Done' }, ...ERR, ...E404 } },
    },
    '/api/v1/emails/{id}/raw': {
      get: { operationId: 'getRawEmail', summary: 'The stored bytes.', security: read, parameters: [emailId], responses: { '200': { description: 'message/rfc822', content: { 'message/rfc822': { schema: { type: 'string', format: 'binary' } } } }, ...ERR, ...E404 } },
    },
    '/api/v1/emails/{id}/parts/{partId}': {
      get: {
        operationId: 'getEmailPart',
        summary: 'One part decoded, as a download (Content-Disposition: attachment with RFC 6266 filename*, nosniff).',
        security: read,
        parameters: [emailId, path('partId', 'IMAP part number, e.g. 2 or 1.2')],
        responses: { '200': { description: 'The part', content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } }, '400': p('Undecodable part (invalid-request)'), ...ERR, ...E404 },
      },
    },
    '/api/v1/emails/{id}/move': {
      post: {
        operationId: 'moveEmail',
        summary: 'Moves to another folder of the same mailbox (manage right); the message gets a new id.',
        security: write,
        parameters: [emailId],
        requestBody: { required: true, content: json({ type: 'object', required: ['folderId'], additionalProperties: false, properties: { folderId: { type: 'string' } } }) },
        responses: { '200': { description: 'The new id', content: json({ type: 'object', required: ['id'], properties: { id: { type: 'string' } } }) }, ...E400, ...ERR, ...E404 },
      },
    },
    '/api/v1/uploads': {
      post: {
        operationId: 'upload',
        summary: 'A file for a later draft or submission (raw body, X-Filename percent-encoded UTF-8); kept 24 h.',
        security: write,
        parameters: [{ name: 'X-Filename', in: 'header', required: false, schema: { type: 'string' } }],
        requestBody: { required: true, content: { '*/*': { schema: { type: 'string', format: 'binary' } } } },
        responses: { '201': { description: 'Stored', content: json(ref('Upload')) }, ...E400, ...ERR, ...E413 },
      },
    },
    '/api/v1/drafts': {
      post: { operationId: 'createDraft', summary: 'Stores a draft in the Drafts folder of `from`’s mailbox.', security: write, requestBody: draftBody, responses: { '201': { description: 'Stored', content: json(ref('Id')) }, ...E400, ...ERR, ...E404, ...E413 } },
    },
    '/api/v1/drafts/{id}': {
      put: { operationId: 'replaceDraft', summary: 'Replaces a draft (new id).', security: write, parameters: [emailId], requestBody: draftBody, responses: { '200': { description: 'Stored', content: json(ref('Id')) }, ...E400, ...ERR, ...E404, ...E413 } },
      delete: { operationId: 'deleteDraft', summary: 'Removes a draft for good.', security: write, parameters: [emailId], responses: { '204': { description: 'Removed' }, ...ERR, ...E404 } },
    },
    '/api/v1/submissions': {
      get: {
        operationId: 'listSubmissions',
        summary: 'Delivery tracking of the messages sent from the mailboxes the caller may read, newest first (docs/receipts.md).',
        security: read,
        parameters: [query('limit', { type: 'integer', minimum: 1, maximum: 200, default: 50 }), query('cursor', { type: 'string' }, 'nextCursor of the previous page')],
        responses: { '200': { description: 'A page', content: json({ type: 'object', required: ['submissions', 'nextCursor'], properties: { submissions: { type: 'array', items: ref('TrackedSubmission') }, nextCursor: { type: ['string', 'null'] } } }) }, ...E400, ...ERR },
      },
      post: {
        operationId: 'submitEmail',
        summary:
          'Sends a message through the same pipeline as SMTP submission (sender rights, send-on-behalf Sender:, trust space, content policy); a copy is stored in Sent. Idempotency-Key honoured for 24 h.',
        security: write,
        parameters: [{ name: 'Idempotency-Key', in: 'header', required: false, schema: { type: 'string', maxLength: 200 } }],
        requestBody: draftBody,
        responses: {
          '201': { description: 'Accepted and committed', content: json(ref('EmailSubmission')) },
          ...E400,
          ...E401,
          '403': p('May not send as `from` (forbidden); plain HTTP, foreign Origin, CSRF'),
          ...E404,
          ...E413,
          '422': p('Recipients refused (recipient-refused, with recipients: [{address, reason, smtp}]); nothing was sent'),
        },
      },
    },
    '/api/v1/submissions/{id}': {
      get: { operationId: 'getSubmission', summary: 'Delivery tracking of one sent message, per recipient (docs/receipts.md).', security: read, parameters: [path('id', 'Submission id (s<n>)')], responses: { '200': { description: 'The submission', content: json(ref('TrackedSubmission')) }, ...ERR, ...E404 } },
    },
    '/api/v1/emails/{id}/mdn': {
      post: {
        operationId: 'sendReadReceipt',
        summary: 'Sends the read receipt the sender asked for (RFC 8098 manual-action/MDN-sent-manually; displayed), once per message ($MDNSent).',
        security: write,
        parameters: [emailId],
        requestBody: { required: false, content: json({ type: 'object', additionalProperties: false, properties: { confirmed: { type: 'boolean', description: 'The user agreed to send it to an address other than the return path' } } }) },
        responses: { '200': { description: 'Sent', content: json(ref('ReceiptSent')) }, '400': p('Not asked, not allowed (report, automatic message, other address unconfirmed, outside the trust space) or bad input (receipt-refused, invalid-request)'), ...ERR, ...E404, '409': p('A receipt was already sent for this message (already-sent)') },
      },
    },
    '/api/v1/emails/{id}/integration': {
      post: {
        operationId: 'acknowledgeIntegration',
        summary:
          'APP mailboxes: the software reports the integration of the message (ANS guide): processed, or an error 900–906 → MDN `processed[/Error: <code>^<libellé>]` (subject `[KO Intégration système !][<code>] …` and documents attached again), or an ordinary message when no MDN may go.',
        security: write,
        parameters: [emailId],
        requestBody: { required: true, content: json(ref('IntegrationOutcome')) },
        responses: { '200': { description: 'What was sent', content: json(ref('ReceiptSent')) }, '400': p('Not an APP mailbox, bad code or bad input (receipt-refused, invalid-request)'), ...ERR, ...E404, '409': p('Already acknowledged (already-sent)') },
      },
    },
    '/api/v1/documents': {
      post: {
        operationId: 'sendDocuments',
        summary:
          'Builds an IHE XDM package (IHE_XDM.ZIP) from CDA R2 and/or PDF documents and the message around it (subject XDM/1.0/DDM+…, X-MSS-CODECDA, X-MSS-INS), then sends it through the same path as POST /api/v1/submissions. Idempotency-Key honoured for 24 h.',
        security: write,
        parameters: [{ name: 'Idempotency-Key', in: 'header', required: false, schema: { type: 'string', maxLength: 200 } }],
        requestBody: {
          required: true,
          content: {
            ...json(ref('DocumentsRequest')),
            'multipart/form-data': { schema: { type: 'object', required: ['metadata'], properties: { metadata: { type: 'string', description: 'DocumentsRequest as JSON (documents[i] without content describe the i-th file)' }, files: { type: 'array', items: { type: 'string', format: 'binary' } } } } },
          },
        },
        responses: {
          '201': { description: 'Accepted and committed', content: json(ref('EmailSubmission')) },
          '400': p('Bad input, or documents the XDM builder refuses (invalid-request, with field)'),
          ...E401,
          '403': p('May not send as `from` (forbidden); plain HTTP, foreign Origin, CSRF'),
          ...E413,
          '422': p('Recipients refused (recipient-refused); nothing was sent'),
        },
      },
    },
    '/api/v1/mailboxes/{address}/inbound': {
      get: {
        operationId: 'pullInbound',
        summary: 'The messages arrived in the INBOX after a cursor, oldest first, each described as in a webhook (the same `data`).',
        security: read,
        parameters: [path('address', undefined, { type: 'string', format: 'email' }), query('after', { type: 'string' }, 'The last event id seen (m<n>); absent: from the start'), query('limit', { type: 'integer', minimum: 1, maximum: 100, default: 20 })],
        responses: { '200': { description: 'Events', content: json({ type: 'object', required: ['events', 'nextCursor'], properties: { events: { type: 'array', items: ref('InboundEvent') }, nextCursor: { type: ['string', 'null'] } } }) }, ...E400, ...ERR, ...E404 },
      },
    },
    '/api/v1/webhooks': {
      get: { operationId: 'listWebhooks', summary: 'The caller’s active webhooks with their position and failures.', security: read, responses: { '200': { description: 'Webhooks', content: json({ type: 'object', required: ['webhooks'], properties: { webhooks: { type: 'array', items: ref('Webhook') } } }) }, ...ERR } },
      post: {
        operationId: 'createWebhook',
        summary: 'Registers an https:// endpoint for the messages arriving in a mailbox the caller may read; the signing secret is in this answer only.',
        security: write,
        requestBody: { required: true, content: json({ type: 'object', required: ['mailbox', 'url'], additionalProperties: false, properties: { mailbox: { type: 'string', format: 'email' }, url: { type: 'string', format: 'uri' }, since: { enum: ['now', 'all'], default: 'now' } } }) },
        responses: { '201': { description: 'Registered', content: json({ allOf: [ref('Webhook'), { type: 'object', required: ['secret'], properties: { secret: { type: 'string' } } }] }) }, ...E400, ...ERR, ...E404 },
      },
    },
    '/api/v1/webhooks/{id}': {
      delete: { operationId: 'deleteWebhook', summary: 'Revokes one of the caller’s webhooks.', security: write, parameters: [path('id', 'Webhook id (w<n>)')], responses: { '204': { description: 'Revoked' }, ...ERR, ...E404 } },
    },
    '/api/v1/mailboxes/{address}/grants': {
      get: { operationId: 'listGrants', summary: 'Who holds which rights on the mailbox (owner or manage delegate).', security: read, parameters: [path('address', undefined, { type: 'string', format: 'email' })], responses: { '200': { description: 'Grants', content: json({ type: 'object', required: ['grants'], properties: { grants: { type: 'array', items: ref('Grant') } } }) }, ...ERR, ...E404 } },
    },
    '/api/v1/mailboxes/{address}/grants/{login}': {
      put: {
        operationId: 'setGrant',
        summary: 'Gives exactly these rights (Core’s ACL operations).',
        security: write,
        parameters: [path('address', undefined, { type: 'string', format: 'email' }), path('login')],
        requestBody: { required: true, content: json({ type: 'object', required: ['rights'], additionalProperties: false, properties: { rights: { type: 'array', items: { enum: ['read', 'send', 'manage'] } } } }) },
        responses: { '200': { description: 'The grant', content: json(ref('Grant')) }, ...E400, ...ERR, ...E404 },
      },
      delete: { operationId: 'removeGrant', summary: 'Removes every right of `login`.', security: write, parameters: [path('address', undefined, { type: 'string', format: 'email' }), path('login')], responses: { '204': { description: 'Removed' }, ...E400, ...ERR, ...E404 } },
    },
    '/api/v1/preferences': {
      get: { operationId: 'getPreferences', summary: 'Signature and display preferences.', security: read, responses: { '200': { description: 'Preferences', content: json(ref('Preferences')) }, ...ERR } },
      put: { operationId: 'setPreferences', summary: 'Replaces the preferences.', security: write, requestBody: { required: true, content: json(ref('Preferences')) }, responses: { '200': { description: 'Stored', content: json(ref('Preferences')) }, ...E400, ...ERR } },
    },
    '/api/v1/events': {
      get: {
        operationId: 'events',
        summary:
          'Server-Sent Events: email {mailbox, folderId, kind, ids}, folder {mailbox, folderId}, mailboxes {} (grants changed), reset {}. Resume with Last-Event-ID (or ?since=); a comment every 25 s.',
        security: read,
        parameters: [query('since', { type: 'string' }, 'Resume token (as Last-Event-ID)')],
        responses: { '200': { description: 'The stream', content: { 'text/event-stream': { schema: { type: 'string' } } } }, ...ERR },
      },
    },
  };
}

const addr = { type: 'object', required: ['name', 'email'], properties: { name: { type: ['string', 'null'] }, email: { type: 'string' } } };
const addrs = { type: 'array', items: addr };

export function mailSchemas(): Record<string, object> {
  const summary = {
    id: { type: 'string' },
    folderId: { type: 'string' },
    mailbox: { type: 'string', format: 'email' },
    threadId: { type: 'string' },
    receivedAt: { type: 'string', format: 'date-time' },
    sentAt: { type: ['string', 'null'], format: 'date-time' },
    from: addrs,
    to: addrs,
    cc: addrs,
    subject: { type: 'string' },
    preview: { type: 'string', maxLength: 200 },
    size: { type: 'integer' },
    seen: { type: 'boolean' },
    flagged: { type: 'boolean' },
    answered: { type: 'boolean' },
    draft: { type: 'boolean' },
    keywords: { type: 'array', items: { type: 'string' } },
    attachmentCount: { type: 'integer' },
    xdm: { type: 'boolean' },
    patient: { type: 'boolean' },
    readReceiptRequested: { type: 'boolean' },
  };
  const folder = {
    type: 'object',
    required: ['id', 'name', 'role', 'totalEmails', 'unreadEmails', 'state'],
    properties: { id: { type: 'string' }, name: { type: 'string' }, role: { enum: ['inbox', 'sent', 'drafts', 'trash', 'junk', 'archive', null] }, totalEmails: { type: 'integer' }, unreadEmails: { type: 'integer' }, state: { type: 'string' } },
  };
  return {
    Id: { type: 'object', required: ['id'], properties: { id: { type: 'string' } } },
    Folder: folder,
    MailboxInfo: {
      type: 'object',
      required: ['address', 'displayName', 'type', 'role', 'rights', 'folders'],
      properties: {
        address: { type: 'string', format: 'email' },
        displayName: { type: 'string' },
        type: { enum: ['PER', 'ORG', 'APP', 'CAB'] },
        role: { enum: ['own', 'delegated', 'shared'] },
        rights: { type: 'array', items: { enum: ['read', 'send', 'manage'] } },
        folders: { type: 'array', items: ref('Folder') },
      },
    },
    Me: { type: 'object', required: ['login', 'displayName', 'maxMessageSize', 'mailboxes', 'state'], properties: { login: { type: 'string' }, displayName: { type: 'string' }, maxMessageSize: { type: 'integer' }, patientDomain: { type: 'string', description: 'Domain of patient addresses (Mon espace santé): <INS>@patientDomain' }, mailboxes: { type: 'array', items: ref('MailboxInfo') }, state: { type: 'string' } } },
    EmailSummary: { type: 'object', required: Object.keys(summary), properties: summary },
    EmailPage: { type: 'object', required: ['emails', 'total', 'nextCursor', 'state'], properties: { emails: { type: 'array', items: ref('EmailSummary') }, total: { type: 'integer' }, nextCursor: { type: ['string', 'null'] }, state: { type: 'string' } } },
    Email: {
      allOf: [
        ref('EmailSummary'),
        {
          type: 'object',
          properties: {
            messageId: { type: ['string', 'null'] },
            inReplyTo: { type: 'array', items: { type: 'string' } },
            references: { type: 'array', items: { type: 'string' } },
            replyTo: addrs,
            sender: addrs,
            bcc: addrs,
            headers: { type: 'array', items: { type: 'object', properties: { name: { type: 'string' }, value: { type: 'string' } } } },
            textBody: { type: ['string', 'null'] },
            htmlBody: { type: ['string', 'null'], description: 'Decoded, NOT sanitised: clients sanitise' },
            attachments: { type: 'array', items: ref('Attachment') },
            dispositionNotificationTo: addrs,
            mdnSent: { type: 'boolean' },
            documents: { type: 'array', items: ref('XdmDocument'), description: 'Present when an IHE_XDM.ZIP is attached' },
            documentErrors: { type: 'array', items: { type: 'object', properties: { partId: { type: 'string' }, error: { type: 'string' } } } },
          },
        },
      ],
    },
    Attachment: { type: 'object', required: ['partId', 'name', 'type', 'size', 'disposition', 'cid'], properties: { partId: { type: 'string' }, name: { type: ['string', 'null'] }, type: { type: 'string' }, size: { type: 'integer' }, disposition: { type: ['string', 'null'] }, cid: { type: ['string', 'null'] } } },
    EmailPatch: {
      type: 'object',
      additionalProperties: false,
      properties: { seen: { type: 'boolean' }, flagged: { type: 'boolean' }, answered: { type: 'boolean' }, keywords: { type: 'object', properties: { add: { type: 'array', items: { type: 'string' } }, remove: { type: 'array', items: { type: 'string' } } } } },
    },
    Upload: { type: 'object', required: ['uploadId', 'name', 'type', 'size'], properties: { uploadId: { type: 'string' }, name: { type: 'string' }, type: { type: 'string' }, size: { type: 'integer' } } },
    Draft: {
      type: 'object',
      required: ['from'],
      additionalProperties: false,
      properties: {
        from: { type: 'string', format: 'email' },
        to: { type: 'array', items: { type: 'string', format: 'email' } },
        cc: { type: 'array', items: { type: 'string', format: 'email' } },
        bcc: { type: 'array', items: { type: 'string', format: 'email' } },
        subject: { type: 'string' },
        text: { type: 'string' },
        html: { type: 'string' },
        attachments: { type: 'array', items: { oneOf: [{ type: 'object', required: ['uploadId'], properties: { uploadId: { type: 'string' } } }, { type: 'object', required: ['emailId', 'partId'], properties: { emailId: { type: 'string' }, partId: { type: 'string' } } }] } },
        inReplyTo: { type: 'string' },
        references: { type: 'array', items: { type: 'string' } },
        notify: { type: 'array', items: { enum: ['SUCCESS', 'FAILURE', 'DELAY', 'NEVER'] }, description: 'RFC 3461 NOTIFY for every recipient' },
        readReceipt: { type: 'boolean', description: 'Adds Disposition-Notification-To: from (RFC 8098 §2.1)' },
        endConversation: { type: 'boolean', description: 'Adds X-MSS-MES: FIN: ends the conversation with a patient (patients only)' },
        draftId: { type: 'string', description: 'Submissions only: the draft removed once sent' },
      },
    },
    EmailSubmission: {
      type: 'object',
      required: ['id', 'emailId', 'messageId', 'from', 'subject', 'sentAt', 'recipients'],
      properties: {
        id: { type: 'string' },
        emailId: { type: 'string', description: 'The copy in Sent' },
        messageId: { type: 'string' },
        from: { type: 'string', format: 'email' },
        sender: { type: ['string', 'null'], format: 'email', description: 'Sender: when sent on behalf' },
        subject: { type: 'string' },
        sentAt: { type: 'string', format: 'date-time' },
        recipients: {
          type: 'array',
          items: {
            type: 'object',
            required: ['address', 'status', 'detail', 'updatedAt'],
            properties: { address: { type: 'string' }, status: { enum: ['queued', 'relayed', 'delivered', 'failed', 'displayed', 'processed', 'error'] }, detail: { type: ['string', 'null'] }, updatedAt: { type: 'string', format: 'date-time' } },
          },
        },
      },
    },
    TrackedSubmission: {
      type: 'object',
      required: ['id', 'mailbox', 'emailId', 'messageId', 'from', 'subject', 'sentAt', 'recipients'],
      properties: {
        id: { type: 'string' },
        mailbox: { type: 'string', format: 'email' },
        emailId: { type: ['string', 'null'], description: 'The copy in Sent' },
        messageId: { type: ['string', 'null'] },
        from: { type: 'string' },
        subject: { type: 'string' },
        sentAt: { type: 'string', format: 'date-time' },
        recipients: { type: 'array', items: { type: 'object', required: ['address', 'status', 'detail', 'updatedAt'], properties: { address: { type: 'string' }, status: { enum: ['queued', 'relayed', 'delivered', 'failed', 'displayed', 'processed', 'error'] }, detail: { type: ['string', 'null'], description: 'DSN reason, or the integration error `<code>^<libellé>`' }, updatedAt: { type: 'string', format: 'date-time' } } } },
      },
    },
    ReceiptSent: { type: 'object', required: ['sent', 'to'], properties: { sent: { enum: ['mdn', 'message', 'none'] }, to: { type: 'array', items: { type: 'string' } }, reason: { type: 'string', description: 'Why no MDN could go (the error went by message, or nothing was sent)' } } },
    IntegrationOutcome: {
      oneOf: [
        { type: 'object', required: ['status'], additionalProperties: false, properties: { status: { const: 'processed' } } },
        { type: 'object', required: ['status', 'code'], additionalProperties: false, properties: { status: { const: 'error' }, code: { type: 'integer', minimum: 900, maximum: 906, description: '902 unknown patient, 903 INS missing, 904 INS mismatch, 905 INS incomplete, 906 other' }, label: { type: 'string', maxLength: 200, description: 'Default: the ANS label of the code' } } },
      ],
    },
    XdmDocument: {
      type: 'object',
      required: ['partId', 'path', 'title', 'mimeType', 'size', 'hash', 'patient', 'typeCode', 'classCode', 'cdaCode', 'warnings'],
      properties: {
        partId: { type: 'string', description: 'The IHE_XDM.ZIP part' },
        path: { type: 'string' },
        title: { type: ['string', 'null'] },
        mimeType: { type: ['string', 'null'] },
        size: { type: 'integer' },
        hash: { type: 'string', description: 'SHA-1, hex' },
        patient: { type: ['object', 'null'], properties: { id: { type: 'string' }, oid: { type: 'string' }, kind: { enum: ['NIR', 'NIA', 'test', 'other'] } } },
        typeCode: { type: ['object', 'null'] },
        classCode: { type: ['object', 'null'] },
        cdaCode: { type: ['string', 'null'] },
        warnings: { type: 'integer', description: 'Deviations from the profile found in the package' },
      },
    },
    DocumentsRequest: {
      type: 'object',
      required: ['from', 'to', 'title', 'patient'],
      additionalProperties: false,
      properties: {
        from: { type: 'string', format: 'email' },
        to: { type: 'array', items: { type: 'string', format: 'email' }, minItems: 1 },
        cc: { type: 'array', items: { type: 'string', format: 'email' } },
        title: { type: 'string', description: 'The label in the subject XDM/1.0/DDM+<libellé> <NOM> <prénom> <date de naissance>' },
        documents: { type: 'array', items: { type: 'object', properties: { content: { type: 'string', contentEncoding: 'base64' }, mimeType: { enum: ['text/xml', 'application/pdf'] }, name: { type: 'string' }, title: { type: 'string' }, typeCode: { type: 'object' }, classCode: { type: 'object' } } } },
        rendition: { type: 'object', required: ['content'], properties: { content: { type: 'string', contentEncoding: 'base64' }, name: { type: 'string' } }, description: 'A PDF attached beside IHE_XDM.ZIP' },
        patient: { type: 'object', required: ['ins', 'oid', 'family', 'given', 'birthDate', 'gender', 'qualified'], properties: { ins: { type: 'string' }, oid: { type: 'string' }, family: { type: 'string' }, given: { type: 'string' }, birthDate: { type: 'string', format: 'date' }, gender: { enum: ['M', 'F', 'U'] }, qualified: { type: 'boolean', description: 'X-MSS-INS: O' } } },
        author: { type: 'object', properties: { rpps: { type: 'string' }, family: { type: 'string' }, given: { type: 'string' }, institution: { type: 'object' }, role: { type: 'string' }, email: { type: 'string' } } },
        text: { type: 'string' },
        nil: { type: 'string', description: 'X-MSS-NIL' },
        options: { type: 'object', properties: { readReceipt: { type: 'boolean' }, notify: { type: 'array', items: { enum: ['SUCCESS', 'FAILURE', 'DELAY', 'NEVER'] } }, endConversation: { type: 'boolean', description: 'X-MSS-MES: FIN (patients only)' } } },
      },
    },
    InboundEvent: { type: 'object', required: ['id', 'type', 'mailbox', 'createdAt', 'data'], properties: { id: { type: 'string', description: 'm<n>: the webhook event id' }, type: { const: 'email.received' }, mailbox: { type: 'string' }, createdAt: { type: 'string', format: 'date-time' }, data: { type: 'object', description: 'As the webhook payload’s data (docs/software-api.md)' } } },
    Webhook: { type: 'object', required: ['id', 'mailbox', 'url', 'createdAt'], properties: { id: { type: 'string' }, mailbox: { type: 'string' }, url: { type: 'string' }, createdAt: { type: 'string' }, lastEventId: { type: ['string', 'null'] }, failingSince: { type: ['string', 'null'] }, lastError: { type: ['string', 'null'] }, delivered: { type: 'integer' }, abandoned: { type: 'integer' } } },
    Grant: { type: 'object', required: ['login', 'displayName', 'rights', 'owner'], properties: { login: { type: 'string' }, displayName: { type: 'string' }, rights: { type: 'array', items: { enum: ['read', 'send', 'manage'] } }, owner: { type: 'boolean' } } },
    Preferences: {
      type: 'object',
      additionalProperties: false,
      properties: { signature: { type: 'string', maxLength: 10000 }, signatureHtml: { type: 'string', maxLength: 50000 }, listDensity: { enum: ['comfortable', 'compact'] }, remoteContent: { enum: ['ask', 'never'] } },
    },
  };
}

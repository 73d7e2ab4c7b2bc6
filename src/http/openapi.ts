// OpenAPI 3.1 description of the web authentication API (/api/auth), the absence message
// (/api/v1/mailboxes/{address}/absence) and the composer's check (/api/v1/compose/check), served at
// GET /api/openapi.json. test/web-auth.test.ts collects every /api/auth route Fastify registers
// (onRoute hook) and checks it is described here, so this document cannot drift from the code.
import type { FastifyInstance } from 'fastify';
import { mailPaths, mailSchemas } from './openapi-mail.js';

const problem = { $ref: '#/components/schemas/Problem' };
const problemResponse = (description: string) => ({ description, content: { 'application/problem+json': { schema: problem } } });
const json = (schema: object) => ({ 'application/json': { schema } });
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });

/** Security of routes that need a full session; state-changing ones also need the CSRF header. */
const session = [{ session: [] }];
const sessionCsrf = [{ session: [], csrf: [] }];

const COMMON_ERRORS = {
  '403': problemResponse('Refused: plain HTTP (code https-required), foreign Origin (foreign-origin), missing or wrong X-CSRF-Token (csrf)'),
};

/** Golden rule 3: the absence message of a mailbox (docs/policy.md). */
function absencePaths(): Record<string, object> {
  const parameters = [{ name: 'address', in: 'path', required: true, schema: { type: 'string', format: 'email' } }];
  const denied = {
    '401': problemResponse('Not authenticated (not-authenticated)'),
    '403': problemResponse('Neither the owner nor a delegate with the manage right (forbidden); plain HTTP (https-required); foreign Origin; missing or wrong X-CSRF-Token (csrf)'),
  };
  return {
    get: {
      operationId: 'getAbsence',
      summary: 'The absence message of a mailbox (owner or manage delegate).',
      security: session,
      parameters,
      responses: { '200': { description: 'The absence', content: json(ref('Absence')) }, ...denied, '404': problemResponse('No such mailbox (not-found) or no absence (no-absence)') },
    },
    put: {
      operationId: 'setAbsence',
      summary: 'Sets (replaces) the absence message. Replies follow RFC 3834 / RFC 5230: one per sender per period, never to automatic, list or report mail, only inside the trust space.',
      security: sessionCsrf,
      parameters,
      requestBody: { required: true, content: json(ref('AbsenceRequest')) },
      responses: { '200': { description: 'The absence as set', content: json(ref('Absence')) }, '400': problemResponse('Bad dates, text or substitute (invalid-request)'), ...denied, '404': problemResponse('No such mailbox (not-found)') },
    },
    delete: {
      operationId: 'clearAbsence',
      summary: 'Removes the absence message: no more replies.',
      security: sessionCsrf,
      parameters,
      responses: { '204': { description: 'Removed' }, ...denied, '404': problemResponse('No such mailbox (not-found) or no absence (no-absence)') },
    },
  };
}

export function openApiDocument(opts: { oidc: boolean; mail?: boolean }) {
  const paths: Record<string, Record<string, object>> = {
    '/api/auth/login': {
      post: {
        operationId: 'login',
        summary: 'First factor: login and account password. Opens a pending session (10 minutes) for the second factor.',
        requestBody: { required: true, content: json(ref('LoginRequest')) },
        responses: {
          '200': {
            description: 'Password accepted; the second factor is next (TOTP, or its enrolment at the first login). Sets the session cookie.',
            headers: { 'Set-Cookie': { schema: { type: 'string' }, description: '__Host-caducee_session (Secure; HttpOnly; SameSite=Strict; Path=/)' } },
            content: json(ref('PendingStage')),
          },
          '400': problemResponse('Missing field (code invalid-request)'),
          '401': problemResponse('Unknown login, wrong password or disabled account: one answer (code bad-credentials)'),
          '415': problemResponse('Not application/json (code json-required)'),
          '429': { ...problemResponse('Too many failures: locked out (code locked)'), headers: { 'Retry-After': { schema: { type: 'integer' } } } },
          ...COMMON_ERRORS,
        },
      },
    },
    '/api/auth/second-factor': {
      post: {
        operationId: 'secondFactor',
        summary: 'Second factor: a 6-digit TOTP code (never accepted twice) or a single-use recovery code. Replaces the pending session by a full one.',
        security: [{ session: [] }],
        requestBody: { required: true, content: json(ref('CodeRequest')) },
        responses: {
          '200': { description: 'Full session (new cookie, new CSRF token)', content: json(ref('FullSession')) },
          '401': problemResponse('Wrong code (bad-code), code already used (replayed-code), no pending login (no-pending-login), too many wrong codes (too-many-codes)'),
          '415': problemResponse('Not application/json (json-required)'),
          '429': problemResponse('Locked out (locked)'),
          ...COMMON_ERRORS,
        },
      },
    },
    '/api/auth/second-factor/enrol': {
      post: {
        operationId: 'enrolSecondFactor',
        summary: 'Confirms the TOTP enrolment started at login with a first code; returns the recovery codes, once.',
        security: [{ session: [] }],
        requestBody: { required: true, content: json(ref('CodeRequest')) },
        responses: {
          '200': {
            description: 'Enrolled; full session',
            content: json({ allOf: [ref('FullSession'), { type: 'object', required: ['recoveryCodes'], properties: { recoveryCodes: { type: 'array', items: { type: 'string' }, minItems: 10, maxItems: 10 } } }] }),
          },
          '401': problemResponse('Wrong code (bad-code), no pending enrolment (no-pending-login), too many wrong codes (too-many-codes)'),
          '415': problemResponse('Not application/json (json-required)'),
          ...COMMON_ERRORS,
        },
      },
    },
    '/api/auth/certificate': {
      post: {
        operationId: 'certificateLogin',
        summary: 'Login with the TLS client certificate presented in the handshake (CPS-like personal certificate, or organisation certificate → the structure’s application account). Send {} as body.',
        requestBody: { required: true, content: json({ type: 'object' }) },
        responses: {
          '200': { description: 'Full session', content: json(ref('FullSession')) },
          '401': problemResponse(
            'Refused (code certificate-refused); `reason`: no-certificate, untrusted, expired, revoked, not-client-auth, unrecognised-subject, unknown-identifier, disabled',
          ),
          '415': problemResponse('Not application/json (json-required)'),
          '429': problemResponse('Locked out (locked)'),
          ...COMMON_ERRORS,
        },
      },
    },
    '/api/auth/session': {
      get: {
        operationId: 'getSession',
        summary: 'The current session: full (user, CSRF token, expiry) or pending (its stage).',
        security: session,
        responses: {
          '200': { description: 'Session', content: json({ oneOf: [ref('FullSession'), ref('PendingStage')] }) },
          '401': problemResponse('No valid session (not-authenticated)'),
          ...COMMON_ERRORS,
        },
      },
    },
    '/api/auth/logout': {
      post: {
        operationId: 'logout',
        summary: 'Revokes the current session and clears the cookie (X-CSRF-Token needed with a full session).',
        security: sessionCsrf,
        responses: { '204': { description: 'Logged out (also when there was no session)' }, ...COMMON_ERRORS },
      },
    },
    '/api/auth/sessions': {
      get: {
        operationId: 'listSessions',
        summary: 'The user’s open full sessions (every device).',
        security: session,
        responses: {
          '200': { description: 'Sessions', content: json({ type: 'object', required: ['sessions'], properties: { sessions: { type: 'array', items: ref('SessionInfo') } } }) },
          '401': problemResponse('Not authenticated (not-authenticated)'),
          ...COMMON_ERRORS,
        },
      },
    },
    '/api/auth/sessions/{id}': {
      delete: {
        operationId: 'revokeSession',
        summary: 'Revokes one of the user’s sessions (its cookie then gets 401).',
        security: sessionCsrf,
        parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'integer' } }],
        responses: {
          '204': { description: 'Revoked' },
          '401': problemResponse('Not authenticated (not-authenticated)'),
          '404': problemResponse('No such open session of this user (not-found)'),
          ...COMMON_ERRORS,
        },
      },
    },
    '/api/auth/app-passwords': {
      get: {
        operationId: 'listAppPasswords',
        summary: 'The user’s active app passwords (mail clients); never their value.',
        security: session,
        responses: {
          '200': {
            description: 'App passwords',
            content: json({ type: 'object', required: ['appPasswords'], properties: { appPasswords: { type: 'array', items: ref('AppPassword') } } }),
          },
          '401': problemResponse('Not authenticated (not-authenticated)'),
          ...COMMON_ERRORS,
        },
      },
      post: {
        operationId: 'createAppPassword',
        summary: 'Creates an app password for a mail client (IMAP, SMTP); its value is returned once.',
        security: sessionCsrf,
        requestBody: { required: true, content: json({ type: 'object', required: ['label'], properties: { label: { type: 'string', minLength: 1, maxLength: 100 } } }) },
        responses: {
          '201': { description: 'Created', content: json({ allOf: [ref('AppPassword'), { type: 'object', required: ['password'], properties: { password: { type: 'string' } } }] }) },
          '400': problemResponse('Bad label (invalid-request)'),
          '401': problemResponse('Not authenticated (not-authenticated)'),
          '415': problemResponse('Not application/json (json-required)'),
          ...COMMON_ERRORS,
        },
      },
    },
    '/api/auth/app-passwords/{id}': {
      delete: {
        operationId: 'revokeAppPassword',
        summary: 'Revokes an app password: mail clients using it are refused from then on.',
        security: sessionCsrf,
        parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'integer' } }],
        responses: {
          '204': { description: 'Revoked' },
          '401': problemResponse('Not authenticated (not-authenticated)'),
          '404': problemResponse('No such active app password (not-found)'),
          ...COMMON_ERRORS,
        },
      },
    },
    '/api/v1/mailboxes/{address}/absence': absencePaths(),
    '/api/v1/compose/check': {
      post: {
        operationId: 'checkDraft',
        summary:
          'Golden rule 4, before sending: the urgency markers of the draft (urgent, urgence in the subject or first lines; accents and case ignored) and its local recipients who will not read it soon (away, or mail unread beyond the reading threshold). Nothing is stored.',
        security: sessionCsrf,
        requestBody: { required: true, content: json(ref('ComposeCheckRequest')) },
        responses: {
          '200': { description: 'What the webmail should warn about (warn: urgent and a recipient will not read it soon)', content: json(ref('ComposeCheck')) },
          '400': problemResponse('Bad body (invalid-request)'),
          '401': problemResponse('Not authenticated (not-authenticated)'),
          ...COMMON_ERRORS,
        },
      },
    },
  };
  if (opts.oidc) {
    paths['/api/auth/oidc/login'] = {
      get: {
        operationId: 'oidcLogin',
        summary: 'Starts an OpenID Connect login (Pro Santé Connect): redirects the browser to the provider (authorization code, PKCE S256, state, nonce).',
        parameters: [{ name: 'returnTo', in: 'query', required: false, schema: { type: 'string' }, description: 'A path of this site (starting with one "/") to land on after the login' }],
        responses: {
          '302': { description: 'To the provider; sets the short-lived __Host-caducee_oidc cookie (SameSite=Lax)' },
          '502': problemResponse('The provider cannot be reached (oidc-unavailable)'),
          ...COMMON_ERRORS,
        },
      },
    };
    paths['/api/auth/oidc/callback'] = {
      get: {
        operationId: 'oidcCallback',
        summary: 'Where the provider sends the browser back: checks state, nonce and PKCE, maps the national identifier (RPPS) to an account, opens a full session.',
        parameters: [
          { name: 'code', in: 'query', required: false, schema: { type: 'string' } },
          { name: 'state', in: 'query', required: false, schema: { type: 'string' } },
        ],
        responses: {
          '302': { description: 'Logged in: to "/" or the returnTo path saved at login; sets the session cookie' },
          '400': problemResponse('No login in progress, or the provider’s answer fails the checks (oidc-invalid)'),
          '403': problemResponse('The professional has no account at this operator (unknown-identifier), or the account is disabled'),
          '502': problemResponse('The provider cannot be reached (oidc-unavailable)'),
        },
      },
    };
  }
  if (opts.mail) Object.assign(paths, mailPaths());
  return {
    openapi: '3.1.0',
    info: {
      title: opts.mail ? 'Caducée — API messagerie et authentification web' : 'Caducée — authentification web',
      version: '1',
      description:
        'Web login of an MSSanté operator (HTTPS only): password then TOTP, TLS client certificate (CPS), OpenID Connect (Pro Santé Connect), sessions and app passwords. Errors are RFC 9457 problem+json with a French `detail` and a stable `code`. See docs/authentication.md.',
    },
    paths,
    components: {
      securitySchemes: {
        session: { type: 'apiKey', in: 'cookie', name: '__Host-caducee_session', description: 'Session cookie (Secure; HttpOnly; SameSite=Strict; Path=/)' },
        csrf: { type: 'apiKey', in: 'header', name: 'X-CSRF-Token', description: 'The csrfToken of the full session; required on POST, PUT, PATCH and DELETE made with a full session' },
        bearer: { type: 'http', scheme: 'bearer', description: 'An access token of the configured OpenID provider (Pro Santé Connect), validated as IMAP OAUTHBEARER (mail API only)' },
        clientCertificate: { type: 'mutualTLS', description: 'A personal (CPS) or organisation certificate presented in the TLS handshake, judged as SASL EXTERNAL (mail API only)' },
      },
      schemas: {
        ...(opts.mail ? mailSchemas() : {}),
        Problem: {
          type: 'object',
          required: ['type', 'title', 'status', 'detail', 'code'],
          properties: {
            type: { type: 'string' },
            title: { type: 'string' },
            status: { type: 'integer' },
            detail: { type: 'string', description: 'French, for the user' },
            code: { type: 'string', description: 'Stable machine code' },
            instance: { type: 'string' },
            reason: { type: 'string', description: 'certificate-refused: the class of refusal' },
            field: { type: 'string', description: 'invalid-request: the field at fault' },
          },
        },
        LoginRequest: { type: 'object', required: ['login', 'password'], properties: { login: { type: 'string' }, password: { type: 'string', format: 'password' } } },
        CodeRequest: { type: 'object', required: ['code'], properties: { code: { type: 'string', description: '6-digit TOTP code or recovery code (xxxxx-xxxxx)' } } },
        PendingStage: {
          type: 'object',
          required: ['stage'],
          properties: {
            stage: { enum: ['second-factor', 'enrol-second-factor'] },
            totp: {
              type: 'object',
              description: 'enrol-second-factor only: the secret to add to an authenticator app',
              required: ['secret', 'uri'],
              properties: { secret: { type: 'string' }, uri: { type: 'string', description: 'otpauth://totp/… URI (QR code)' } },
            },
            expiresAt: { type: 'string', format: 'date-time' },
          },
        },
        FullSession: {
          type: 'object',
          required: ['stage', 'user', 'csrfToken', 'expiresAt'],
          properties: {
            stage: { const: 'full' },
            user: { type: 'object', required: ['login', 'displayName'], properties: { login: { type: 'string' }, displayName: { type: 'string' } } },
            method: { type: 'string', description: 'PASSWORD+TOTP, PASSWORD+RECOVERY-CODE, CERTIFICATE, OIDC' },
            csrfToken: { type: 'string', description: 'Send it as X-CSRF-Token on state-changing requests' },
            expiresAt: { type: 'string', format: 'date-time', description: 'Absolute end of the session' },
            idleExpiresAt: { type: 'string', format: 'date-time', description: 'End of the session if no request comes before' },
            recoveryCodesLeft: { type: 'integer' },
          },
        },
        SessionInfo: {
          type: 'object',
          required: ['id', 'method', 'createdAt', 'lastSeenAt', 'current'],
          properties: {
            id: { type: 'integer' },
            method: { type: 'string' },
            createdAt: { type: 'string', format: 'date-time' },
            lastSeenAt: { type: 'string', format: 'date-time' },
            expiresAt: { type: 'string', format: 'date-time' },
            remote: { type: ['string', 'null'] },
            userAgent: { type: ['string', 'null'] },
            current: { type: 'boolean' },
          },
        },
        AbsenceRequest: {
          type: 'object',
          additionalProperties: false,
          description: 'Every field optional; PUT replaces the whole absence (an absent field is cleared).',
          properties: {
            startsAt: { type: ['string', 'null'], description: 'ISO 8601 date-time with a zone, or a date (midnight UTC); null: from now' },
            endsAt: { type: ['string', 'null'], description: 'ISO 8601; null: until cleared. Must be after startsAt and in the future' },
            subject: { type: ['string', 'null'], maxLength: 200, description: 'Subject prefix of the replies: "<subject> : <original subject>" (default "Absence")' },
            body: { type: ['string', 'null'], maxLength: 10000, description: 'The reply text; null: a default French text with the end date' },
            externalBody: { type: ['string', 'null'], maxLength: 10000, description: 'Text for senders outside the mailbox’s structure; null: body' },
            substitute: { type: ['string', 'null'], format: 'email', description: '"Pendant mon absence, écrivez à …": a mailbox of this operator, or one listed in the national directory' },
          },
        },
        Absence: {
          type: 'object',
          required: ['mailbox', 'startsAt', 'endsAt', 'subject', 'body', 'externalBody', 'substitute', 'updatedAt', 'updatedBy', 'active'],
          properties: {
            mailbox: { type: 'string', format: 'email' },
            startsAt: { type: ['string', 'null'], format: 'date-time' },
            endsAt: { type: ['string', 'null'], format: 'date-time' },
            subject: { type: ['string', 'null'] },
            body: { type: ['string', 'null'] },
            externalBody: { type: ['string', 'null'] },
            substitute: { type: ['string', 'null'] },
            updatedAt: { type: 'string', format: 'date-time' },
            updatedBy: { type: 'string' },
            active: { type: 'boolean', description: 'Whether replies go out now' },
          },
        },
        ComposeCheckRequest: {
          type: 'object',
          additionalProperties: false,
          properties: {
            subject: { type: 'string', maxLength: 100000 },
            text: { type: 'string', maxLength: 100000, description: 'The draft text; only its first lines are looked at' },
            to: { type: 'array', maxItems: 100, items: { type: 'string', format: 'email' }, description: 'Every recipient (To, Cc, Bcc)' },
          },
        },
        ComposeCheck: {
          type: 'object',
          required: ['urgent', 'markers', 'notReadSoon', 'warn', 'refused'],
          properties: {
            urgent: { type: 'boolean' },
            markers: { type: 'array', items: { type: 'string' }, description: 'e.g. "urgent (objet)", "urgence (début du texte)"' },
            notReadSoon: {
              type: 'array',
              items: {
                type: 'object',
                required: ['address', 'reason', 'substitute'],
                properties: {
                  address: { type: 'string', format: 'email' },
                  reason: { type: 'string', enum: ['absent', 'unread'] },
                  until: { type: ['string', 'null'], format: 'date-time', description: 'End of the absence (reason absent)' },
                  substitute: { type: ['string', 'null'], format: 'email' },
                },
              },
            },
            warn: { type: 'boolean', description: 'urgent and at least one recipient will not read it soon: suggest a phone call' },
            refused: {
              type: 'array',
              description: 'Recipients the sending would refuse: invalid address, unknown local mailbox, domain outside the liste blanche (reason in French)',
              items: { type: 'object', required: ['address', 'reason'], properties: { address: { type: 'string' }, reason: { type: 'string' } } },
            },
          },
        },
        AppPassword: {
          type: 'object',
          required: ['id', 'label', 'createdAt'],
          properties: {
            id: { type: 'integer' },
            label: { type: 'string' },
            createdAt: { type: 'string', format: 'date-time' },
            lastUsedAt: { type: ['string', 'null'], format: 'date-time' },
            lastUsedFrom: { type: ['string', 'null'] },
          },
        },
      },
    },
  };
}

export function registerOpenApi(app: FastifyInstance, opts: { oidc: boolean; mail?: boolean }) {
  const doc = openApiDocument(opts);
  app.get('/api/openapi.json', async () => doc);
}

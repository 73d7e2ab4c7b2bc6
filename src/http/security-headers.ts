// Security headers on every HTTPS response (issue 13, "Hardening"): the browser is told to use
// HTTPS only for this host, to load nothing from elsewhere, never to frame the pages, never to
// guess a content type and never to leak the URL (it may hold a mailbox address) in a Referer.
// Only on the HTTPS listener: RFC 6797 §7.2, a Strict-Transport-Security header sent over plain
// HTTP is ignored, and the plain listener serves only what is harmless without TLS.
import type { FastifyInstance } from 'fastify';

/** One year, the value browsers' HSTS preload lists expect as a minimum (RFC 6797 §6.1.1). */
const HSTS_MAX_AGE_SECONDS = 365 * 24 * 3600;

export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  // RFC 6797 §6.1: HTTPS only for a year, for the host and its subdomains.
  'strict-transport-security': `max-age=${HSTS_MAX_AGE_SECONDS}; includeSubDomains`,
  // CSP Level 3: resources from our own origin only, no plugins, no <base> rewriting, forms
  // posted to us only; frame-ancestors 'none' forbids framing (clickjacking), like
  // X-Frame-Options below for browsers without CSP frame-ancestors. Scripts: our own files only
  // (script-src falls back to 'self': no inline script, no eval). Two widenings for the webmail
  // (docs/webmail.md), both for received HTML mail shown in a sandboxed srcdoc iframe (no
  // allow-scripts, no allow-same-origin), which inherits this policy: style-src 'unsafe-inline'
  // because mail HTML is styled by inline style attributes and <style> elements (styles cannot
  // run code), and img-src data: https: so that remote images appear once the user clicks
  // « Afficher le contenu distant » (DOMPurify removes them until then) and the TOTP QR code
  // (a data: URL) shows.
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: https:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  // WHATWG Fetch §3.5 (X-Content-Type-Options): no MIME sniffing of responses.
  'x-content-type-options': 'nosniff',
  // RFC 7034: legacy framing ban.
  'x-frame-options': 'DENY',
  // W3C Referrer Policy: no Referer header to any site.
  'referrer-policy': 'no-referrer',
};

/** Adds SECURITY_HEADERS to every response of `app` (errors and 404s included). */
export function addSecurityHeaders(app: FastifyInstance): void {
  app.addHook('onSend', async (_req, reply, payload) => {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) reply.header(name, value);
    return payload;
  });
}

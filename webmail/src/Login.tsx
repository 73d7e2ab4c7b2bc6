// Login: account password, then the second factor — a TOTP code (or a recovery code), or at
// the first login the enrolment (QR code AND the secret as text, then the recovery codes shown
// once). Pro Santé Connect and the CPS card / certificate are the other ways in
// (docs/authentication.md). Inputs carry the standard autocomplete tokens (WHATWG HTML
// §4.10.18.7: username, current-password, one-time-code) and visible labels (RGAA 11.1).
import { useEffect, useRef, useState, type FormEvent } from 'react';
import QRCode from 'qrcode';
import { api, ApiError, type SessionInfo } from './api';

type Step = { kind: 'password' } | { kind: 'code' } | { kind: 'enrol'; secret: string; uri: string } | { kind: 'recovery'; codes: string[]; session: SessionInfo };

export function Login({ onDone, notice }: { onDone: (s: SessionInfo) => void; notice: string | null }) {
  const [step, setStep] = useState<Step>({ kind: 'password' });
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [qr, setQr] = useState<string | null>(null);
  const heading = useRef<HTMLHeadingElement>(null);

  useEffect(() => {
    // The new step's first field (or its heading) gets the focus: keyboard users continue at once.
    const field = document.querySelector<HTMLInputElement>('.login-card #code');
    if (field) field.focus();
    else if (step.kind !== 'password') heading.current?.focus();
    if (step.kind === 'enrol') void QRCode.toDataURL(step.uri, { margin: 2, width: 200 }).then(setQr);
  }, [step]);

  const run = async (fn: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await fn();
    } catch (e) {
      setError(e instanceof ApiError ? e.message : 'Erreur inattendue : réessayez.');
      if (e instanceof ApiError && e.code === 'no-pending-login') setStep({ kind: 'password' });
    } finally {
      setBusy(false);
    }
  };

  const submitPassword = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    void run(async () => {
      const r = await api<any>('POST', '/api/auth/login', { login: String(f.get('login')), password: String(f.get('password')) });
      if (r.stage === 'full') onDone(r);
      else if (r.stage === 'enrol-second-factor') setStep({ kind: 'enrol', secret: r.totp.secret, uri: r.totp.uri });
      else setStep({ kind: 'code' });
    });
  };
  const submitCode = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const code = String(new FormData(e.currentTarget).get('code')).trim();
    void run(async () => {
      if (step.kind === 'enrol') {
        const r = await api<any>('POST', '/api/auth/second-factor/enrol', { code });
        setStep({ kind: 'recovery', codes: r.recoveryCodes, session: r });
      } else onDone(await api<SessionInfo>('POST', '/api/auth/second-factor', { code }));
    });
  };
  const certificate = () => run(async () => onDone(await api<SessionInfo>('POST', '/api/auth/certificate', {})));

  const titles: Record<Step['kind'], string> = {
    password: 'Connexion à votre messagerie sécurisée',
    code: 'Vérification en deux étapes',
    enrol: 'Activez la vérification en deux étapes',
    recovery: 'Vos codes de secours',
  };

  return (
    <div className="login-page">
      <header className="login-banner" role="banner">
        <p className="brand">Caducée · Messagerie sécurisée de santé</p>
      </header>
      <main className="login-card" id="contenu">
        <h1 tabIndex={-1} ref={heading}>
          {titles[step.kind]}
        </h1>
        {notice && step.kind === 'password' && (
          <p className="notice" role="status">
            {notice}
          </p>
        )}
        {error && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
        {step.kind === 'password' && (
          <>
            <form onSubmit={submitPassword}>
              <label htmlFor="login">Identifiant</label>
              <input id="login" name="login" autoComplete="username" required autoCapitalize="none" spellCheck={false} />
              <label htmlFor="password">Mot de passe</label>
              <input id="password" name="password" type="password" autoComplete="current-password" required />
              <button type="submit" className="primary" disabled={busy}>
                Se connecter
              </button>
            </form>
            <div className="other-ways" role="group" aria-labelledby="autres">
              <h2 id="autres">Autres moyens de connexion</h2>
              <a className="button psc" href="/api/auth/oidc/login?returnTo=/">
                Se connecter avec Pro Santé Connect
              </a>
              <button type="button" onClick={certificate} disabled={busy}>
                Carte CPS ou certificat
              </button>
            </div>
          </>
        )}
        {step.kind === 'code' && (
          <form onSubmit={submitCode}>
            <p>Saisissez le code à 6 chiffres affiché par votre application d’authentification, ou l’un de vos codes de secours.</p>
            <label htmlFor="code">Code de vérification</label>
            <input id="code" name="code" autoComplete="one-time-code" inputMode="numeric" required />
            <button type="submit" className="primary" disabled={busy}>
              Valider
            </button>
            <button type="button" className="link" onClick={() => setStep({ kind: 'password' })}>
              Recommencer la connexion
            </button>
          </form>
        )}
        {step.kind === 'enrol' && (
          <form onSubmit={submitCode}>
            <p>
              Première connexion : ajoutez ce compte à votre application d’authentification (FreeOTP, Google Authenticator, Microsoft Authenticator…) en scannant le QR code,
              ou en saisissant la clé ci-dessous.
            </p>
            {qr && <img className="qr" src={qr} width={200} height={200} alt="QR code à scanner avec votre application d’authentification" />}
            <p>
              Clé à saisir manuellement : <code className="secret" data-testid="totp-secret">{step.secret.replace(/(.{4})/g, '$1 ').trim()}</code>
            </p>
            <label htmlFor="code">Code affiché par l’application</label>
            <input id="code" name="code" autoComplete="one-time-code" inputMode="numeric" required />
            <button type="submit" className="primary" disabled={busy}>
              Activer
            </button>
          </form>
        )}
        {step.kind === 'recovery' && (
          <section aria-labelledby="codes-h">
            <h2 id="codes-h">Conservez ces codes en lieu sûr</h2>
            <p>Chaque code permet une connexion si vous n’avez plus votre téléphone. Ils ne seront plus affichés.</p>
            <ul className="recovery-codes">
              {step.codes.map((c) => (
                <li key={c}>
                  <code>{c}</code>
                </li>
              ))}
            </ul>
            <button type="button" className="primary" onClick={() => onDone(step.session)}>
              J’ai noté mes codes, accéder à ma messagerie
            </button>
          </section>
        )}
      </main>
    </div>
  );
}

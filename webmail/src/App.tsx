// The webmail's shell: asks the server for the current session, shows the login screens or the
// mail screens, and goes back to login (keeping the composer's draft in sessionStorage) when
// any call answers 401 not-authenticated.
import { useCallback, useEffect, useState } from 'react';
import { api, onSessionExpired, setCsrf, type SessionInfo } from './api';
import { Login } from './Login';
import { MailApp } from './MailApp';

export function App() {
  const [session, setSession] = useState<SessionInfo | null | undefined>(undefined);
  const [notice, setNotice] = useState<string | null>(null);

  const load = useCallback(async () => {
    try {
      const s = await api<SessionInfo>('GET', '/api/auth/session');
      if (s.stage === 'full') {
        setCsrf(s.csrfToken);
        setSession(s);
      } else setSession(null);
    } catch {
      setSession(null);
    }
  }, []);

  useEffect(() => {
    onSessionExpired(() => {
      setCsrf(undefined);
      setNotice('Votre session a expiré : reconnectez-vous. Le message en cours de rédaction a été conservé.');
      setSession(null);
    });
    void load();
  }, [load]);

  if (session === undefined)
    return (
      <main className="loading" aria-busy="true">
        <p>Chargement de la messagerie…</p>
      </main>
    );
  if (!session)
    return (
      <Login
        notice={notice}
        onDone={(s) => {
          setNotice(null);
          setCsrf(s.csrfToken);
          setSession(s);
        }}
      />
    );
  return (
    <MailApp
      session={session}
      onLogout={async () => {
        await api('POST', '/api/auth/logout').catch(() => {});
        setCsrf(undefined);
        sessionStorage.removeItem('caducee.draft');
        setSession(null);
      }}
    />
  );
}

// Sign-in: username and password; back to the page the user was on (?next=) afterwards.
import { useState, type FormEvent } from "react";
import { Link, useNavigate, useSearchParams } from "react-router-dom";
import { api } from "../api";
import { ErrorNote } from "../components/Confirm";
import { safeNext } from "../lib/auth";
import { useSession } from "../lib/session";

export function LoginPage() {
  const [sp] = useSearchParams();
  const next = safeNext(sp.get("next"));
  const navigate = useNavigate();
  const { me, refresh } = useSession();
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(null);

  if (me?.mode === "local") {
    return (
      <div className="page login">
        <h1>Sign in</h1>
        <p>This server runs in single-user local mode: no sign-in is needed. Go to the <Link to="/">projects</Link>.</p>
      </div>
    );
  }

  const submit = async (ev: FormEvent) => {
    ev.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await api.login(username, password);
      await refresh();
      navigate(next, { replace: true });
    } catch (e) {
      setError(e as Error);
      setPassword("");
    }
    setBusy(false);
  };

  return (
    <div className="page login">
      <h1>Sign in</h1>
      {me?.user && <p className="muted">Signed in as {me.user.username}; signing in again switches the user.</p>}
      <form onSubmit={submit} className="loginform" aria-label="sign in">
        <label>Username <input name="username" autoComplete="username" autoFocus required value={username}
          onChange={(e) => setUsername(e.target.value)} /></label>
        <label>Password <input name="password" type="password" autoComplete="current-password" required value={password}
          onChange={(e) => setPassword(e.target.value)} /></label>
        <button type="submit" disabled={busy || !username || !password}>{busy ? "Signing in…" : "Sign in"}</button>
      </form>
      <ErrorNote error={error} />
      <p className="muted">No account? An admin creates one with <code>runyard admin create-user NAME</code>.</p>
    </div>
  );
}

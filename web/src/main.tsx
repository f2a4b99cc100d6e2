import { StrictMode, useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import { BrowserRouter, Link, Route, Routes, useNavigate } from "react-router-dom";
import "./styles.css";
import { api, onUnauthorized } from "./api";
import { loginUrl } from "./lib/auth";
import { SessionProvider, useSession } from "./lib/session";
import { ComparePage } from "./pages/Compare";
import { DatasetPage, DatasetsPage } from "./pages/Datasets";
import { ExperimentPage } from "./pages/Experiment";
import { LoginPage } from "./pages/Login";
import { ModelPage, ModelsPage } from "./pages/Models";
import { ProjectPage } from "./pages/Project";
import { ProjectsPage } from "./pages/Projects";
import { RunPage } from "./pages/Run";

function NotFound() {
  return <div className="page"><h1>Not found</h1><p>No page here. Go to the <Link to="/">projects</Link>.</p></div>;
}

/** Any 401 from the API (no session, or it ended) goes to the login page, which comes back here afterwards. */
function SignInOnUnauthorized() {
  const navigate = useNavigate();
  const { clear } = useSession();
  useEffect(() => {
    onUnauthorized(() => {
      const here = window.location.pathname + window.location.search + window.location.hash;
      if (window.location.pathname === "/login") return;
      clear();
      navigate(loginUrl(here), { replace: true });
    });
    return () => onUnauthorized(null);
  }, [navigate, clear]);
  return null;
}

/** The signed-in user's name and a sign-out button (nothing in single-user local mode). */
function UserMenu() {
  const { me, refresh, clear } = useSession();
  const navigate = useNavigate();
  const [error, setError] = useState<string | null>(null);
  if (!me || me.mode !== "auth" || !me.user) return null;
  return (
    <span className="user" data-testid="user-menu">
      <span className="username" data-testid="username">{me.user.username}{me.is_admin ? " (admin)" : ""}</span>
      <button onClick={async () => {
        setError(null);
        try {
          await api.logout();
        } catch (e) {
          // The session may still be open: say so instead of pretending to have signed out.
          setError(`Sign-out failed: ${(e as Error).message}`);
          return;
        }
        clear();
        navigate("/login", { replace: true });
        refresh();
      }}>Sign out</button>
      {error && <span className="error" role="alert">{error}</span>}
    </span>
  );
}

function SessionError() {
  const { error } = useSession();
  if (!error) return null;
  return <div className="error page" role="alert">Could not ask the server who is signed in: {error.message}</div>;
}

function App() {
  return (
    <BrowserRouter>
      <SessionProvider>
        <SignInOnUnauthorized />
        <header className="top">
          <Link to="/" className="brand">Runyard</Link>
          <Link to="/">Projects</Link>
          <Link to="/compare">Compare</Link>
          <a href="/api/v1/docs">API</a>
          <span className="spacer" />
          <UserMenu />
        </header>
        <SessionError />
        <Routes>
          <Route path="/login" element={<LoginPage />} />
          <Route path="/" element={<ProjectsPage />} />
          <Route path="/projects/:name" element={<ProjectPage />} />
          <Route path="/projects/:name/models" element={<ModelsPage />} />
          <Route path="/projects/:name/models/:model" element={<ModelPage />} />
          <Route path="/projects/:name/datasets" element={<DatasetsPage />} />
          <Route path="/projects/:name/datasets/:dataset" element={<DatasetPage />} />
          <Route path="/experiments/:id" element={<ExperimentPage />} />
          <Route path="/runs/:id" element={<RunPage />} />
          <Route path="/compare" element={<ComparePage />} />
          <Route path="*" element={<NotFound />} />
        </Routes>
      </SessionProvider>
    </BrowserRouter>
  );
}

createRoot(document.getElementById("root")!).render(<StrictMode><App /></StrictMode>);

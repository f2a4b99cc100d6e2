import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { BrowserRouter, Link, Route, Routes } from "react-router-dom";
import "./styles.css";
import { ComparePage } from "./pages/Compare";
import { ExperimentPage } from "./pages/Experiment";
import { ProjectPage } from "./pages/Project";
import { ProjectsPage } from "./pages/Projects";
import { RunPage } from "./pages/Run";

function NotFound() {
  return <div className="page"><h1>Not found</h1><p>No page here. Go to the <Link to="/">projects</Link>.</p></div>;
}

function App() {
  return (
    <BrowserRouter>
      <header className="top">
        <Link to="/" className="brand">Runyard</Link>
        <Link to="/">Projects</Link>
        <Link to="/compare">Compare</Link>
        <a href="/api/v1/docs">API</a>
      </header>
      <Routes>
        <Route path="/" element={<ProjectsPage />} />
        <Route path="/projects/:name" element={<ProjectPage />} />
        <Route path="/experiments/:id" element={<ExperimentPage />} />
        <Route path="/runs/:id" element={<RunPage />} />
        <Route path="/compare" element={<ComparePage />} />
        <Route path="*" element={<NotFound />} />
      </Routes>
    </BrowserRouter>
  );
}

createRoot(document.getElementById("root")!).render(<StrictMode><App /></StrictMode>);

// The sections of a project: its overview (experiments and runs), its models and its datasets.
import { NavLink } from "react-router-dom";

export function ProjectNav({ project }: { project: string }) {
  const base = `/projects/${encodeURIComponent(project)}`;
  const cls = ({ isActive }: { isActive: boolean }) => (isActive ? "active" : "");
  return (
    <nav className="projectnav" aria-label="project sections" data-testid="project-nav">
      <NavLink to={base} end className={cls}>Overview</NavLink>
      <NavLink to={`${base}/models`} className={cls}>Models</NavLink>
      <NavLink to={`${base}/datasets`} className={cls}>Datasets</NavLink>
    </nav>
  );
}

/** A command to copy, shown as code (the empty pages say what to run next). */
export function Command({ text }: { text: string }) {
  return <pre className="command" data-testid="command"><code>{text}</code></pre>;
}

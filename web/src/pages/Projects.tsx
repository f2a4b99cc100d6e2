// Projects: search by name (server-side), filter by owner, sorted by latest activity.
import { useMemo } from "react";
import { Link } from "react-router-dom";
import { api } from "../api";
import { ErrorNote } from "../components/Confirm";
import { usePoll, useQueryParam } from "../lib/hooks";

export function ago(ts: number | null): string {
  if (ts == null) return "never";
  const s = Date.now() / 1000 - ts;
  if (s < 60) return `${Math.max(0, Math.round(s))}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return new Date(ts * 1000).toLocaleDateString();
}

export function ProjectsPage() {
  const [q, setQ] = useQueryParam("q");
  const [owner, setOwner] = useQueryParam("owner");
  const { data, error } = usePoll(() => api.projects(q ?? undefined), [q]);
  const owners = useMemo(() => [...new Set((data ?? []).map((p) => p.owner ?? ""))].sort(), [data]);
  const shown = useMemo(
    () => (data ?? []).filter((p) => !owner || (p.owner ?? "") === owner)
      .sort((a, b) => (b.last_activity_at ?? b.updated_at) - (a.last_activity_at ?? a.updated_at)),
    [data, owner],
  );
  return (
    <div className="page">
      <h1>Projects</h1>
      <div className="controls">
        <input type="search" placeholder="search by name or description" value={q ?? ""} onChange={(e) => setQ(e.target.value)} aria-label="search projects" />
        <label>owner: <select value={owner ?? ""} onChange={(e) => setOwner(e.target.value)}>
          <option value="">anyone</option>
          {owners.filter(Boolean).map((o) => <option key={o} value={o}>{o}</option>)}
        </select></label>
      </div>
      <ErrorNote error={error} />
      <table className="list" data-testid="projects">
        <thead><tr><th>name</th><th>owner</th><th>visibility</th><th>experiments</th><th>runs</th><th>latest activity</th><th>description</th></tr></thead>
        <tbody>
          {shown.map((p) => (
            <tr key={p.id} data-project={p.name}>
              <td><Link to={`/projects/${encodeURIComponent(p.name)}`}>{p.name}</Link></td>
              <td>{p.owner ?? ""}</td><td>{p.visibility}</td><td>{p.n_experiments}</td><td>{p.n_runs}</td>
              <td>{ago(p.last_activity_at)}</td>
              <td className="muted">{p.description.split("\n")[0].slice(0, 120)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {data && shown.length === 0 && <p className="muted">No projects{q ? ` match “${q}”` : ""}. Start one with <code>runyard run DIR</code>.</p>}
    </div>
  );
}

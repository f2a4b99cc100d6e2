// Projects: search by name and filter by tag (both server-side, both in the URL), filter by owner, sorted by latest activity.
import { useMemo, useState } from "react";
import { Link } from "react-router-dom";
import { api } from "../api";
import { ErrorNote } from "../components/Confirm";
import { usePoll, useQueryList, useQueryParam } from "../lib/hooks";
import { addTagFilter, normalizeTagFilter, removeTagFilter, tagFilter, tagLabel } from "../lib/tags";

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
  const [tags, setTags] = useQueryList("tag");
  const [typed, setTyped] = useState("");
  const { data, error } = usePoll(() => api.projects(q ?? undefined, tags), [q, tags]);
  const owners = useMemo(() => [...new Set((data ?? []).map((p) => p.owner ?? ""))].sort(), [data]);
  const shown = useMemo(
    () => (data ?? []).filter((p) => !owner || (p.owner ?? "") === owner)
      .sort((a, b) => (b.last_activity_at ?? b.updated_at) - (a.last_activity_at ?? a.updated_at)),
    [data, owner],
  );
  const addFilter = (f: string | null) => {
    if (f) setTags(addTagFilter(tags, f));
  };
  return (
    <div className="page">
      <h1>Projects</h1>
      <div className="controls">
        <input type="search" placeholder="search by name" value={q ?? ""} onChange={(e) => setQ(e.target.value)} aria-label="search projects" />
        <label>owner: <select value={owner ?? ""} onChange={(e) => setOwner(e.target.value)}>
          <option value="">anyone</option>
          {owners.filter(Boolean).map((o) => <option key={o} value={o}>{o}</option>)}
        </select></label>
        <form onSubmit={(e) => { e.preventDefault(); addFilter(normalizeTagFilter(typed)); setTyped(""); }}>
          <input type="search" placeholder="tag: key or key:value, Enter" value={typed} onChange={(e) => setTyped(e.target.value)}
            aria-label="filter by tag" />
        </form>
        {tags.length > 0 && (
          <span className="tags" data-testid="tag-filters">
            {tags.map((f) => (
              <button key={f} type="button" className="tag active" onClick={() => setTags(removeTagFilter(tags, f))}
                title="stop filtering by this tag" aria-label={`remove tag filter ${f}`}>{f} ×</button>
            ))}
            {tags.length > 1 && <button type="button" className="linkish" onClick={() => setTags([])}>clear</button>}
          </span>
        )}
      </div>
      <ErrorNote error={error} />
      <table className="list" data-testid="projects">
        <thead><tr><th>name</th><th>owner</th><th>visibility</th><th>experiments</th><th>runs</th><th>latest activity</th><th>tags</th><th>description</th></tr></thead>
        <tbody>
          {shown.map((p) => (
            <tr key={p.id} data-project={p.name}>
              <td><Link to={`/projects/${encodeURIComponent(p.name)}`}>{p.name}</Link></td>
              <td>{p.owner ?? ""}</td><td>{p.visibility}</td><td>{p.n_experiments}</td><td>{p.n_runs}</td>
              <td>{ago(p.last_activity_at)}</td>
              <td className="tags">
                {Object.entries(p.tags ?? {}).map(([k, v]) => {
                  const f = tagFilter(k, v);
                  return (
                    <button key={k} type="button" className={`tag${tags.includes(f) ? " active" : ""}`} data-tag={f}
                      onClick={() => addFilter(f)} title={`show projects tagged ${tagLabel(k, v)}`}>{tagLabel(k, v)}</button>
                  );
                })}
              </td>
              <td className="muted">{p.description.split("\n")[0].slice(0, 120)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {data && shown.length === 0 && (
        <p className="muted">
          No projects{q ? ` match “${q}”` : ""}{tags.length ? ` with tag ${tags.join(" and ")}` : ""}. Start one with <code>runyard run DIR</code>.
        </p>
      )}
    </div>
  );
}

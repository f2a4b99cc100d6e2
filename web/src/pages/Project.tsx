// A project: its description (Markdown), experiments, all its runs, and its sharing (signed-in servers).
import { lazy, Suspense, useCallback, useMemo } from "react";
import { Link, useParams } from "react-router-dom";
import { api } from "../api";
import { ErrorNote, StatusBadge } from "../components/Confirm";
import { RunTable } from "../components/RunTable";
import { ProjectNav } from "../components/ProjectNav";
import { ProjectTags } from "../components/ProjectTags";
import { SharingPanel } from "../components/Sharing";
import { useProjectAccess, useSession } from "../lib/session";
import { usePoll, useQueryParam } from "../lib/hooks";
import { nextSort, parseColumns, type Column } from "../lib/table";
import { ago } from "./Projects";

// Markdown rendering (marked + DOMPurify) loads only on this page.
const Markdown = lazy(() => import("../components/Markdown").then((m) => ({ default: m.Markdown })));

export function ProjectPage() {
  const name = useParams().name!;
  const project = usePoll(() => api.project(name), [name]);
  const exps = usePoll(() => api.experiments(name), [name]);
  const [orderBy, setOrderBy] = useQueryParam("sort");
  const columns = useMemo(() => parseColumns(["number", "name", "status", "duration", "created_at"]), []);
  const onSort = useCallback((c: Column) => setOrderBy(nextSort(orderBy, c)), [orderBy, setOrderBy]);
  const query = useMemo(() => ({ project: name }), [name]);
  const { me } = useSession();
  const access = useProjectAccess(name);
  return (
    <div className="page">
      <div className="crumbs"><Link to="/">Projects</Link> / {name}</div>
      <h1>{name}</h1>
      <ProjectNav project={name} />
      <ErrorNote error={project.error} />
      {project.data && (
        <div className="controls muted" data-testid="project-meta">
          <span>owner: {project.data.owner ?? "—"}</span><span>visibility: {project.data.visibility}</span>
          {me?.mode === "auth" && access.role && <span data-testid="my-role">your role: {access.role}</span>}
        </div>
      )}
      {project.data && <ProjectTags project={name} tags={project.data.tags ?? {}} canEdit={access.canWrite} onChange={project.reload} />}
      {project.data && (project.data.description ? <Suspense fallback={<p className="muted">…</p>}><Markdown text={project.data.description} /></Suspense> : <p className="muted">No description.</p>)}
      <h2>Experiments</h2>
      <table className="list" data-testid="experiments">
        <thead><tr><th>id</th><th>name</th><th>status</th><th>runs</th><th>created</th></tr></thead>
        <tbody>
          {(exps.data ?? []).map((e) => (
            <tr key={e.id}>
              <td>{e.id}</td>
              <td><Link to={`/experiments/${e.id}`}>{e.name}</Link></td>
              <td><StatusBadge status={e.status} /></td>
              <td>{Object.entries(e.counts).map(([s, n]) => `${n} ${s}`).join(", ")}</td>
              <td>{ago(e.created_at)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>All runs</h2>
      <RunTable query={query} columns={columns} orderBy={orderBy} onSort={onSort} height={400} canCancel={access.canWrite} />
      {me?.mode === "auth" && project.data && <SharingPanel project={name} access={access} />}
    </div>
  );
}

// A project's datasets: the list (versions, files, size of the latest), and a dataset's page: its
// versions (message, tags, who, when), the selected version's files (a virtualised list: 10,000
// files scroll), references kept in place, the model versions using it and its lineage, and the
// difference between two chosen versions. The URL holds the version, the tab and the diff pair.
import { useMemo, useState } from "react";
import { Link, useParams } from "react-router-dom";
import { api, type DatasetDetail, type DatasetVersion } from "../api";
import { ConfirmButton, ErrorNote } from "../components/Confirm";
import { LineageView } from "../components/Lineage";
import { Command, ProjectNav } from "../components/ProjectNav";
import { VirtualRows } from "../components/VirtualRows";
import { usePoll, useQueryParam, useSetQuery } from "../lib/hooks";
import {
  canDeleteVersion, datasetVersionUri, diffPair, diffSummary, DIFF_KINDS, exactBytes, filterDiffRows, filterFiles, formatCount, formatSize,
  formatSizeDelta, groupDiff, parseVersion, pickVersion, pushDatasetCommand, type DiffKind,
} from "../lib/registry";
import { useProjectAccess } from "../lib/session";
import { modelHref } from "./Models";
import { ago } from "./Projects";

const when = (ts: number | null | undefined) => (ts == null ? "" : new Date(ts * 1000).toLocaleString());
const enc = encodeURIComponent;
const datasetHref = (project: string, dataset: string, version?: number) =>
  `/projects/${enc(project)}/datasets/${enc(dataset)}${version != null ? `?version=${version}` : ""}`;

function Tags({ tags }: { tags: Record<string, string> | undefined }) {
  const entries = Object.entries(tags ?? {});
  if (!entries.length) return null;
  return <span className="badges">{entries.map(([k, v]) => <span key={k} className="tag-chip">{v ? `${k}: ${v}` : k}</span>)}</span>;
}

export function DatasetsPage() {
  const project = useParams().name!;
  const [q, setQ] = useQueryParam("q");
  const list = usePoll(() => api.datasets(project, q ?? undefined), [project, q], 0);
  const items = list.data ?? [];
  return (
    <div className="page">
      <div className="crumbs"><Link to="/">Projects</Link> / <Link to={`/projects/${enc(project)}`}>{project}</Link> / datasets</div>
      <h1>Datasets</h1>
      <ProjectNav project={project} />
      {(q || items.length > 0 || !list.data) && <div className="controls">
        <input type="search" placeholder="search by name" aria-label="search datasets" value={q ?? ""} onChange={(e) => setQ(e.target.value)} />
      </div>}
      <ErrorNote error={list.error} />
      {list.data && items.length > 0 && (
        <table className="list wide" data-testid="datasets">
          <thead><tr><th>name</th><th>latest version</th><th>versions</th><th>files</th><th>size</th><th>description</th><th>updated</th></tr></thead>
          <tbody>
            {items.map((d) => (
              <tr key={d.name} data-dataset={d.name}>
                <td><Link to={datasetHref(project, d.name)}>{d.name}</Link></td>
                <td>{d.latest_version != null ? <Link to={datasetHref(project, d.name, d.latest_version)}>v{d.latest_version}</Link> : "—"}</td>
                <td className="num">{d.n_versions}</td>
                <td className="num">{d.n_files.toLocaleString("en-US")}</td>
                <td className="num" title={exactBytes(d.size)}>{formatSize(d.size)}</td>
                <td className="clip" title={d.description}>{d.description}</td>
                <td title={when(d.updated_at)}>{ago(d.updated_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {list.data && items.length === 0 && (q
        ? <p className="muted" data-testid="empty">No dataset's name contains “{q}”.</p>
        : (
          <div className="emptystate" data-testid="empty">
            <p>No datasets in {project} yet. Push a directory as a dataset's first version (pushing again makes a new version only when something changed):</p>
            <Command text={pushDatasetCommand(project)} />
            <p>Runs then declare it in <code>runyard.yml</code>: <code>datasets: {"{"}train: NAME:latest{"}"}</code>.</p>
          </div>
        ))}
    </div>
  );
}

const TABS = ["files", "references", "models", "lineage"] as const;
const KEPT_FOR_MODELS = "Registered models were trained on this version: it cannot be deleted (see models).";

export function DatasetPage() {
  const { name: project, dataset: name } = useParams() as { name: string; dataset: string };
  const detail = usePoll(() => api.dataset(project, name), [project, name], 0);
  const [versionQ, setVersion] = useQueryParam("version");
  const d = detail.data;
  const versions = useMemo(() => [...(d?.versions ?? [])].sort((a, b) => b.version - a.version), [d]);
  const numbers = useMemo(() => versions.map((v) => v.version), [versions]);
  const selected = pickVersion(parseVersion(versionQ), numbers);
  const access = useProjectAccess(project);
  return (
    <div className="page" data-testid="dataset-page" data-role={access.role ?? ""}>
      <div className="crumbs">
        <Link to="/">Projects</Link> / <Link to={`/projects/${enc(project)}`}>{project}</Link> / <Link to={`/projects/${enc(project)}/datasets`}>datasets</Link> / {name}
      </div>
      <h1>{name}</h1>
      <ProjectNav project={project} />
      <ErrorNote error={detail.error} />
      {d && (
        <>
          <div className="controls muted" data-testid="dataset-meta">
            <span>{formatCount(d.n_versions, "version")}</span>
            {d.latest_version != null && <span>latest v{d.latest_version}: {formatCount(d.n_files, "file")}, {formatSize(d.size)}</span>}
            <span>created by {d.created_by || "—"} {ago(d.created_at)}</span>
          </div>
          {d.description && <p>{d.description}</p>}
          <h2>Versions</h2>
          {versions.length === 0 ? (
            <div className="emptystate" data-testid="empty"><p>No versions yet. Push one:</p><Command text={pushDatasetCommand(project, name)} /></div>
          ) : (
            <table className="list wide" data-testid="dataset-versions">
              <thead><tr><th>version</th><th>message</th><th>tags</th><th>files</th><th>size</th><th>by</th><th>created</th></tr></thead>
              <tbody>
                {versions.map((v) => (
                  <tr key={v.version} data-version={v.version} className={v.version === selected ? "selected" : undefined}>
                    <td><a href={datasetHref(project, name, v.version)} aria-current={v.version === selected ? "true" : undefined}
                      onClick={(e) => { e.preventDefault(); setVersion(String(v.version)); }}>v{v.version}</a></td>
                    <td className="clip" title={v.message}>{v.message || <span className="muted">—</span>}</td>
                    <td><Tags tags={v.tags} /></td>
                    <td className="num">{v.n_files.toLocaleString("en-US")}</td>
                    <td className="num" title={exactBytes(v.size)}>{formatSize(v.size)}</td>
                    <td>{v.created_by}</td>
                    <td title={when(v.created_at)}>{ago(v.created_at)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          {selected != null && <VersionPanel key={selected} project={project} dataset={name} version={selected} canDelete={canDeleteVersion(access.role)}
            onDeleted={() => { setVersion(null); detail.reload(); }} />}
          <DiffPanel project={project} detail={d} versions={numbers} />
        </>
      )}
    </div>
  );
}

function VersionPanel({ project, dataset, version, canDelete, onDeleted }: {
  project: string; dataset: string; version: number; canDelete: boolean; onDeleted: () => void;
}) {
  const v = usePoll(() => api.datasetVersion(project, dataset, version), [project, dataset, version], 0);
  const [tabQ, setTab] = useQueryParam("tab");
  const tab = (TABS as readonly string[]).includes(tabQ ?? "") ? tabQ! : "files";
  const dv = v.data;
  return (
    <section className="panel" data-testid="dataset-version" data-version={version}>
      <div className="controls">
        <h2>{dataset} v{version}</h2>
        {canDelete && dv && (
          <ConfirmButton label="Delete version" question={`Delete ${dataset} v${version}?`} confirmLabel="Yes, delete"
            disabled={dv.used_by_models.length > 0} title={dv.used_by_models.length > 0 ? KEPT_FOR_MODELS : undefined}
            onConfirm={async () => { await api.deleteDatasetVersion(project, dataset, version); onDeleted(); }} />
        )}
        {canDelete && dv && dv.used_by_models.length > 0 && <span className="muted" data-testid="delete-blocked">{KEPT_FOR_MODELS}</span>}
      </div>
      <ErrorNote error={v.error} />
      {!dv && !v.error && <p className="muted">loading…</p>}
      {dv && (
        <>
          <table className="kv"><tbody>
            <tr><th>reference</th><td className="mono">{`${dataset}:${dv.version}`}</td></tr>
            <tr><th>message</th><td data-testid="version-message">{dv.message || <span className="muted">—</span>}</td></tr>
            {Object.keys(dv.tags ?? {}).length > 0 && <tr><th>tags</th><td><Tags tags={dv.tags} /></td></tr>}
            <tr><th>pushed</th><td>by {dv.created_by || "—"}, {when(dv.created_at)}</td></tr>
            <tr><th>content</th><td>{formatCount(dv.n_files, "file")}, <span title={exactBytes(dv.size)}>{formatSize(dv.size)}</span>
              {dv.refs.length > 0 && <> ({formatCount(dv.files.length, "stored file")}, {formatCount(dv.refs.length, "reference")})</>}
              <span className="muted mono" title="content id"> {dv.content_id.slice(0, 12)}</span></td></tr>
          </tbody></table>
          <nav className="tabs">
            {TABS.map((t) => (
              <button key={t} className={t === tab ? "active" : ""} onClick={() => setTab(t === "files" ? null : t)}>
                {t}{t === "files" ? ` (${dv.files.length.toLocaleString("en-US")})` : t === "references" ? ` (${dv.refs.length.toLocaleString("en-US")})`
                  : t === "models" ? ` (${dv.used_by_models.length})` : ""}
              </button>
            ))}
          </nav>
          {tab === "files" && <Files version={dv} />}
          {tab === "references" && <References version={dv} />}
          {tab === "models" && <UsedBy project={project} version={dv} />}
          {tab === "lineage" && <LineageView uri={datasetVersionUri(project, dataset, version)} />}
        </>
      )}
    </section>
  );
}

function Files({ version: v }: { version: DatasetVersion }) {
  const [q, setQ] = useState("");
  const shown = useMemo(() => filterFiles(v.files, q), [v.files, q]);
  if (v.files.length === 0) return <p className="muted">No stored files{v.refs.length ? "; this version references its files in place (see references)" : ""}.</p>;
  return (
    <div>
      <div className="controls">
        <input type="search" placeholder="filter by path" aria-label="filter files" value={q} onChange={(e) => setQ(e.target.value)} />
        <span className="muted" data-testid="files-shown">{q ? `${shown.length.toLocaleString("en-US")} of ` : ""}{formatCount(v.files.length, "file")}</span>
      </div>
      <VirtualRows items={shown} columns="minmax(0,1fr) 100px 120px" testid="dataset-files" label={`files of v${v.version}`} rowKey={(f) => f[0]}
        header={<><div>path</div><div className="num">size</div><div>sha256</div></>}
        row={(f) => <><div className="path" title={f[0]}>{f[0]}</div><div className="num" title={exactBytes(f[2])}>{formatSize(f[2])}</div><div className="mono">{f[1].slice(0, 12)}</div></>} />
    </div>
  );
}

function References({ version: v }: { version: DatasetVersion }) {
  if (v.refs.length === 0) return <p className="muted">This version references no files in place (all its files are stored).</p>;
  return (
    <VirtualRows items={v.refs} columns="minmax(0,1fr) 100px 120px 170px" testid="dataset-refs" label={`references of v${v.version}`} rowKey={(r) => r[0]}
      header={<><div>location</div><div className="num">size</div><div>sha256</div><div>modified</div></>}
      row={(r) => <><div className="path mono" title={r[0]}>{r[0]}</div><div className="num" title={exactBytes(r[2])}>{formatSize(r[2])}</div>
        <div className="mono">{r[1].slice(0, 12)}</div><div>{when(r[3])}</div></>} />
  );
}

function UsedBy({ project, version: v }: { project: string; version: DatasetVersion }) {
  if (v.used_by_models.length === 0) return <p className="muted">No registered model version was trained on this version (it can be deleted by an owner).</p>;
  return (
    <ul data-testid="used-by-models">
      {v.used_by_models.map((m) => (
        <li key={`${m.model}:${m.version}`}><Link to={modelHref(project, m.model, m.version)}>{m.model} v{m.version}</Link></li>
      ))}
      <li className="muted">A version a registered model was trained on cannot be deleted.</li>
    </ul>
  );
}

function DiffPanel({ project, detail, versions }: { project: string; detail: DatasetDetail; versions: number[] }) {
  const [aQ] = useQueryParam("a");
  const [bQ] = useQueryParam("b");
  const setQuery = useSetQuery();
  const pair = diffPair(parseVersion(aQ), parseVersion(bQ), versions);
  if (!pair) return versions.length === 1 ? (
    <section><h2>Compare versions</h2><p className="muted">One version so far. Push the directory again after changing it to compare versions:</p>
      <Command text={pushDatasetCommand(project, detail.name)} /></section>
  ) : null;
  // Both sides go to the URL, so a link shows this pair even after more versions are pushed.
  const choose = (a: number | string, b: number | string) => setQuery({ a: String(a), b: String(b) });
  return (
    <section data-testid="dataset-diff" data-a={pair.a} data-b={pair.b}>
      <h2>Compare versions</h2>
      <div className="controls">
        <label>from <select aria-label="compare from" value={pair.a} onChange={(e) => choose(e.target.value, pair.b)}>
          {versions.map((v) => <option key={v} value={v}>v{v}</option>)}</select></label>
        <label>to <select aria-label="compare to" value={pair.b} onChange={(e) => choose(pair.a, e.target.value)}>
          {versions.map((v) => <option key={v} value={v}>v{v}</option>)}</select></label>
        <button type="button" onClick={() => choose(pair.b, pair.a)}>swap</button>
      </div>
      {pair.a === pair.b ? <p className="muted">Pick two different versions.</p>
        : <DiffView key={`${pair.a}:${pair.b}`} project={project} dataset={detail.name} a={pair.a} b={pair.b} />}
    </section>
  );
}

function DiffView({ project, dataset, a, b }: { project: string; dataset: string; a: number; b: number }) {
  const diff = usePoll(() => api.datasetDiff(project, dataset, a, b), [project, dataset, a, b], 0);
  const [showQ, setShow] = useQueryParam("show");
  const [q, setQ] = useState("");
  const g = useMemo(() => (diff.data ? groupDiff(diff.data) : null), [diff.data]);
  const show: DiffKind | "all" = (DIFF_KINDS as string[]).includes(showQ ?? "") ? (showQ as DiffKind) : "all";
  const rows = useMemo(() => (g ? filterDiffRows(g.rows, show, q) : []), [g, show, q]);
  if (diff.error) return <ErrorNote error={diff.error} />;
  if (!g) return <p className="muted">loading…</p>;
  const count = { all: g.rows.length, added: g.added.n, removed: g.removed.n, changed: g.changed.n };
  return (
    <div data-testid="diff-result">
      <p data-testid="diff-summary"><strong>v{a} → v{b}:</strong> {diffSummary(g)}; size {formatSizeDelta(g.delta)}</p>
      {g.dirs.length > 1 && (
        <table className="list" data-testid="diff-dirs">
          <thead><tr><th>directory</th><th className="num">added</th><th className="num">removed</th><th className="num">changed</th><th className="num">size</th></tr></thead>
          <tbody>{g.dirs.map((d) => (
            <tr key={d.dir}><td>{d.dir ? `${d.dir}/` : <span className="muted">(top level)</span>}</td>
              <td className="num">{d.added || ""}</td><td className="num">{d.removed || ""}</td><td className="num">{d.changed || ""}</td>
              <td className="num">{formatSizeDelta(d.delta)}</td></tr>
          ))}</tbody>
        </table>
      )}
      {g.rows.length > 0 && (
        <>
          <div className="controls">
            {(["all", ...DIFF_KINDS] as const).map((k) => (
              <button key={k} type="button" className={`tag${k === show ? " active" : ""}`} aria-pressed={k === show}
                onClick={() => setShow(k === "all" ? null : k)}>{k} ({count[k].toLocaleString("en-US")})</button>
            ))}
            <input type="search" placeholder="filter by path" aria-label="filter the difference" value={q} onChange={(e) => setQ(e.target.value)} />
          </div>
          <VirtualRows items={rows} columns="92px minmax(0,1fr) 100px 100px 100px" testid="diff-rows" label={`difference of v${a} and v${b}`}
            rowKey={(r) => `${r.kind}:${r.path}`}
            header={<><div>change</div><div>path</div><div className="num">v{a}</div><div className="num">v{b}</div><div className="num">size</div></>}
            row={(r) => <><div><span className={`diffkind diff-${r.kind}`}>{r.kind}</span></div><div className="path" title={r.path} data-path={r.path}>{r.path}</div>
              <div className="num" title={exactBytes(r.sizeA)}>{r.sizeA == null ? "" : formatSize(r.sizeA)}</div>
              <div className="num" title={exactBytes(r.sizeB)}>{r.sizeB == null ? "" : formatSize(r.sizeB)}</div>
              <div className="num">{formatSizeDelta(r.delta)}</div></>} />
        </>
      )}
    </div>
  );
}

// A run: its note, params, tags, config, snapshot (files, git commit, dirty diff), metric and system
// charts, logged images and tables, live log per task, artifacts with previews and downloads, status
// history and attempts.
import { useMemo, useState } from "react";
import { Link, useParams } from "react-router-dom";
import { api, artifactUrl, artifactViewUrl, type Run } from "../api";
import { ArtifactPreview } from "../components/ArtifactPreview";
import { MediaView } from "../components/Media";
import { RunNote } from "../components/RunNote";
import { formatBytes, previewKind } from "../lib/preview";
import { ConfirmButton, ErrorNote, StatusBadge } from "../components/Confirm";
import { CANNOT_CANCEL } from "../components/RunTable";
import { useProjectAccess } from "../lib/session";
import { LogView } from "../components/LogView";
import { LineageView } from "../components/Lineage";
import { formatSize, runUri } from "../lib/registry";
import { ChartControlsBar, controlsFromQuery, MetricCharts } from "../components/MetricCharts";
import { usePoll, useQueryParam } from "../lib/hooks";
import { formatDuration, formatNumber, TERMINAL } from "../lib/table";

const TABS = ["overview", "media", "logs", "code", "artifacts", "lineage", "history"] as const;

const fmt = (v: unknown) => (typeof v === "number" ? formatNumber(v) : typeof v === "string" ? v : JSON.stringify(v));
const when = (ts: number | null) => (ts == null ? "" : new Date(ts * 1000).toLocaleString());

function KeyValues({ data, testid }: { data: Record<string, unknown>; testid: string }) {
  const entries = Object.entries(data);
  if (!entries.length) return <p className="muted">none</p>;
  return (
    <table className="kv" data-testid={testid}><tbody>
      {entries.map(([k, v]) => <tr key={k}><th>{k}</th><td>{fmt(v)}</td></tr>)}
    </tbody></table>
  );
}

export function RunPage() {
  const id = Number(useParams().id);
  const [tab, setTab] = useQueryParam("tab");
  const [task, setTask] = useQueryParam("task");
  const [logq, setLogq] = useQueryParam("q");
  const [x, setX] = useQueryParam("x");
  const [smoothQ, setSmooth] = useQueryParam("smooth");
  const [logY, setLogY] = useQueryParam("log");
  const [live, setLive] = useState(true);
  const run = usePoll(async () => {
    const r = await api.run(id);
    if (TERMINAL.has(r.status)) setLive(false);
    return r;
  }, [id], 2000, live, false);
  const r = run.data;
  const exp = usePoll(() => (r?.experiment_id != null ? api.experiment(r.experiment_id) : Promise.resolve(null)), [r?.experiment_id], 0);
  const current = (TABS as readonly string[]).includes(tab ?? "") ? tab! : "overview";
  const controls = controlsFromQuery(x, smoothQ, logY);
  const metricKeys = useMemo(() => Object.keys(r?.metrics ?? {}).sort(), [r]);
  const userMetrics = metricKeys.filter((k) => !k.startsWith("sys/"));
  const sysMetrics = metricKeys.filter((k) => k.startsWith("sys/"));
  const tasks = useMemo(() => [...new Set((r?.tasks ?? []).map((t) => `${t.role}-${t.rank}`))], [r]);
  const access = useProjectAccess(r?.project);
  const chartRuns = useMemo(() => [{ id, label: `run ${id}` }], [id]);

  return (
    <div className="page">
      <div className="crumbs">
        <Link to="/">Projects</Link> / {r && <Link to={`/projects/${encodeURIComponent(r.project)}`}>{r.project}</Link>}
        {r?.experiment_id != null && <> / <Link to={`/experiments/${r.experiment_id}`}>experiment {r.experiment_id}</Link></>} / run {id}
      </div>
      <ErrorNote error={run.error} />
      {r && (
        <div className="header">
          <h1>{r.name} <StatusBadge status={r.status} /></h1>
          <div className="summary">
            <span>attempt {r.attempt}</span>
            {r.exit_code !== null && <span>exit code {r.exit_code}</span>}
            {r.started_at && <span>ran {formatDuration((r.ended_at ?? Date.now() / 1000) - r.started_at)}</span>}
            {r.backend && <span>backend {r.backend}</span>}
            {r.status_message && <span className="muted" data-testid="status-message">{r.status_message}</span>}
            {!TERMINAL.has(r.status) && (
              <ConfirmButton label="Cancel run" question={`Cancel run ${id}?`} confirmLabel="Yes, cancel run"
                disabled={!access.canWrite} title={access.canWrite ? undefined : CANNOT_CANCEL}
                onConfirm={async () => { await api.cancelRun(id); run.reload(); }} />
            )}
            <Link to={`/compare?runs=${id}`}>compare with…</Link>
          </div>
        </div>
      )}
      <nav className="tabs">
        {TABS.map((t) => <button key={t} className={t === current ? "active" : ""} onClick={() => setTab(t === "overview" ? null : t)}>{t}</button>)}
      </nav>
      {r && current === "overview" && (
        <>
          <RunNote runId={id} role={access.role} live={live} />
          <div className="cols">
            <section><h2>Params</h2><KeyValues data={r.params} testid="params" /></section>
            <section><h2>Tags</h2><KeyValues data={r.tags} testid="tags" /></section>
            <section><h2>Metrics</h2>
              <table className="kv"><thead><tr><th>metric</th><th>last</th><th>min</th><th>max</th><th>points</th></tr></thead><tbody>
                {metricKeys.map((k) => { const s = r.metrics[k]; return <tr key={k}><th>{k}</th><td>{fmt(s.last)}</td><td>{fmt(s.min)}</td><td>{fmt(s.max)}</td><td>{s.count}</td></tr>; })}
              </tbody></table>
            </section>
          </div>
          <ChartControlsBar value={controls} onChange={(c) => { setX(c.x === "step" ? null : c.x); setSmooth(c.smoothing ? String(c.smoothing) : null); setLogY(c.logY ? "1" : null); }} />
          {userMetrics.length > 0 && <section><h2>Metric charts</h2><MetricCharts runs={chartRuns} keys={userMetrics} controls={controls} live={live} /></section>}
          {sysMetrics.length > 0 && <section><h2>System metrics</h2><MetricCharts runs={chartRuns} keys={sysMetrics} controls={{ ...controls, smoothing: 0, logY: false }} live={live} height={180} /></section>}
          {exp.data && <section><h2>Config</h2><pre className="config" data-testid="config">{JSON.stringify(exp.data.config, null, 2)}</pre></section>}
        </>
      )}
      {r && current === "media" && <MediaView runId={id} live={live} />}
      {r && current === "logs" && <LogView runId={id} tasks={tasks} task={task} onTask={setTask} search={logq ?? ""} onSearch={setLogq} live={live} />}
      {r && current === "code" && <SnapshotView run={r} />}
      {r && current === "artifacts" && <Artifacts runId={id} live={live} />}
      {r && current === "lineage" && <RunLineage runId={id} />}
      {r && current === "history" && (
        <div className="cols">
          <section><h2>Status history</h2>
            <table className="list" data-testid="events"><thead><tr><th>time</th><th>status</th><th>attempt</th><th>message</th></tr></thead><tbody>
              {r.events.map((e, i) => <tr key={i}><td>{when(e.ts)}</td><td><StatusBadge status={e.status} /></td><td>{e.attempt}</td><td>{e.message}</td></tr>)}
            </tbody></table>
          </section>
          <section><h2>Tasks and attempts</h2>
            <table className="list"><thead><tr><th>task</th><th>attempt</th><th>status</th><th>host</th><th>pid</th><th>exit</th><th>started</th><th>ended</th></tr></thead><tbody>
              {r.tasks.map((t) => <tr key={t.id}><td>{t.role}-{t.rank}</td><td>{t.attempt}</td><td><StatusBadge status={t.status} /></td><td>{t.host}</td><td>{t.pid ?? ""}</td><td>{t.exit_code ?? ""}</td><td>{when(t.started_at)}</td><td>{when(t.ended_at)}</td></tr>)}
            </tbody></table>
          </section>
        </div>
      )}
    </div>
  );
}

function Artifacts({ runId, live }: { runId: number; live: boolean }) {
  const arts = usePoll(() => api.artifacts(runId), [runId], undefined, live);
  const [prefix, setPrefix] = useState("");
  const [previewPath, setPreview] = useQueryParam("preview");
  const shown = (arts.data ?? []).filter((a) => a.path.startsWith(prefix));
  const previewed = arts.data?.find((a) => a.path === previewPath);
  return (
    <section>
      <ErrorNote error={arts.error} />
      <input type="search" placeholder="path prefix" value={prefix} onChange={(e) => setPrefix(e.target.value)} aria-label="filter artifacts" />
      {previewed && <ArtifactPreview key={`${previewed.path}:${previewed.sha256}`} runId={runId} artifact={previewed} onClose={() => setPreview(null)} />}
      {arts.data && previewPath && !previewed && <p className="muted">This run has no artifact {previewPath}.</p>}
      <table className="list" data-testid="artifacts"><thead><tr><th>path</th><th>size</th><th>sha256</th><th /></tr></thead><tbody>
        {shown.map((a) => (
          <tr key={a.path} data-path={a.path} className={a.path === previewPath ? "selected" : undefined}>
            <td>{a.path}</td><td title={`${a.size.toLocaleString()} B`}>{formatBytes(a.size)}</td><td className="mono">{a.sha256.slice(0, 12)}</td>
            <td>
              {previewKind(a.path) !== "download" && (
                <><button type="button" className="linkish" aria-label={`preview ${a.path}`} aria-pressed={a.path === previewPath}
                  onClick={() => setPreview(a.path === previewPath ? null : a.path)}>preview</button> · </>
              )}
              <a href={artifactUrl(runId, a.path)} download={a.path.split("/").pop()}>download</a>
              {/* A notebook's HTML: served sandboxed (no script, no origin of its own), in a tab of its own. */}
              {/\.html?$/i.test(a.path) && <> · <a href={artifactViewUrl(runId, a.path)} target="_blank" rel="noopener noreferrer">view</a></>}
            </td></tr>
        ))}
      </tbody></table>
      {arts.data && shown.length === 0 && <p className="muted">No artifacts.</p>}
    </section>
  );
}

/** The datasets the run declared or read (by the name it gave each), and its lineage graph. */
function RunLineage({ runId }: { runId: number }) {
  const datasets = usePoll(() => api.runDatasets(runId), [runId], 0);
  return (
    <div className="cols">
      <section>
        <h2>Datasets read</h2>
        <ErrorNote error={datasets.error} />
        {datasets.data && datasets.data.length === 0 && (
          <p className="muted">None recorded. Declare them in runyard.yml (<code>datasets: {"{"}train: NAME:latest{"}"}</code>) or call <code>runyard.use_dataset("NAME:latest")</code>.</p>
        )}
        {datasets.data && datasets.data.length > 0 && (
          <table className="list" data-testid="run-datasets"><thead><tr><th>name</th><th>dataset version</th><th>files</th><th>size</th></tr></thead><tbody>
            {datasets.data.map((d) => (
              <tr key={d.name}><td>{d.name}</td>
                <td><Link to={`/projects/${encodeURIComponent(d.project)}/datasets/${encodeURIComponent(d.dataset)}?version=${d.version}`}>{d.project}/{d.dataset}:{d.version}</Link></td>
                <td className="num">{d.n_files.toLocaleString("en-US")}</td><td className="num">{formatSize(d.size)}</td></tr>
            ))}
          </tbody></table>
        )}
      </section>
      <section className="grow"><LineageView uri={runUri(runId)} /></section>
    </div>
  );
}

function SnapshotView({ run }: { run: Run }) {
  const snap = usePoll(() => (run.snapshot_id ? api.snapshot(run.snapshot_id) : Promise.resolve(null)), [run.snapshot_id], 0);
  const [file, setFile] = useQueryParam("file");
  const digest = snap.data?.files.find((f) => f[0] === file)?.[1];
  const content = usePoll(() => (digest ? api.blobText(digest) : Promise.resolve(null)), [digest], 0);
  if (!run.snapshot_id) return <p className="muted">This run has no code snapshot (it was started by hand).</p>;
  const s = snap.data;
  return (
    <div>
      <ErrorNote error={snap.error} />
      {s && (
        <>
          <p>snapshot <span className="mono">{s.id.slice(0, 12)}</span>, {s.n_files} files, {s.size.toLocaleString()} B
            {s.git_commit && <> · git <span className="mono" data-testid="git-commit">{s.git_commit.slice(0, 12)}</span> on {s.git_branch ?? "?"}</>}
            {s.git_dirty && <> · <strong>dirty</strong></>}</p>
          <div className="cols code">
            <ul className="filetree" data-testid="files">
              {s.files.map((f) => (
                <li key={f[0]} style={{ paddingLeft: (f[0].split("/").length - 1) * 12 }}>
                  <a href="#" className={f[0] === file ? "active" : ""} onClick={(e) => { e.preventDefault(); setFile(f[0]); }}>{f[0].split("/").pop()}</a>
                  <span className="muted"> {f[2]} B</span>
                </li>
              ))}
            </ul>
            <div className="fileview">
              {file ? <><h3>{file}</h3><pre data-testid="file-content">{content.data ?? "loading…"}</pre></> : <p className="muted">Pick a file.</p>}
              {s.git_dirty && s.git_diff && <><h3>Uncommitted changes (git diff)</h3><pre className="diff">{s.git_diff}</pre></>}
            </div>
          </div>
        </>
      )}
    </div>
  );
}

// A project's model registry: the list of models (latest version, aliases, last change), and a
// model's page: its versions (flavor, run, status, sizes, aliases), the selected version's files,
// signature and lineage, who moved which alias when, and the actions the caller's role allows
// (editors archive and unarchive versions, owners move and remove aliases).
import { useMemo, useState, type FormEvent } from "react";
import { Link, useParams } from "react-router-dom";
import { api, type ModelDetail, type ModelVersion } from "../api";
import { ConfirmButton, ErrorNote, StatusBadge } from "../components/Confirm";
import { LineageView } from "../components/Lineage";
import { Command, ProjectNav } from "../components/ProjectNav";
import { VirtualRows } from "../components/VirtualRows";
import { usePoll, useQueryParam } from "../lib/hooks";
import {
  aliasesByVersion, aliasProblem, canArchive, canMoveAlias, describeAliasMove, exactBytes, formatCount, formatSize,
  modelVersionUri, parseVersion, pickVersion, registerModelCommand, sortAliasHistory,
} from "../lib/registry";
import { useProjectAccess } from "../lib/session";
import { ago } from "./Projects";

const when = (ts: number | null | undefined) => (ts == null ? "" : new Date(ts * 1000).toLocaleString());
const enc = encodeURIComponent;
export const modelHref = (project: string, model: string, version?: number) =>
  `/projects/${enc(project)}/models/${enc(model)}${version != null ? `?version=${version}` : ""}`;

export function AliasBadges({ aliases }: { aliases: string[] }) {
  if (!aliases.length) return null;
  return <span className="badges">{aliases.map((a) => <span key={a} className="alias" data-alias={a}>@{a}</span>)}</span>;
}

export function ModelsPage() {
  const project = useParams().name!;
  const [q, setQ] = useQueryParam("q");
  const models = usePoll(() => api.models(project, q ?? undefined), [project, q], 0);
  const items = models.data ?? [];
  return (
    <div className="page">
      <div className="crumbs"><Link to="/">Projects</Link> / <Link to={`/projects/${enc(project)}`}>{project}</Link> / models</div>
      <h1>Models</h1>
      <ProjectNav project={project} />
      {(q || items.length > 0 || !models.data) && <div className="controls">
        <input type="search" placeholder="search by name" aria-label="search models" value={q ?? ""} onChange={(e) => setQ(e.target.value)} />
      </div>}
      <ErrorNote error={models.error} />
      {models.data && items.length > 0 && (
        <table className="list wide" data-testid="models">
          <thead><tr><th>name</th><th>latest version</th><th>aliases</th><th>versions</th><th>description</th><th>updated</th></tr></thead>
          <tbody>
            {items.map((m) => (
              <tr key={m.name} data-model={m.name}>
                <td><Link to={modelHref(project, m.name)}>{m.name}</Link></td>
                <td>{m.latest_version != null ? <Link to={modelHref(project, m.name, m.latest_version)}>v{m.latest_version}</Link> : "—"}</td>
                <td><span className="badges">{Object.entries(m.aliases).sort(([a], [b]) => (a < b ? -1 : 1)).map(([a, v]) => (
                  <Link key={a} to={modelHref(project, m.name, v)} className="alias" data-alias={a}>@{a}: v{v}</Link>
                ))}</span></td>
                <td className="num">{m.n_versions}</td>
                <td className="clip" title={m.description}>{m.description}</td>
                <td title={when(m.updated_at)}>{ago(m.updated_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {models.data && items.length === 0 && (q
        ? <p className="muted" data-testid="empty">No model's name contains “{q}”.</p>
        : (
          <div className="emptystate" data-testid="empty">
            <p>No models in {project} yet. Register a run's artifacts as a model's first version:</p>
            <Command text={registerModelCommand(project)} />
            <p>or log one from the training script: <code>runyard.log_model(model, name="NAME")</code>.</p>
          </div>
        ))}
    </div>
  );
}

export function ModelPage() {
  const { name: project, model: name } = useParams() as { name: string; model: string };
  const detail = usePoll(() => api.model(project, name), [project, name], 0);
  const [versionQ, setVersion] = useQueryParam("version");
  const access = useProjectAccess(project);
  const m = detail.data;
  const versions = useMemo(() => [...(m?.versions ?? [])].sort((a, b) => b.version - a.version), [m]);
  const selected = pickVersion(parseVersion(versionQ), versions.map((v) => v.version));
  const version = versions.find((v) => v.version === selected) ?? null;
  const byVersion = useMemo(() => aliasesByVersion(m?.aliases ?? {}), [m]);
  return (
    <div className="page" data-testid="model-page" data-role={access.role ?? ""}>
      <div className="crumbs">
        <Link to="/">Projects</Link> / <Link to={`/projects/${enc(project)}`}>{project}</Link> / <Link to={`/projects/${enc(project)}/models`}>models</Link> / {name}
      </div>
      <h1>{name}</h1>
      <ProjectNav project={project} />
      <ErrorNote error={detail.error} />
      {m && (
        <>
          <div className="controls muted" data-testid="model-meta">
            <span>{formatCount(m.n_versions, "version")}</span>
            <span>created by {m.created_by || "—"} {ago(m.created_at)}</span>
            <span>updated {ago(m.updated_at)}</span>
            <span className="badges">{Object.entries(m.aliases).sort(([a], [b]) => (a < b ? -1 : 1)).map(([a, v]) => (
              <span key={a} className="alias" data-alias={a}>@{a}: v{v}</span>))}</span>
          </div>
          {m.description && <p>{m.description}</p>}
          <h2>Versions</h2>
          {versions.length === 0 ? (
            <div className="emptystate" data-testid="empty"><p>This model has no versions yet. Register one:</p><Command text={registerModelCommand(project, name)} /></div>
          ) : (
            <table className="list wide" data-testid="model-versions">
              <thead><tr><th>version</th><th>flavor</th><th>run</th><th>status</th><th>files</th><th>size</th><th>aliases</th><th>by</th><th>created</th></tr></thead>
              <tbody>
                {versions.map((v) => (
                  <tr key={v.version} data-version={v.version} className={v.version === selected ? "selected" : undefined}>
                    <td><a href={modelHref(project, name, v.version)} aria-current={v.version === selected ? "true" : undefined}
                      onClick={(e) => { e.preventDefault(); setVersion(String(v.version)); }}>v{v.version}</a></td>
                    <td>{v.flavor}</td>
                    <td>{v.run_id != null ? <Link to={`/runs/${v.run_id}`}>run {v.run_id}</Link> : <span className="muted">uploaded</span>}</td>
                    <td><StatusBadge status={v.status} /></td>
                    <td className="num">{v.n_files.toLocaleString("en-US")}</td>
                    <td className="num" title={exactBytes(v.size)}>{formatSize(v.size)}</td>
                    <td><AliasBadges aliases={byVersion.get(v.version) ?? v.aliases ?? []} /></td>
                    <td>{v.created_by}</td>
                    <td title={when(v.created_at)}>{ago(v.created_at)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          {version && <VersionPanel key={version.version} project={project} version={version} aliases={byVersion.get(version.version) ?? []}
            canArchive={canArchive(access.role)} onChange={detail.reload} />}
          <Aliases model={m} project={project} selected={selected} canMove={canMoveAlias(access.role)} onChange={detail.reload} />
        </>
      )}
    </div>
  );
}

/** Why a version with aliases cannot be archived (the server refuses it: an alias never names an archived version). */
const aliasedNote = (aliases: string[]) =>
  `Move or remove ${aliases.map((a) => `@${a}`).join(", ")} first: an alias cannot name an archived version.`;

/** A signature as two short lines: "inputs: …" and "outputs: …" (each spec as compact JSON). */
function signatureText(sig: NonNullable<ModelVersion["signature"]>): string {
  const side = (xs: unknown[] | undefined) => (xs ?? []).map((x) => JSON.stringify(x)).join(", ") || "—";
  return `inputs: ${side(sig.inputs)}\noutputs: ${side(sig.outputs)}`;
}

function VersionPanel({ project, version: v, aliases, canArchive, onChange }: {
  project: string; version: ModelVersion; aliases: string[]; canArchive: boolean; onChange: () => void;
}) {
  const archived = v.status === "archived";
  return (
    <section className="panel" data-testid="model-version" data-version={v.version}>
      <div className="controls">
        <h2>{v.model} v{v.version} <StatusBadge status={v.status} /> <AliasBadges aliases={aliases} /></h2>
        {canArchive && (archived
          ? <ConfirmButton label="Unarchive" question={`Unarchive v${v.version}?`} confirmLabel="Yes, unarchive"
              onConfirm={async () => { await api.archiveModelVersion(project, v.model, v.version, true); onChange(); }} />
          : <ConfirmButton label="Archive" question={`Archive v${v.version}? It stays, but no longer counts as latest.`} confirmLabel="Yes, archive"
              disabled={aliases.length > 0} title={aliases.length > 0 ? aliasedNote(aliases) : undefined}
              onConfirm={async () => { await api.archiveModelVersion(project, v.model, v.version); onChange(); }} />)}
        {canArchive && !archived && aliases.length > 0 && <span className="muted" data-testid="archive-blocked">{aliasedNote(aliases)}</span>}
      </div>
      <div className="cols">
        <section className="grow">
          <table className="kv"><tbody>
            <tr><th>URI</th><td className="mono">{`models:/${v.model}/${v.version}`}</td></tr>
            <tr><th>source</th><td className="mono">{v.source || "—"}</td></tr>
            <tr><th>flavor</th><td>{v.flavor}</td></tr>
            <tr><th>files</th><td>{formatCount(v.n_files, "file")}, <span title={exactBytes(v.size)}>{formatSize(v.size)}</span></td></tr>
            <tr><th>registered</th><td>by {v.created_by || "—"}, {when(v.created_at)}</td></tr>
            {archived && <tr><th>archived</th><td>{when(v.archived_at)}</td></tr>}
            {v.description && <tr><th>description</th><td>{v.description}</td></tr>}
            {Object.keys(v.tags ?? {}).length > 0 && <tr><th>tags</th><td>{Object.entries(v.tags).map(([k, t]) => <span key={k} className="tag-chip">{t ? `${k}: ${t}` : k}</span>)}</td></tr>}
            {v.requirements.length > 0 && <tr><th>requirements</th><td className="mono">{v.requirements.join("  ")}</td></tr>}
            {v.signature && <tr><th>signature</th><td><pre className="signature">{signatureText(v.signature)}</pre></td></tr>}
          </tbody></table>
          <h3>Files</h3>
          <VirtualRows items={v.files} columns="minmax(0,1fr) 90px 110px" height={260} testid="model-files" label={`files of v${v.version}`}
            rowKey={(f) => f[0]}
            header={<><div>path</div><div className="num">size</div><div>sha256</div></>}
            row={(f) => <><div className="path" title={f[0]}>{f[0]}</div><div className="num" title={exactBytes(f[2])}>{formatSize(f[2])}</div><div className="mono">{f[1].slice(0, 12)}</div></>} />
        </section>
        <section className="grow"><LineageView uri={modelVersionUri(project, v.model, v.version)} rev={`${v.status}:${aliases.join(",")}`} /></section>
      </div>
    </section>
  );
}

function Aliases({ model, project, selected, canMove, onChange }: {
  model: ModelDetail; project: string; selected: number | null; canMove: boolean; onChange: () => void;
}) {
  const history = useMemo(() => sortAliasHistory(model.alias_history ?? []), [model]);
  const [alias, setAlias] = useState("");
  const [target, setTarget] = useState<string>("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const toVersion = Number(target || selected || 0);
  const problem = alias ? aliasProblem(alias) : null;
  const move = async (ev: FormEvent) => {
    ev.preventDefault();
    const a = alias.trim();
    if (aliasProblem(a) || !toVersion) return;
    setBusy(true);
    setError(null);
    setDone(null);
    try {
      const r = await api.setModelAlias(project, model.name, a, toVersion);
      setDone(r.from_version != null && r.from_version !== r.version ? `@${a} moved from v${r.from_version} to v${r.version}.` : `@${a} points at v${r.version}.`);
      setAlias("");
      onChange();
    } catch (e) {
      setError(e as Error);
    } finally {
      setBusy(false);
    }
  };
  const current = Object.entries(model.aliases).sort(([a], [b]) => (a < b ? -1 : 1));
  return (
    <section data-testid="aliases">
      <h2>Aliases</h2>
      {current.length === 0 && <p className="muted">No aliases yet{canMove ? "" : "; owners of the project set them"}.</p>}
      {current.length > 0 && (
        <table className="list" data-testid="alias-list"><thead><tr><th>alias</th><th>version</th>{canMove && <th />}</tr></thead><tbody>
          {current.map(([a, v]) => (
            <tr key={a} data-alias={a}><td><span className="alias">@{a}</span></td><td>v{v}</td>
              {canMove && <td><ConfirmButton label="remove" question={`Remove @${a}?`} confirmLabel="Yes, remove"
                onConfirm={async () => { await api.deleteModelAlias(project, model.name, a); onChange(); }} /></td>}
            </tr>
          ))}
        </tbody></table>
      )}
      {canMove && model.versions.length > 0 && (
        <form className="controls" onSubmit={move} aria-label="move an alias" data-testid="move-alias">
          <label>alias <input list="alias-names" aria-label="alias" placeholder="production" value={alias} disabled={busy}
            onChange={(e) => setAlias(e.target.value)} /></label>
          <datalist id="alias-names">{current.map(([a]) => <option key={a} value={a} />)}</datalist>
          <label>to version <select aria-label="to version" value={String(toVersion)} disabled={busy} onChange={(e) => setTarget(e.target.value)}>
            {[...model.versions].sort((a, b) => b.version - a.version).map((v) => (
              <option key={v.version} value={v.version}>v{v.version}{v.status === "archived" ? " (archived)" : ""}</option>))}
          </select></label>
          <button type="submit" disabled={busy || !alias.trim() || !!problem}>Move alias</button>
          {problem && <span className="muted">{problem}</span>}
        </form>
      )}
      {done && <div className="muted" role="status">{done}</div>}
      <ErrorNote error={error} />
      <h3>History</h3>
      {history.length === 0 ? <p className="muted">No alias has been set yet.</p> : (
        <table className="list" data-testid="alias-history">
          <thead><tr><th>when</th><th>alias</th><th>change</th><th>by</th></tr></thead>
          <tbody>
            {history.map((e, i) => (
              <tr key={i} data-alias={e.alias}>
                <td title={when(e.at)}>{when(e.at)}</td>
                <td><span className="alias">@{e.alias}</span></td>
                <td>{describeAliasMove(e)}</td>
                <td>{e.actor || "—"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

// An experiment: live runs table (server-side sort, filter and columns), budget and status counts,
// parallel coordinates whose brushes filter the table, metric charts of the selected runs, cancel buttons.
import { useCallback, useMemo, useState } from "react";
import { Link, useNavigate, useParams, useSearchParams } from "react-router-dom";
import { api, type Experiment } from "../api";
import { ConfirmButton, ErrorNote, StatusBadge } from "../components/Confirm";
import { ChartControlsBar, controlsFromQuery, MetricCharts, type ChartControls } from "../components/MetricCharts";
import { ParCoords } from "../components/ParCoords";
import { CANNOT_CANCEL, RunTable } from "../components/RunTable";
import { TensorBoardButton } from "../components/TensorBoardButton";
import { useProjectAccess } from "../lib/session";
import { useClickedList, usePoll } from "../lib/hooks";
import { brushFilters, makeAxis, parseBrushes, serializeBrushes, setBrush, type Brush } from "../lib/parcoords";
import { ATTR_IDS, bestAgg, defaultColumnIds, nextSort, parseColumns, STATUSES, TERMINAL, type Column } from "../lib/table";

function searchOf(exp: Experiment | undefined): { metric: string | null; mode: string | null; maxRuns: number | null } {
  const s = exp?.config?.search ?? {};
  return { metric: s.metric ?? null, mode: s.mode ?? null, maxRuns: typeof s.max_runs === "number" ? s.max_runs : null };
}

export function ExperimentPage() {
  const id = Number(useParams().id);
  const navigate = useNavigate();
  const [sp, setSp] = useSearchParams();
  const update = useCallback((changes: Record<string, string | null>) => {
    setSp((prev) => {
      const next = new URLSearchParams(prev);
      for (const [k, v] of Object.entries(changes)) { if (v === null || v === "") next.delete(k); else next.set(k, v); }
      return next;
    }, { replace: true });
  }, [setSp]);

  const exp = usePoll(() => api.experiment(id), [id]);
  const live = exp.data ? exp.data.status === "running" || Object.keys(exp.data.counts).some((s) => !TERMINAL.has(s)) : true;
  const keys = usePoll(() => api.experimentKeys(id), [id], undefined, live);
  const { metric: searchMetric, mode, maxRuns } = searchOf(exp.data);
  const paramKeys = keys.data?.params ?? [];
  const metricKeys = keys.data?.metrics ?? [];

  // Table state, all in the URL.
  const orderBy = sp.get("sort");
  const colIds = sp.get("cols")?.split(",") ?? defaultColumnIds(paramKeys, metricKeys, searchMetric, mode);
  const columns = useMemo(() => parseColumns(colIds), [colIds.join(",")]); // eslint-disable-line react-hooks/exhaustive-deps
  const filterText = sp.get("filter") ?? "";
  const statuses = sp.get("status")?.split(",").filter(Boolean) ?? [];
  const [shownStatuses, setClickedStatuses] = useClickedList(statuses);
  const brushes = useMemo(() => parseBrushes(sp.get("brush")), [sp]);
  const selectedInUrl = useMemo(() => (sp.get("sel") ?? "").split(",").filter(Boolean).map(Number), [sp]);
  const [selected, setClickedSelection] = useClickedList(selectedInUrl);
  const controls = controlsFromQuery(sp.get("x"), sp.get("smooth"), sp.get("log"));
  const chartMetric = sp.get("metric") ?? searchMetric ?? metricKeys.find((m) => !m.startsWith("sys/")) ?? null;
  const [draftFilter, setDraftFilter] = useState<string | null>(null);

  const filters = useMemo(() => [
    ...filterText.split(";").map((f) => f.trim()).filter(Boolean),
    ...brushFilters(brushes),
  ], [filterText, brushes]);
  const query = useMemo(() => ({ experiment_id: id, status: statuses, filter: filters }), [id, statuses.join(","), filters]); // eslint-disable-line react-hooks/exhaustive-deps
  const onSort = useCallback((c: Column) => update({ sort: nextSort(orderBy, c) }), [orderBy, update]);
  const toggle = useCallback((r: { id: number }) => {
    const next = selected.includes(r.id) ? selected.filter((x) => x !== r.id) : [...selected, r.id].slice(-20);
    setClickedSelection(next);
    update({ sel: next.join(",") });
  }, [selected, update, setClickedSelection]);

  // Parallel coordinates: every run's params and the search metric (one request, fields limited).
  const pcField = chartMetric ? `metrics.${chartMetric}.${bestAgg(chartMetric, searchMetric, mode)}` : null;
  const pc = usePoll(async () => {
    if (!paramKeys.length) return null;
    const fields = [...paramKeys.map((p) => `params.${p}`), ...(pcField ? [pcField] : [])];
    const { ids, columns } = await api.experimentColumns(id, fields);
    return ids.map((rid, i) => {
      const values: Record<string, unknown> = {};
      for (const f of fields) values[f] = columns[f][i];
      return { id: rid, values };
    });
  }, [id, paramKeys.join(","), pcField], undefined, live);
  const axes = useMemo(() => {
    const runs = pc.data ?? [];
    const fields = [...paramKeys.map((p) => [`params.${p}`, p]), ...(pcField ? [[pcField, pcField.slice(8)]] : [])];
    return fields.map(([f, label]) => makeAxis(f, label, runs.map((r) => r.values[f])));
  }, [pc.data, paramKeys.join(","), pcField]); // eslint-disable-line react-hooks/exhaustive-deps
  const onBrush = useCallback((field: string, b: Brush | null) => update({ brush: serializeBrushes(setBrush(brushes, field, b)) || null }), [brushes, update]);

  // Charts: the selected runs, or the table's top 5.
  // Runs without the metric yet (queued) have no curve to draw.
  const top = usePoll(() => api.runs({ ...query, order_by: orderBy, limit: 5, fields: chartMetric ? [`metrics.${chartMetric}`] : ["metrics.-"] }),
    [JSON.stringify(query), orderBy, chartMetric], undefined, live && selected.length === 0);
  const chartRuns = useMemo(() => {
    const ids = selected.length ? selected : (top.data?.items ?? []).filter((r) => chartMetric && r.metrics[chartMetric]).map((r) => r.id);
    return ids.map((rid) => ({ id: rid, label: `run ${rid}` }));
  }, [selected, top.data, chartMetric]);
  const [total, setTotal] = useState<number | null>(null);

  const e = exp.data;
  const access = useProjectAccess(e?.project);
  const finished = e ? Object.entries(e.counts).filter(([s]) => TERMINAL.has(s)).reduce((n, [, c]) => n + c, 0) : 0;
  const created = e ? Object.values(e.counts).reduce((n, c) => n + c, 0) : 0;
  const allCols = [...ATTR_IDS, ...paramKeys.map((p) => `params.${p}`), ...metricKeys.flatMap((m) => ["last", "min", "max"].map((a) => `metrics.${m}.${a}`))];

  return (
    <div className="page">
      <div className="crumbs"><Link to="/">Projects</Link> / {e && <Link to={`/projects/${encodeURIComponent(e.project)}`}>{e.project}</Link>} / experiment {id}</div>
      <ErrorNote error={exp.error} />
      {e && (e.warnings ?? []).length > 0 && (
        <div className="banner warning" role="alert" data-testid="experiment-warnings">
          {(e.warnings ?? []).map((w) => <div key={w} data-testid="experiment-warning"><strong>Warning:</strong> {w}</div>)}
        </div>
      )}
      {e && (
        <div className="header">
          <h1>{e.name} <StatusBadge status={e.status} /></h1>
          <div className="summary">
            <div className="budget" data-testid="budget">
              {maxRuns ? <><progress max={maxRuns} value={finished} /> {finished} of {maxRuns} runs finished ({created} created)</> : <>{finished} of {created} runs finished</>}
            </div>
            <div className="counts" data-testid="counts">
              {STATUSES.filter((s) => e.counts[s]).map((s) => <span key={s} className="count"><StatusBadge status={s} /> {e.counts[s]}</span>)}
            </div>
            {e.message && <div className="muted">{e.message}</div>}
            {e.status === "running" && (
              <ConfirmButton label="Cancel experiment" question={`Cancel experiment ${id} and all its active runs?`} confirmLabel="Yes, cancel all"
                disabled={!access.canWrite} title={access.canWrite ? undefined : CANNOT_CANCEL}
                onConfirm={async () => { await api.cancelExperiment(id); exp.reload(); }} />
            )}
            <TensorBoardButton experimentId={id} live={live} />
            {searchMetric && <div className="muted">search: {e.config?.search?.algorithm} on {searchMetric} ({mode ?? "min"})</div>}
          </div>
        </div>
      )}

      {axes.length > 1 && (
        <section>
          <h2>Params against {pcField ?? "the metric"} {brushes.length > 0 && <button onClick={() => update({ brush: null })}>clear brushes</button>}</h2>
          <ParCoords axes={axes} runs={pc.data ?? []} brushes={brushes} onBrush={onBrush} colourField={pcField ?? undefined} />
        </section>
      )}

      <section>
        <h2>Runs {total !== null && <span className="muted" data-testid="run-total">{total}</span>}</h2>
        <div className="controls">
          <input className="filter" placeholder="filter, e.g. metrics.loss.min < 0.5; params.lr >= 0.01" aria-label="filter runs"
            value={draftFilter ?? filterText} onChange={(ev) => setDraftFilter(ev.target.value)}
            onKeyDown={(ev) => { if (ev.key === "Enter") { update({ filter: draftFilter ?? filterText }); setDraftFilter(null); } }} />
          {STATUSES.map((s) => (
            <label key={s} className="statusfilter"><input type="checkbox" checked={shownStatuses.includes(s)}
              onChange={() => {
                const next = shownStatuses.includes(s) ? shownStatuses.filter((x) => x !== s) : [...shownStatuses, s];
                setClickedStatuses(next);
                update({ status: next.join(",") });
              }} />{s}</label>
          ))}
          <details className="colchooser">
            <summary>columns</summary>
            <div className="colmenu">
              <button onClick={() => update({ cols: null })}>default</button>
              {allCols.map((c) => (
                <label key={c}><input type="checkbox" checked={colIds.includes(c)}
                  onChange={() => update({ cols: (colIds.includes(c) ? colIds.filter((x) => x !== c) : [...colIds, c]).join(",") })} />{c}</label>
              ))}
            </div>
          </details>
          {selected.length > 0 && <>
            <span className="muted">{selected.length} selected</span>
            <button disabled={selected.length < 2 || selected.length > 10} onClick={() => navigate(`/compare?runs=${selected.join(",")}`)}>compare</button>
            <button onClick={() => update({ sel: null })}>clear selection</button>
          </>}
        </div>
        <RunTable query={query} columns={columns} orderBy={orderBy} onSort={onSort} selected={selected} onToggle={toggle} live={live} onTotal={setTotal} canCancel={access.canWrite} />
      </section>

      <section>
        <h2>Metrics {selected.length ? "of the selected runs" : "of the table's top 5"}</h2>
        <div className="controls">
          <label>metric: <select value={chartMetric ?? ""} onChange={(ev) => update({ metric: ev.target.value })}>
            {metricKeys.map((m) => <option key={m} value={m}>{m}</option>)}
          </select></label>
          <ChartControlsBar value={controls} onChange={(c: ChartControls) => update({ x: c.x === "step" ? null : c.x, smooth: c.smoothing ? String(c.smoothing) : null, log: c.logY ? "1" : null })} />
        </div>
        {chartMetric && chartRuns.length > 0 && <MetricCharts runs={chartRuns} keys={[chartMetric]} controls={controls} live={live} height={280} />}
      </section>
    </div>
  );
}

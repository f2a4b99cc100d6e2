// Compare 2–10 runs from anywhere: params and config side by side (differences highlighted), overlaid curves.
import { useMemo, useState } from "react";
import { Link } from "react-router-dom";
import { api, type Experiment, type Run } from "../api";
import { ErrorNote, StatusBadge } from "../components/Confirm";
import { ChartControlsBar, controlsFromQuery, MetricCharts } from "../components/MetricCharts";
import { commonMetrics, diffRows, flatten, formatValue, MAX_RUNS, MIN_RUNS, parseRunIds, type DiffRow } from "../lib/compare";
import { usePoll, useQueryParam } from "../lib/hooks";

function DiffTable({ rows, runs, testid, onlyDiff }: { rows: DiffRow[]; runs: Run[]; testid: string; onlyDiff: boolean }) {
  const shown = onlyDiff ? rows.filter((r) => r.differs) : rows;
  return (
    <table className="list diff" data-testid={testid}>
      <thead><tr><th>key</th>{runs.map((r) => <th key={r.id}>run {r.id}</th>)}</tr></thead>
      <tbody>
        {shown.map((row) => (
          <tr key={row.key} className={row.differs ? "differs" : ""} data-key={row.key} data-differs={row.differs ? "1" : "0"}>
            <th>{row.key}</th>{row.values.map((v, i) => <td key={i}>{formatValue(v)}</td>)}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function ComparePage() {
  const [runsQ, setRunsQ] = useQueryParam("runs");
  const [metricQ, setMetric] = useQueryParam("metric");
  const [x, setX] = useQueryParam("x");
  const [smoothQ, setSmooth] = useQueryParam("smooth");
  const [logY, setLogY] = useQueryParam("log");
  const [onlyDiff, setOnlyDiff] = useState(false);
  const [add, setAdd] = useState("");
  let ids: number[] = [];
  let parseError: Error | null = null;
  try { ids = parseRunIds(runsQ); } catch (e) { parseError = e as Error; }
  const data = usePoll(async () => {
    const runs = await Promise.all(ids.map((id) => api.run(id)));
    const expIds = [...new Set(runs.map((r) => r.experiment_id).filter((e): e is number => e !== null))];
    const exps: Record<number, Experiment> = {};
    await Promise.all(expIds.map(async (e) => { exps[e] = await api.experiment(e); }));
    return { runs, exps };
  }, [ids.join(",")], 0);
  const runs = data.data?.runs ?? [];
  const paramRows = useMemo(() => diffRows(runs.map((r) => flatten(r.params))), [runs]);
  const configRows = useMemo(() => diffRows(runs.map((r) => flatten(r.experiment_id !== null ? data.data!.exps[r.experiment_id]?.config ?? {} : {}))), [runs, data.data]);
  const metrics = useMemo(() => commonMetrics(runs.map((r) => Object.keys(r.metrics))), [runs]);
  const metric = metricQ ?? metrics[0] ?? null;
  const controls = controlsFromQuery(x, smoothQ, logY);
  const chartRuns = useMemo(() => runs.map((r) => ({ id: r.id, label: `run ${r.id} ${r.name}` })), [runs]);

  return (
    <div className="page">
      <div className="crumbs"><Link to="/">Projects</Link> / compare</div>
      <h1>Compare runs</h1>
      <div className="controls">
        <input placeholder="run ids, e.g. 12, 15" value={add} onChange={(e) => setAdd(e.target.value)} aria-label="runs to add"
          onKeyDown={(e) => { if (e.key === "Enter") { setRunsQ([...ids, ...add.split(/[\s,]+/).filter(Boolean)].join(",")); setAdd(""); } }} />
        <span className="muted">compare {MIN_RUNS}–{MAX_RUNS} runs from any project</span>
        <label><input type="checkbox" checked={onlyDiff} onChange={(e) => setOnlyDiff(e.target.checked)} /> differences only</label>
      </div>
      <ErrorNote error={parseError ?? data.error} />
      {!parseError && ids.length < MIN_RUNS && <p className="muted">Add at least {MIN_RUNS} runs (select them on an experiment page, or type their ids).</p>}
      {runs.length > 0 && (
        <>
          <table className="list"><tbody><tr><th />{runs.map((r) => (
            <td key={r.id}><Link to={`/runs/${r.id}`}>run {r.id}</Link> {r.name} <StatusBadge status={r.status} /> <span className="muted">{r.project}</span>{" "}
              <button title="remove" onClick={() => setRunsQ(ids.filter((i) => i !== r.id).join(","))}>×</button></td>
          ))}</tr></tbody></table>
          <h2>Params</h2>
          <DiffTable rows={paramRows} runs={runs} testid="param-diff" onlyDiff={onlyDiff} />
          <h2>Config</h2>
          {configRows.length ? <DiffTable rows={configRows} runs={runs} testid="config-diff" onlyDiff={onlyDiff} />
            : <p className="muted">None of these runs belongs to an experiment (they were started by hand), so there is no config.</p>}
          <h2>Curves</h2>
          <div className="controls">
            <label>metric: <select value={metric ?? ""} onChange={(e) => setMetric(e.target.value)}>
              {metrics.map((m) => <option key={m} value={m}>{m}</option>)}
            </select></label>
            <ChartControlsBar value={controls} onChange={(c) => { setX(c.x === "step" ? null : c.x); setSmooth(c.smoothing ? String(c.smoothing) : null); setLogY(c.logY ? "1" : null); }} />
          </div>
          {metric ? <MetricCharts runs={chartRuns} keys={[metric]} controls={controls} live={false} height={300} /> : <p className="muted">These runs share no metric.</p>}
        </>
      )}
    </div>
  );
}

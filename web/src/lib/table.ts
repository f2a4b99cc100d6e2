// The runs table's model: columns, their cells, the server-side sort and fields, paged loading.
import type { Run } from "../api";

export type Agg = "last" | "min" | "max";

export interface Column {
  /** Stable id, also the URL form: "status", "params.lr", "metrics.loss.last". */
  id: string;
  label: string;
  kind: "attr" | "param" | "metric";
  key: string;
  agg?: Agg;
  /** The API's order_by field, or null when the server cannot sort by it. */
  sortField: string | null;
  width: number;
}

const ATTRS: Record<string, { label: string; sortable: boolean; width: number }> = {
  number: { label: "#", sortable: true, width: 56 },
  name: { label: "name", sortable: true, width: 150 },
  status: { label: "status", sortable: true, width: 96 },
  created_at: { label: "created", sortable: true, width: 150 },
  duration: { label: "duration", sortable: false, width: 90 },
};

export const ATTR_IDS = Object.keys(ATTRS);

/** Wide enough for the header (about 7.5 px a character, plus the sort arrow), within bounds. */
function widthFor(label: string, min: number): number {
  return Math.max(min, Math.min(260, Math.round(label.length * 7.5 + 28)));
}

/** A name the server's filter language reads unquoted: no spaces, quotes or operator characters. */
const BARE_NAME = /^[^\s<>=!~"]+$/;

/** A field for the API's filter and sort language: a name with spaces goes in double quotes
 * ("metrics.val loss.min" → 'metrics."val loss".min'); fields with plain names are returned as they are. */
export function apiField(prefix: "params" | "metrics" | "tags", key: string, agg?: string): string {
  const name = BARE_NAME.test(key) ? key : `"${key}"`;
  return agg ? `${prefix}.${name}.${agg}` : `${prefix}.${name}`;
}

/** Parse a column id ("params.lr", "metrics.val/acc.max", "status"); null when it names nothing. */
export function parseColumn(id: string): Column | null {
  if (id in ATTRS) {
    const a = ATTRS[id];
    return { id, label: a.label, kind: "attr", key: id, sortField: a.sortable ? id : null, width: a.width };
  }
  if (id.startsWith("params.") && id.length > 7) {
    const key = id.slice(7);
    return { id, label: key, kind: "param", key, sortField: apiField("params", key), width: widthFor(key, 90) };
  }
  if (id.startsWith("metrics.")) {
    const rest = id.slice(8);
    const dot = rest.lastIndexOf(".");
    const agg = rest.slice(dot + 1);
    if (dot > 0 && (agg === "last" || agg === "min" || agg === "max")) {
      const key = rest.slice(0, dot);
      const label = `${key} (${agg})`;
      return { id, label, kind: "metric", key, agg, sortField: apiField("metrics", key, agg), width: widthFor(label, 110) };
    }
  }
  return null;
}

/** The better end of a metric: the search's mode for its metric, else min for loss/error-like names, else max. */
export function bestAgg(metric: string, searchMetric: string | null, mode: string | null): "min" | "max" {
  if (searchMetric && metric === searchMetric) return mode === "max" ? "max" : "min";
  return /loss|err|mse|mae|rmse|perplexity|time/i.test(metric) ? "min" : "max";
}

/** Default columns: #, name, status, every param, then last and best of each metric (system metrics left out). */
export function defaultColumnIds(params: string[], metrics: string[], searchMetric: string | null, mode: string | null): string[] {
  const ids = ["number", "name", "status", "duration"];
  ids.push(...params.map((p) => `params.${p}`));
  const shown = metrics.filter((m) => !m.startsWith("sys/"));
  if (searchMetric && shown.includes(searchMetric)) {
    shown.splice(shown.indexOf(searchMetric), 1);
    shown.unshift(searchMetric);
  }
  for (const m of shown) ids.push(`metrics.${m}.last`, `metrics.${m}.${bestAgg(m, searchMetric, mode)}`);
  return ids;
}

export function parseColumns(ids: string[]): Column[] {
  const out: Column[] = [];
  const seen = new Set<string>();
  for (const id of ids) {
    const c = parseColumn(id);
    if (c && !seen.has(c.id)) {
      out.push(c);
      seen.add(c.id);
    }
  }
  return out;
}

/** The API's `fields`: only the params and metrics the columns show (plus extra metric names, e.g. for charts). */
export function fieldsFor(columns: Column[], extraMetrics: string[] = []): string[] {
  const f = new Set<string>();
  for (const c of columns) {
    if (c.kind === "param") f.add(`params.${c.key}`);
    if (c.kind === "metric") f.add(`metrics.${c.key}`);
  }
  for (const m of extraMetrics) f.add(`metrics.${m}`);
  return [...f];
}

export function cellValue(run: Run, col: Column, now = Date.now() / 1000): unknown {
  if (col.kind === "param") return run.params[col.key];
  if (col.kind === "metric") {
    const s = run.metrics[col.key];
    return s ? s[col.agg ?? "last"] : undefined;
  }
  if (col.key === "duration") {
    if (run.started_at == null) return undefined;
    return (run.ended_at ?? now) - run.started_at;
  }
  return (run as unknown as Record<string, unknown>)[col.key];
}

export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v) && Math.abs(v) < 1e15) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(3);
  return String(Number(v.toPrecision(5)));
}

export function formatDuration(s: number): string {
  if (s < 60) return `${s.toFixed(1)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.floor(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

export function formatCell(v: unknown, col: Column): string {
  if (v === undefined || v === null) return "";
  if (col.key === "created_at" && typeof v === "number") return new Date(v * 1000).toLocaleString();
  if (col.key === "duration" && typeof v === "number") return formatDuration(v);
  if (typeof v === "number") return formatNumber(v);
  if (typeof v === "string") return v;
  return JSON.stringify(v);
}

/** "metrics.loss.last desc" → {field, desc}. */
export function parseSort(orderBy: string | null): { field: string; desc: boolean } | null {
  if (!orderBy) return null;
  const [field, dir] = orderBy.trim().split(/\s+/);
  return field ? { field, desc: dir === "desc" } : null;
}

/** A header click: unsorted → ascending → descending → unsorted (newest first). */
export function nextSort(orderBy: string | null, col: Column): string | null {
  if (!col.sortField) return orderBy;
  const cur = parseSort(orderBy);
  if (!cur || cur.field !== col.sortField) return col.sortField;
  if (!cur.desc) return `${col.sortField} desc`;
  return null;
}

/** Which pages of `pageSize` rows cover the visible rows [first, last]. */
export function pagesFor(first: number, last: number, pageSize: number, total: number): number[] {
  if (total <= 0 || last < first) return [];
  const lo = Math.max(0, Math.floor(first / pageSize));
  const hi = Math.min(Math.floor((total - 1) / pageSize), Math.floor(last / pageSize));
  const out: number[] = [];
  for (let p = lo; p <= hi; p++) out.push(p);
  return out;
}

export const TERMINAL = new Set(["succeeded", "failed", "canceled", "pruned"]);
export const STATUSES = ["queued", "starting", "running", "succeeded", "failed", "canceled", "pruned"];

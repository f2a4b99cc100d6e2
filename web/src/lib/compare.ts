// The compare view's logic: which params and config values differ between runs.

/** Nested objects → dotted keys ({a: {b: 1}} → {"a.b": 1}); arrays stay values. */
export function flatten(obj: unknown, prefix = "", out: Record<string, unknown> = {}): Record<string, unknown> {
  if (obj !== null && typeof obj === "object" && !Array.isArray(obj)) {
    const entries = Object.entries(obj as Record<string, unknown>);
    if (entries.length === 0 && prefix) out[prefix] = {};
    for (const [k, v] of entries) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else if (prefix) {
    out[prefix] = obj;
  }
  return out;
}

export interface DiffRow { key: string; values: unknown[]; differs: boolean }

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** One row per key found in any record, differing rows first, then by key. A key missing from a record differs. */
export function diffRows(records: Record<string, unknown>[]): DiffRow[] {
  const keys = new Set<string>();
  records.forEach((r) => Object.keys(r).forEach((k) => keys.add(k)));
  const rows = [...keys].map((key) => {
    const values = records.map((r) => (key in r ? r[key] : undefined));
    const differs = values.some((v) => v === undefined || !same(v, values[0]));
    return { key, values, differs };
  });
  rows.sort((a, b) => Number(b.differs) - Number(a.differs) || a.key.localeCompare(b.key));
  return rows;
}

export const MIN_RUNS = 2;
export const MAX_RUNS = 10;

/** "12,13, 14" → [12, 13, 14]; throws with a message that names the problem and the fix. */
export function parseRunIds(text: string | null): number[] {
  const parts = (text ?? "").split(/[\s,]+/).filter(Boolean);
  const ids: number[] = [];
  for (const p of parts) {
    if (!/^\d+$/.test(p)) throw new Error(`"${p}" is not a run id. Give run ids as numbers, e.g. ?runs=12,13.`);
    const id = Number(p);
    if (!ids.includes(id)) ids.push(id);
  }
  if (ids.length > MAX_RUNS) throw new Error(`Compare takes at most ${MAX_RUNS} runs, but got ${ids.length}. Remove some.`);
  return ids;
}

/** Metric names every run has (the curves worth overlaying), system metrics last. */
export function commonMetrics(metricSets: string[][]): string[] {
  if (metricSets.length === 0) return [];
  const [first, ...rest] = metricSets;
  const common = first.filter((m) => rest.every((s) => s.includes(m)));
  return common.sort((a, b) => Number(a.startsWith("sys/")) - Number(b.startsWith("sys/")) || a.localeCompare(b));
}

export function formatValue(v: unknown): string {
  if (v === undefined) return "—";
  if (typeof v === "string") return v;
  return JSON.stringify(v);
}

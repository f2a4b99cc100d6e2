// Metric series for uPlot: smoothing and the alignment of several runs' series on one x axis.

export interface Series { label: string; x: number[]; y: (number | null)[] }

/** Exponential moving average with debiasing (as TensorBoard's smoothing), skipping nulls and non-finite values.
 *  weight 0 returns the values unchanged; weight must be in [0, 1). */
export function smooth(values: (number | null)[], weight: number): (number | null)[] {
  if (!(weight > 0)) return values.slice();
  const w = Math.min(weight, 0.999);
  const out: (number | null)[] = new Array(values.length);
  let last = 0;
  let wn = 1; // w to the power of the points seen so far
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || !Number.isFinite(v)) {
      out[i] = null;
      continue;
    }
    last = last * w + (1 - w) * v;
    wn *= w;
    out[i] = last / (1 - wn);
  }
  return out;
}

/** Join series with different x values into uPlot's aligned form [xs, ys1, ys2, …]:
 *  xs is the sorted union, and each ys holds null where its series has no point.
 *  Each input must be sorted by x (the API returns points in step order). O(total points · log k). */
export function align(series: Series[]): [number[], ...(number | null)[][]] {
  const k = series.length;
  if (k === 0) return [[]];
  if (k === 1) return [series[0].x.slice(), series[0].y.slice()];
  // Fast path: identical x arrays (the usual case with steps).
  const x0 = series[0].x;
  if (series.every((s) => s.x.length === x0.length && (s.x === x0 || s.x.every((v, i) => v === x0[i])))) {
    return [x0.slice(), ...series.map((s) => s.y.slice())];
  }
  const xs = mergeSorted(series.map((s) => s.x));
  const out: (number | null)[][] = series.map(() => new Array(xs.length).fill(null));
  for (let j = 0; j < k; j++) {
    const { x, y } = series[j];
    const col = out[j];
    let i = 0;
    for (let p = 0; p < x.length; p++) {
      while (xs[i] < x[p]) i++;
      col[i] = y[p];
    }
  }
  return [xs, ...out];
}

function mergeSorted(arrays: number[][]): number[] {
  // Pairwise merges of sorted, de-duplicated arrays: O(n log k), no global sort.
  let level = arrays.map(dedupe);
  while (level.length > 1) {
    const next: number[][] = [];
    for (let i = 0; i < level.length; i += 2) next.push(i + 1 < level.length ? merge2(level[i], level[i + 1]) : level[i]);
    level = next;
  }
  return level[0] ?? [];
}

function dedupe(a: number[]): number[] {
  const out: number[] = [];
  for (let i = 0; i < a.length; i++) if (i === 0 || a[i] !== a[i - 1]) out.push(a[i]);
  return out;
}

function merge2(a: number[], b: number[]): number[] {
  const out: number[] = new Array(a.length + b.length);
  let i = 0, j = 0, n = 0;
  while (i < a.length && j < b.length) {
    const x = a[i], y = b[j];
    if (x < y) { out[n++] = x; i++; } else if (y < x) { out[n++] = y; j++; } else { out[n++] = x; i++; j++; }
  }
  while (i < a.length) out[n++] = a[i++];
  while (j < b.length) out[n++] = b[j++];
  out.length = n;
  return out;
}

/** A log y scale cannot show values ≤ 0: they become null (gaps) rather than breaking the chart. */
export function positiveOnly(values: (number | null)[]): (number | null)[] {
  return values.map((v) => (v !== null && v > 0 ? v : null));
}

/** How many points of each series to ask the API for. One or two runs: two per pixel of chart width
 *  (each bucket's min and max). More runs overlaid: one per two pixels, at most 760, which the server
 *  answers from its per-256-step blocks even for series of 100,000 points and more (fast), while
 *  every bucket still keeps its extremes. */
export function pointsFor(widthPx: number, nRuns = 1): number {
  if (nRuns <= 2) return Math.max(200, Math.min(4000, Math.round(widthPx * 2)));
  return Math.max(200, Math.min(760, Math.round(widthPx / 2)));
}

/** Distinct, readable colours for up to many runs (golden-angle hues). */
export function colour(i: number): string {
  return `hsl(${Math.round((i * 137.508) % 360)}, 65%, 45%)`;
}

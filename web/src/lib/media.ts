// The run page's logged images without React: images grouped by key and step, which step the
// slider shows, and which steps the "all steps" strip shows.
import type { ImageItem, TableItem } from "../api";

/** One key's images: its steps (ascending, each once) and the images logged at each step. */
export interface ImageSeries {
  key: string;
  steps: number[];
  byStep: Map<number, ImageItem[]>;
}

/** Groups images by key (keys in name order) and step (ascending); images of one step keep their path order. */
export function groupImages(items: ImageItem[]): ImageSeries[] {
  const byKey = new Map<string, Map<number, ImageItem[]>>();
  for (const it of items) {
    let steps = byKey.get(it.key);
    if (!steps) byKey.set(it.key, (steps = new Map()));
    const at = steps.get(it.step);
    if (at) at.push(it);
    else steps.set(it.step, [it]);
  }
  const out: ImageSeries[] = [];
  for (const key of [...byKey.keys()].sort(byName)) {
    const m = byKey.get(key)!;
    const steps = [...m.keys()].sort((a, b) => a - b);
    for (const s of steps) m.get(s)!.sort((a, b) => byName(a.path, b.path));
    out.push({ key, steps, byStep: m });
  }
  return out;
}

function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The index in `steps` (ascending) that shows step `wanted`: the last step when nothing was
 * picked (so a live run's newest image shows), the step itself when logged, else the nearest one
 * (the earlier of two equally near). -1 when there are no steps.
 */
export function stepIndex(steps: number[], wanted: number | null | undefined): number {
  if (steps.length === 0) return -1;
  if (wanted == null || !Number.isFinite(wanted)) return steps.length - 1;
  let lo = 0;
  let hi = steps.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (steps[mid] < wanted) lo = mid + 1;
    else hi = mid;
  }
  // lo: the first step >= wanted (or the last step when all are smaller)
  if (steps[lo] === wanted || lo === 0) return lo;
  if (steps[lo] < wanted) return lo;
  return wanted - steps[lo - 1] <= steps[lo] - wanted ? lo - 1 : lo;
}

/** The step to remember when the slider moves to `index`: null at the last position, so the card follows new steps. */
export function pickedAt(steps: number[], index: number): number | null {
  if (index >= steps.length - 1 || index < 0 || !Number.isInteger(index)) return null;
  return steps[index];
}

/** At most `max` steps for the thumbnail strip, evenly spread, always with the first and the last. */
export function thumbnailSteps(steps: number[], max: number): number[] {
  if (max <= 0) return [];
  if (steps.length <= max) return [...steps];
  if (max === 1) return [steps[steps.length - 1]];
  const out: number[] = [];
  for (let i = 0; i < max; i++) {
    const s = steps[Math.round((i * (steps.length - 1)) / (max - 1))];
    if (out[out.length - 1] !== s) out.push(s);
  }
  return out;
}

/** One logged table key: its versions (a table logged with steps has one per step), newest last. */
export interface TableSeries {
  key: string;
  versions: TableItem[];
}

/** Groups tables by key (name order); a key's versions go by step, the one without a step first. */
export function groupTables(items: TableItem[]): TableSeries[] {
  const byKey = new Map<string, TableItem[]>();
  for (const t of items) {
    const list = byKey.get(t.key);
    if (list) list.push(t);
    else byKey.set(t.key, [t]);
  }
  return [...byKey.keys()].sort(byName).map((key) => ({
    key,
    versions: byKey.get(key)!.sort((a, b) => (a.step ?? -Infinity) - (b.step ?? -Infinity) || byName(a.path, b.path)),
  }));
}

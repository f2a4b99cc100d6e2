// The Models and Datasets pages without React: sizes and counts for people, a dataset diff grouped
// for reading, alias history in words, the version numbers kept in the URL, what a role may do,
// and the commands an empty page suggests.
import type { AliasEvent, DatasetDiff, ManifestEntry, Model } from "../api";
import { atLeast, type Role } from "./auth";

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

/** A size in bytes for people: "812 B", "1.5 KiB", "12.0 MiB" (never "1024.0 KiB"); "—" when unknown. */
export function formatSize(n: number | null | undefined): string {
  if (n == null || !Number.isFinite(n)) return "—";
  const sign = n < 0 ? "-" : "";
  let v = Math.abs(n);
  if (v < 1024) return `${sign}${Math.round(v)} B`;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  // 1023.96 KiB would read "1024.0 KiB": one unit up instead.
  if (Number(v.toFixed(1)) >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return `${sign}${v.toFixed(1)} ${UNITS[u]}`;
}

/** A change of size with its sign: "+1.5 KiB", "−300 B" (a real minus), "±0 B". */
export function formatSizeDelta(n: number): string {
  if (!Number.isFinite(n)) return "—";
  if (n === 0) return "±0 B";
  return n > 0 ? `+${formatSize(n)}` : `−${formatSize(-n)}`;
}

/** "1 file", "10,000 files" (en-US grouping, so the pages read the same everywhere). */
export function formatCount(n: number, noun: string, plural = `${noun}s`): string {
  return `${n.toLocaleString("en-US")} ${n === 1 ? noun : plural}`;
}

/** The exact byte count, for a size's tooltip: "1,536 B". */
export function exactBytes(n: number | null | undefined): string {
  return n == null ? "" : `${n.toLocaleString("en-US")} B`;
}

// ---- Dataset diffs ----

export type DiffKind = "added" | "removed" | "changed";
export const DIFF_KINDS: DiffKind[] = ["added", "removed", "changed"];

/** One path of a diff: its size in the first (a) and the second (b) version; null where it is absent. */
export interface DiffRow { path: string; kind: DiffKind; sizeA: number | null; sizeB: number | null; delta: number }

export interface DiffTotals { n: number; bytes: number }

/** A directory's share of a diff (the first path segment; "" for files at the top). */
export interface DiffDir { dir: string; added: number; removed: number; changed: number; delta: number }

export interface GroupedDiff {
  rows: DiffRow[];
  added: DiffTotals;
  removed: DiffTotals;
  /** `bytes`: how much the changed files grew (negative: shrank). */
  changed: DiffTotals;
  unchanged: number;
  /** The size of b minus the size of a. */
  delta: number;
  dirs: DiffDir[];
}

const byPath = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** The top directory of a path ("images/cat/1.png" → "images"; "labels.csv" → ""). */
export function topDir(path: string): string {
  const i = path.indexOf("/");
  return i < 0 ? "" : path.slice(0, i);
}

/**
 * A diff as the page shows it: one row per path (in path order), totals per kind, the net change
 * of size, and a summary per top directory (a diff of 10,000 files reads by directory first).
 */
export function groupDiff(diff: DatasetDiff): GroupedDiff {
  const rows: DiffRow[] = [
    ...diff.added.map(([path, size]): DiffRow => ({ path, kind: "added", sizeA: null, sizeB: size, delta: size })),
    ...diff.removed.map(([path, size]): DiffRow => ({ path, kind: "removed", sizeA: size, sizeB: null, delta: -size })),
    ...diff.changed.map(([path, a, b]): DiffRow => ({ path, kind: "changed", sizeA: a, sizeB: b, delta: b - a })),
  ].sort((x, y) => byPath(x.path, y.path) || DIFF_KINDS.indexOf(x.kind) - DIFF_KINDS.indexOf(y.kind));
  const totals = (k: DiffKind): DiffTotals => {
    const of = rows.filter((r) => r.kind === k);
    return { n: of.length, bytes: of.reduce((s, r) => s + r.delta, 0) };
  };
  const dirMap = new Map<string, DiffDir>();
  for (const r of rows) {
    const dir = topDir(r.path);
    let d = dirMap.get(dir);
    if (!d) dirMap.set(dir, (d = { dir, added: 0, removed: 0, changed: 0, delta: 0 }));
    d[r.kind]++;
    d.delta += r.delta;
  }
  const added = totals("added");
  const removed = totals("removed");
  const changed = totals("changed");
  return {
    rows, added, removed, changed, unchanged: diff.unchanged,
    delta: added.bytes + removed.bytes + changed.bytes,
    dirs: [...dirMap.values()].sort((a, b) => byPath(a.dir, b.dir)),
  };
}

/** The rows of one kind ("all": every kind) whose path contains `query` (case-insensitive). */
export function filterDiffRows(rows: DiffRow[], kind: DiffKind | "all", query: string): DiffRow[] {
  const q = query.trim().toLowerCase();
  return rows.filter((r) => (kind === "all" || r.kind === kind) && (!q || r.path.toLowerCase().includes(q)));
}

/** The diff in one line: "+2 files (+1.5 KiB), −1 file (−10 B), 3 changed (+20 B), 9,994 unchanged". */
export function diffSummary(g: GroupedDiff): string {
  if (g.added.n + g.removed.n + g.changed.n === 0) return `no difference (${formatCount(g.unchanged, "file")} the same)`;
  const parts: string[] = [];
  if (g.added.n) parts.push(`+${formatCount(g.added.n, "file")} (${formatSizeDelta(g.added.bytes)})`);
  if (g.removed.n) parts.push(`−${formatCount(g.removed.n, "file")} (${formatSizeDelta(g.removed.bytes)})`);
  if (g.changed.n) parts.push(`${g.changed.n.toLocaleString("en-US")} changed (${formatSizeDelta(g.changed.bytes)})`);
  parts.push(`${g.unchanged.toLocaleString("en-US")} unchanged`);
  return parts.join(", ");
}

// ---- Files of a version ----

/** The files whose path contains `query` (case-insensitive), in the manifest's (path) order. */
export function filterFiles(files: ManifestEntry[], query: string): ManifestEntry[] {
  const q = query.trim().toLowerCase();
  return q ? files.filter((f) => f[0].toLowerCase().includes(q)) : files;
}

// ---- Versions in the URL ----

/** A version number from the URL (?version=3): a positive integer, else null (the page picks one). */
export function parseVersion(text: string | null | undefined): number | null {
  if (text == null || !/^\d{1,9}$/.test(text.trim())) return null;
  const v = Number(text.trim());
  return v >= 1 ? v : null;
}

/** The version the page shows: the URL's when it exists, else the latest; null without versions. */
export function pickVersion(wanted: number | null, versions: number[]): number | null {
  if (versions.length === 0) return null;
  if (wanted != null && versions.includes(wanted)) return wanted;
  return Math.max(...versions);
}

/**
 * The pair a diff compares: the URL's a and b when both exist; else the version before b (or the
 * one before the latest) and b (or the latest). null when there are fewer than two versions.
 */
export function diffPair(a: number | null, b: number | null, versions: number[]): { a: number; b: number } | null {
  const vs = [...new Set(versions)].sort((x, y) => x - y);
  if (vs.length < 2) return null;
  const has = (v: number | null): v is number => v != null && vs.includes(v);
  if (has(a) && has(b)) return { a, b };
  const second = has(b) ? b : vs[vs.length - 1];
  if (has(a) && a !== second) return { a, b: second };
  const before = vs.filter((v) => v < second);
  return { a: before.length ? before[before.length - 1] : vs.find((v) => v > second)!, b: second };
}

// ---- Aliases ----

/** A model's aliases per version ({production: 3, staging: 3} → 3 → ["production", "staging"]). */
export function aliasesByVersion(aliases: Model["aliases"]): Map<number, string[]> {
  const m = new Map<number, string[]>();
  for (const [alias, v] of Object.entries(aliases).sort(([a], [b]) => byPath(a, b))) {
    const list = m.get(v);
    if (list) list.push(alias);
    else m.set(v, [alias]);
  }
  return m;
}

/** What an alias event did, in words: "set to v1", "moved from v1 to v2", "removed from v2". */
export function describeAliasMove(e: Pick<AliasEvent, "from_version" | "to_version">): string {
  const { from_version: from, to_version: to } = e;
  if (to == null) return from == null ? "removed" : `removed from v${from}`;
  if (from == null) return `set to v${to}`;
  if (from === to) return `set again to v${to}`;
  return `moved from v${from} to v${to}`;
}

/** The alias history newest first (the server's order kept for events at the same time). */
export function sortAliasHistory(events: AliasEvent[]): AliasEvent[] {
  return events.map((e, i) => ({ e, i })).sort((p, q) => q.e.at - p.e.at || q.i - p.i).map((x) => x.e);
}

/** Whether text is an alias the server accepts: a letter first, then letters, digits, _ and -; not "latest". */
export function aliasProblem(text: string): string | null {
  const t = text.trim();
  if (!t) return "Name the alias.";
  if (t.length > 128) return "An alias has at most 128 characters.";
  if (!/^[A-Za-z][A-Za-z0-9_-]*$/.test(t)) return "An alias starts with a letter, then letters, digits, '_' or '-'.";
  if (t.toLowerCase() === "latest") return "'latest' always means the newest version; pick another name.";
  return null;
}

// ---- Who may do what (the UI hides what the server would refuse; the server decides) ----

/** Editors (and owners) archive and unarchive versions. */
export const canArchive = (role: Role | null | undefined) => atLeast(role, "editor");
/** Owners delete dataset versions. */
export const canDeleteVersion = (role: Role | null | undefined) => atLeast(role, "owner");
/** Owners move and remove aliases. */
export const canMoveAlias = (role: Role | null | undefined) => atLeast(role, "owner");

// ---- URIs and commands ----

export const modelVersionUri = (project: string, model: string, version: number) => `models:/${project}/${model}/${version}`;
export const datasetVersionUri = (project: string, dataset: string, version: number) => `datasets:/${project}/${dataset}:${version}`;
export const runUri = (id: number) => `runs:/${id}`;

/** Quotes a word for a POSIX shell when it needs it (project names are plain; paths may not be). */
export function shellWord(s: string): string {
  return /^[A-Za-z0-9_./:@=-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The command that pushes a directory as a new version of a dataset of this project. */
export function pushDatasetCommand(project: string, name = "NAME"): string {
  return `runyard datasets push DIR --name ${shellWord(name)} --project ${shellWord(project)}`;
}

/** The command that registers a run's artifacts as a new version of a model of this project. */
export function registerModelCommand(project: string, name = "NAME"): string {
  return `runyard models register RUN_ID PATH --name ${shellWord(name)} --project ${shellWord(project)}`;
}

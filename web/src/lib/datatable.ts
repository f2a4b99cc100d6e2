// Logged tables and CSV previews without React: sorting the rows a page loaded (numbers as
// numbers, also when a CSV cell holds them as text), the header-click cycle and the cells' text.

/** A cell as `GET /runs/{id}/tables/content` sends it. */
export type Cell = string | number | boolean | null;

export interface TableSort {
  /** The column's index. */
  column: number;
  desc: boolean;
}

const NUMERIC = /^[+-]?(\d+(\.\d*)?|\.\d+)(e[+-]?\d+)?$/i;
const INTEGER = /^[+-]?\d+$/;
const INFINITY = /^([+-]?)(inf|infinity)$/i;

/**
 * A cell's number: numbers, and text that is a decimal number ("3", " -2.5 ", "1e-3", "inf").
 * null for everything else, and for NaN (a missing value, not a number to order by).
 */
export function asNumber(cell: Cell | undefined): number | null {
  if (typeof cell === "number") return Number.isNaN(cell) ? null : cell;
  if (typeof cell !== "string") return null;
  const s = cell.trim();
  if (NUMERIC.test(s)) return Number(s);
  const inf = INFINITY.exec(s);
  if (inf) return inf[1] === "-" ? -Infinity : Infinity;
  return null;
}

/** Missing cells (null, empty text, NaN) go last whichever way a column is sorted. */
export function isMissing(cell: Cell | undefined): boolean {
  if (cell === null || cell === undefined) return true;
  if (typeof cell === "number") return Number.isNaN(cell);
  if (typeof cell === "string") {
    const s = cell.trim();
    return s === "" || /^nan$/i.test(s);
  }
  return false;
}

const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });

interface SortKey { missing: boolean; num: number | null; text: string; int: bigint | null }

function sortKey(cell: Cell | undefined): SortKey {
  const missing = isMissing(cell);
  const num = missing ? null : asNumber(cell ?? null);
  const text = missing ? "" : String(cell).trim();
  // Integer text too long for a float's 53 bits keeps its exact value (ids, hashes as numbers).
  const int = num !== null && typeof cell === "string" && text.length > 15 && INTEGER.test(text) ? BigInt(text) : null;
  return { missing, num, text: missing ? "" : String(cell), int };
}

function compareKeys(a: SortKey, b: SortKey): number {
  if (a.num !== null && b.num !== null) {
    if (a.num !== b.num) return a.num < b.num ? -1 : 1;
    if (a.int !== null && b.int !== null) return a.int < b.int ? -1 : a.int > b.int ? 1 : 0;
    return 0;
  }
  if (a.num !== null) return -1;
  if (b.num !== null) return 1;
  return collator.compare(a.text, b.text) || (a.text < b.text ? -1 : a.text > b.text ? 1 : 0);
}

/**
 * Orders two present cells: numbers (or numeric text) by value, before text; text in natural
 * order ("run2" before "run10"), case-insensitive, then by code point so equal-looking texts
 * still have one order. Integers too large for a float (20 digits) compare exactly.
 */
export function compareCells(a: Cell, b: Cell): number {
  return compareKeys(sortKey(a), sortKey(b));
}

/** The rows in `sort`'s order (a new array; ties keep their order); the rows as they are without a sort. */
export function sortRows<R extends readonly Cell[]>(rows: readonly R[], sort: TableSort | null): R[] {
  if (!sort) return [...rows];
  const { column, desc } = sort;
  const keyed = rows.map((row, i) => ({ row, i, key: sortKey(row[column]) }));
  keyed.sort((p, q) => {
    if (p.key.missing || q.key.missing) return p.key.missing === q.key.missing ? p.i - q.i : p.key.missing ? 1 : -1;
    const c = compareKeys(p.key, q.key);
    return (desc ? -c : c) || p.i - q.i;
  });
  return keyed.map((x) => x.row);
}

/** A header click: unsorted → ascending → descending → unsorted (the file's order); another column starts ascending. */
export function nextTableSort(cur: TableSort | null, column: number): TableSort | null {
  if (!cur || cur.column !== column) return { column, desc: false };
  if (!cur.desc) return { column, desc: true };
  return null;
}

/** Whether a column holds numbers (all its present cells are numeric), to align it right. */
export function isNumericColumn(rows: readonly (readonly Cell[])[], column: number): boolean {
  let seen = false;
  for (const row of rows) {
    const c = row[column];
    if (isMissing(c)) continue;
    if (asNumber(c) === null) return false;
    seen = true;
  }
  return seen;
}

/** A cell's text: numbers as they came (a table shows its data, not a rounding of it). */
export function cellText(cell: Cell | undefined): string {
  if (cell === null || cell === undefined) return "";
  if (typeof cell === "string") return cell;
  return String(cell);
}

/** "first 1,000 of 25,000 rows" when the server sent only the first rows; null when all are shown. */
export function truncationNote(shown: number, total: number, truncated: boolean): string | null {
  if (!truncated && shown >= total) return null;
  return `first ${shown.toLocaleString("en-US")} of ${total.toLocaleString("en-US")} rows`;
}

// Project tags on the Projects page: how a tag reads, and the tag filters kept in the URL (?tag=problem:classification).
// The server does the filtering (GET /projects?tag=…) and checks the filters; this only builds and edits them.

/** A tag as it reads: "problem: classification", or "benchmark" for a plain label (empty value). */
export function tagLabel(key: string, value: string): string {
  return value === "" ? key : `${key}: ${value}`;
}

/** The filter that keeps projects with this tag: "problem:classification", or "benchmark" (has the label). */
export function tagFilter(key: string, value: string): string {
  return value === "" ? key : `${key}:${value}`;
}

/** What was typed in the filter box → a filter: "problem = classification" → "problem:classification"; "" → null. */
export function normalizeTagFilter(text: string): string | null {
  const t = text.trim();
  if (!t) return null;
  const cut = [t.indexOf(":"), t.indexOf("=")].filter((i) => i >= 0);
  if (cut.length === 0) return t;
  const at = Math.min(...cut);
  const key = t.slice(0, at).trim();
  const value = t.slice(at + 1).trim();
  return value === "" ? `${key}:` : `${key}:${value}`;
}

/** The key a filter is about ("problem:classification" → "problem"). */
export function filterKey(filter: string): string {
  const cut = [filter.indexOf(":"), filter.indexOf("=")].filter((i) => i >= 0);
  return (cut.length ? filter.slice(0, Math.min(...cut)) : filter).trim();
}

/** Adds a filter; one on the same key is replaced (a project has one value per key, so both could never match). */
export function addTagFilter(filters: string[], filter: string): string[] {
  return [...filters.filter((f) => filterKey(f) !== filterKey(filter)), filter];
}

export function removeTagFilter(filters: string[], filter: string): string[] {
  return filters.filter((f) => f !== filter);
}

/** A tag typed to add to a project: "problem: classification", "problem=classification" → {key, value};
 * "benchmark" → a plain label (empty value); "" → null. The server checks the key and value. */
export function parseTag(text: string): { key: string; value: string } | null {
  const t = text.trim();
  if (!t) return null;
  const cut = [t.indexOf(":"), t.indexOf("=")].filter((i) => i >= 0);
  if (cut.length === 0) return { key: t, value: "" };
  const at = Math.min(...cut);
  return { key: t.slice(0, at).trim(), value: t.slice(at + 1).trim() };
}

// How the run page previews an artifact, decided by its file name only (the content is a run's,
// so anybody who can log to the run chose it).
//
// Text is shown as text (a <pre>, never parsed as HTML; XML too), Markdown through the
// description's allow-list renderer, pictures in an <img> (which never runs script). Pages a
// browser would run code from (HTML, notebooks rendered to HTML, SVG) are shown only in an
// <iframe sandbox=""> (no scripts, an opaque origin with no cookies or API of the app's), from
// the server's file route, which adds its own sandboxing Content-Security-Policy. Other files are
// a download link.

export type PreviewKind = "table" | "markdown" | "text" | "image" | "sandboxed" | "download";

const TABLE = new Set(["csv", "tsv", "parquet"]);
const MARKDOWN = new Set(["md", "markdown"]);
// The pictures the server sends with their own content type under ?view=true (never SVG).
const IMAGE = new Set(["png", "jpg", "jpeg", "gif", "webp"]);
// The pages the server shows under ?view=true (sandboxed): a notebook's HTML, SVG pictures.
const SANDBOXED = new Set(["html", "htm", "svg"]);
const TEXT = new Set([
  "txt", "text", "log", "out", "err", "json", "jsonl", "ndjson", "yaml", "yml", "toml", "ini", "cfg", "conf", "env",
  "py", "pyi", "ipynb", "sh", "bash", "r", "jl", "js", "ts", "c", "h", "cc", "cpp", "hpp", "cu", "java", "go", "rs",
  "sql", "tex", "rst", "diff", "patch", "properties", "lock", "gitignore", "dockerfile", "xml", "xhtml", "xsl",
]);
const TEXT_NAMES = new Set(["dockerfile", "makefile", "license", "readme", "requirements", "procfile"]);

/** The file name's extension, lower-case, without the dot ("" when it has none). */
export function extension(path: string): string {
  const name = path.slice(path.lastIndexOf("/") + 1);
  const dot = name.lastIndexOf(".");
  return dot < 0 || dot === name.length - 1 ? "" : name.slice(dot + 1).toLowerCase();
}

/** How to preview the artifact at `path` (see the module's comment). */
export function previewKind(path: string): PreviewKind {
  const ext = extension(path);
  if (SANDBOXED.has(ext)) return "sandboxed";
  if (TABLE.has(ext)) return "table";
  if (MARKDOWN.has(ext)) return "markdown";
  if (IMAGE.has(ext)) return "image";
  if (TEXT.has(ext)) return "text";
  const name = path.slice(path.lastIndexOf("/") + 1).toLowerCase();
  if (ext === "" && TEXT_NAMES.has(name)) return "text";
  return "download";
}

/** How much of a text artifact the page loads (a longer one shows its start and says so). */
export const TEXT_PREVIEW_BYTES = 1024 * 1024;

/** Whether bytes look like a binary file rather than text: a NUL in the first 8 KiB. */
export function looksBinary(bytes: Uint8Array): boolean {
  const n = Math.min(bytes.length, 8192);
  for (let i = 0; i < n; i++) if (bytes[i] === 0) return true;
  return false;
}

/** A size in bytes for people: "812 B", "1.5 KiB", "12.0 MiB". */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return String(n);
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(1)} ${units[u]}`;
}

// The public REST API, through relative URLs with the session's cookies.
// Writes carry the CSRF token of the session (X-CSRF-Token); a 401 sends the app to the login page.
import { csrfHeaders, type Me, type Member, type Members, type Role } from "./lib/auth";
import { looksBinary, TEXT_PREVIEW_BYTES } from "./lib/preview";

export interface MetricSummary { last: number | null; step: number; min: number | null; max: number | null; count: number; ts: number }
export interface Task { id: number; role: string; rank: number; attempt: number; status: string; host: string; pid: number | null; exit_code: number | null; started_at: number | null; ended_at: number | null }
export interface RunEvent { status: string; attempt: number; message: string; ts: number }
export interface Run {
  id: number; project: string; experiment_id: number | null; number: number; name: string; status: string; status_message: string;
  attempt: number; exit_code: number | null; snapshot_id: string | null; backend: string | null; created_at: number;
  started_at: number | null; ended_at: number | null; heartbeat_at: number | null;
  params: Record<string, unknown>; tags: Record<string, string>; metrics: Record<string, MetricSummary>; tasks: Task[]; events: RunEvent[];
}
export interface RunPage { items: Run[]; total: number; offset: number; limit: number }
export interface Project { id: number; name: string; description: string; visibility: string; owner: string | null; created_at: number; updated_at: number; n_experiments: number; n_runs: number; last_activity_at: number | null; tags: Record<string, string> }
export interface Experiment { id: number; project: string; name: string; status: string; config: Record<string, any>; snapshot_id: string | null; backend: string; message: string; created_at: number; ended_at: number | null; counts: Record<string, number>; warnings?: string[] }
export interface MetricHistory { key: string; steps: number[]; values: (number | null)[]; timestamps: number[]; downsampled: boolean; total: number }
export interface LogLine { offset: number; task: string; stream: string; text: string; ts: number }
export interface LogPage { lines: LogLine[]; next_offset: number; run_status: string }
export interface TensorBoardStatus { experiment_id: number; runs: number; files: number; running: boolean }
export interface TensorBoardLink { url: string; experiment_id: number; runs: number; files: number; expires_in_s: number }
export interface Artifact { path: string; size: number; sha256: string; created_at: number }
/** A logged image (`GET /runs/{id}/images`): a PNG artifact at `path`. */
export interface ImageItem { key: string; step: number; path: string; caption: string | null; width: number; height: number; time: number }
/** A logged table (`GET /runs/{id}/tables`); `step` is null for a table logged without one. */
export interface TableItem { key: string; step: number | null; path: string; format: string; rows: number; columns: string[] }
/** The first rows of a .csv/.tsv/.parquet artifact (`GET /runs/{id}/tables/content`). */
export interface TableContent { path: string; columns: string[]; rows: (string | number | boolean | null)[][]; total: number; truncated: boolean }
/** A run's note (Markdown); `updated_at` is ISO 8601 text, null (with `updated_by`) before anybody wrote one. */
export interface Note { text: string; updated_at: string | null; updated_by: string | null }
/** The start of a text artifact: `truncated` when the file is longer than what was read. */
export interface ArtifactText { text: string; bytes: number; truncated: boolean; binary: boolean }
export interface Snapshot { id: string; files: [string, string, number, number][]; n_files: number; size: number; git_commit: string | null; git_branch: string | null; git_dirty: boolean; git_diff: string; created_at: number }

/** An error the API answered with ({code, message, hint}) or a network failure. */
export class ApiError extends Error {
  constructor(public status: number, public code: string, message: string, public hint: string | null) {
    super(message);
  }
}

/** Called with each 401 answer (the app goes to the login page); requests made with `{ auth401: false }` skip it. */
let unauthorizedHandler: ((e: ApiError) => void) | null = null;
export function onUnauthorized(fn: ((e: ApiError) => void) | null): void {
  unauthorizedHandler = fn;
}

const cookies = () => (typeof document !== "undefined" ? document.cookie : "");

export const API = "/api/v1";

type Query = Record<string, string | number | boolean | (string | number)[] | null | undefined>;

export function queryString(q: Query = {}): string {
  const sp = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) {
    if (v === null || v === undefined || v === "") continue;
    if (Array.isArray(v)) v.forEach((x) => sp.append(k, String(x)));
    else sp.append(k, String(v));
  }
  const s = sp.toString();
  return s ? `?${s}` : "";
}

export interface RequestOptions { signal?: AbortSignal; auth401?: boolean }

export async function request<T>(method: string, path: string, q?: Query, body?: unknown, opts: RequestOptions = {}): Promise<T> {
  const { signal, auth401 = true } = opts;
  const init: RequestInit = { method, credentials: "same-origin", signal, headers: { Accept: "application/json", ...csrfHeaders(method, cookies()) } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    (init.headers as Record<string, string>)["Content-Type"] = "application/json";
  }
  const resp = await fetch(API + path + queryString(q), init);
  if (!resp.ok) {
    let code = "http_error", message = `${method} ${path} answered ${resp.status}`, hint: string | null = null;
    try {
      const j = await resp.json();
      code = j.code ?? code;
      message = j.message ?? (typeof j.detail === "string" ? j.detail : JSON.stringify(j.detail ?? j));
      hint = j.hint ?? null;
    } catch { /* not JSON: keep the status line */ }
    const err = new ApiError(resp.status, code, message, hint);
    if (resp.status === 401 && auth401 && unauthorizedHandler) unauthorizedHandler(err);
    throw err;
  }
  if (resp.status === 204) return undefined as T;
  return (await resp.json()) as T;
}

export const get = <T>(path: string, q?: Query, signal?: AbortSignal) => request<T>("GET", path, q, undefined, { signal });

export interface RunQuery {
  project?: string; experiment_id?: number; status?: string[]; filter?: string[]; order_by?: string | null;
  limit?: number; offset?: number; fields?: string[] | null;
}

const projectPath = (name: string) => `/projects/${encodeURIComponent(name)}`;

export const api = {
  me: () => get<Me>("/me"),
  login: (username: string, password: string) =>
    request<{ user: Me["user"]; csrf_token: string; expires_at: number }>("POST", "/auth/login", undefined, { username, password }, { auth401: false }),
  logout: () => request<{ signed_out: boolean }>("POST", "/auth/logout", undefined, undefined, { auth401: false }),
  members: (project: string) => get<Members>(`${projectPath(project)}/members`),
  share: (project: string, username: string, role: Role) =>
    request<Member>("PUT", `${projectPath(project)}/members/${encodeURIComponent(username)}`, undefined, { role }),
  unshare: (project: string, username: string) =>
    request<void>("DELETE", `${projectPath(project)}/members/${encodeURIComponent(username)}`),
  setVisibility: (project: string, visibility: "private" | "public") =>
    request<Project>("PATCH", projectPath(project), undefined, { visibility }),
  /** Adds or overwrites tags (editors). */
  setProjectTags: (project: string, tags: Record<string, string>) =>
    request<Project>("POST", `${projectPath(project)}/tags`, undefined, { tags }),
  removeProjectTag: (project: string, key: string) =>
    request<Project>("DELETE", `${projectPath(project)}/tags/${encodeURIComponent(key)}`),
  /** `tags`: filters KEY or KEY:VALUE, all of which a project must match (the server filters). */
  projects: (q?: string, tags: string[] = []) => get<{ items: Project[] }>("/projects", { q, tag: tags }).then((r) => r.items),
  project: (name: string) => get<Project>(`/projects/${encodeURIComponent(name)}`),
  health: () => get<{ status: string; version: string; image_hosts?: string[] }>("/health"),
  experiments: (project?: string) => get<{ items: Experiment[] }>("/experiments", { project }).then((r) => r.items),
  experiment: (id: number) => get<Experiment>(`/experiments/${id}`),
  experimentKeys: (id: number) => get<{ params: string[]; metrics: string[] }>(`/experiments/${id}/keys`),
  experimentColumns: (id: number, fields: string[]) =>
    get<{ ids: number[]; columns: Record<string, unknown[]> }>(`/experiments/${id}/columns`, { fields }),
  /** Whether the experiment's runs kept TensorBoard event files (tensorboard/ artifacts); starts nothing. */
  tensorboardStatus: (id: number) => get<TensorBoardStatus>(`/experiments/${id}/tensorboard`),
  /** Starts (or refreshes) the experiment's TensorBoard on the server: a capability URL (/tb/CAP/) for a new tab. */
  openTensorboard: (id: number) => request<TensorBoardLink>("POST", `/experiments/${id}/tensorboard`),
  cancelExperiment: (id: number) => request<Experiment>("POST", `/experiments/${id}/cancel`),
  runs: (q: RunQuery, signal?: AbortSignal) => get<RunPage>("/runs", { ...q, fields: q.fields ?? undefined } as Query, signal),
  run: (id: number) => get<Run>(`/runs/${id}`),
  cancelRun: (id: number) => request<Run>("POST", `/runs/${id}/cancel`),
  history: (id: number, key: string, maxPoints: number, signal?: AbortSignal) =>
    get<MetricHistory>(`/runs/${id}/metrics/${key.split("/").map(encodeURIComponent).join("/")}`, { max_points: maxPoints }, signal),
  logs: (id: number, offset: number, task?: string | null, limit = 5000) => get<LogPage>(`/runs/${id}/logs`, { offset, task, limit }),
  artifacts: (id: number) => get<{ items: Artifact[] }>(`/runs/${id}/artifacts`).then((r) => r.items),
  images: (id: number, key?: string) => get<{ items: ImageItem[] }>(`/runs/${id}/images`, { key }).then((r) => r.items),
  tables: (id: number) => get<{ items: TableItem[] }>(`/runs/${id}/tables`).then((r) => r.items),
  /** The first `limit` rows of a .csv, .tsv or .parquet artifact (a logged table or any other). */
  tableContent: (id: number, path: string, limit = 1000) => get<TableContent>(`/runs/${id}/tables/content`, { path, limit }),
  note: (id: number) => get<Note>(`/runs/${id}/note`),
  /** Replaces the run's note (editors; the server refuses viewers with a 403). */
  setNote: (id: number, text: string) => request<Note>("PUT", `/runs/${id}/note`, undefined, { text }),
  /** The first `maxBytes` of an artifact as UTF-8 text (the rest is not downloaded). */
  artifactText: async (id: number, path: string, maxBytes = TEXT_PREVIEW_BYTES): Promise<ArtifactText> => {
    const resp = await fetch(artifactViewUrl(id, path), { credentials: "same-origin" });
    if (!resp.ok) await fail(resp, `artifact ${path}`);
    return readTextPrefix(resp, maxBytes);
  },
  snapshot: (id: string) => get<Snapshot>(`/snapshots/${id}`),
  blobText: async (digest: string) => {
    const resp = await fetch(`${API}/blobs/${digest}`, { credentials: "same-origin" });
    if (!resp.ok) await fail(resp, `blob ${digest}`);
    return resp.text();
  },
};

/** Throws the ApiError of a file route's failed answer (its JSON error when it sent one). */
async function fail(resp: Response, what: string): Promise<never> {
  let code = "http_error", message = `${what} answered ${resp.status}`, hint: string | null = null;
  try {
    const j = await resp.json();
    code = j.code ?? code;
    message = j.message ?? message;
    hint = j.hint ?? null;
  } catch { /* not JSON: keep the status line */ }
  const err = new ApiError(resp.status, code, message, hint);
  if (resp.status === 401 && unauthorizedHandler) unauthorizedHandler(err);
  throw err;
}

/** Reads at most `maxBytes` of a body and stops the download there; a character cut at the end is dropped. */
export async function readTextPrefix(resp: Response, maxBytes: number): Promise<ArtifactText> {
  const chunks: Uint8Array[] = [];
  let n = 0;
  let truncated = false;
  if (resp.body) {
    const reader = resp.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      n += value.length;
      if (n > maxBytes) {
        truncated = true;
        await reader.cancel();
        break;
      }
    }
  } else {
    const all = new Uint8Array(await resp.arrayBuffer());
    chunks.push(all);
    n = all.length;
    truncated = n > maxBytes;
  }
  const bytes = new Uint8Array(Math.min(n, maxBytes));
  let at = 0;
  for (const c of chunks) {
    const take = Math.min(c.length, bytes.length - at);
    bytes.set(c.subarray(0, take), at);
    at += take;
    if (at >= bytes.length) break;
  }
  // stream: true keeps an unfinished character back instead of showing it as U+FFFD.
  const text = new TextDecoder("utf-8").decode(bytes, { stream: truncated });
  return { text, bytes: bytes.length, truncated, binary: looksBinary(bytes) };
}

export const artifactUrl = (runId: number, path: string) =>
  `${API}/runs/${runId}/artifacts/${path.split("/").map(encodeURIComponent).join("/")}`;
/** The artifact for the page to show (`?view=true`): pictures and text with their own type, other files still
 *  under the server's sandboxing Content-Security-Policy (shown only in a sandboxed frame, or downloaded). */
export const artifactViewUrl = (runId: number, path: string) => `${artifactUrl(runId, path)}?view=true`;
export const blobUrl = (digest: string) => `${API}/blobs/${digest}`;

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

// ---- Models, datasets and lineage (REGISTRY contract: /projects/{p}/models, /projects/{p}/datasets, /lineage) ----
/** A file of a snapshot: [path, sha256, size, mode]. */
export type ManifestEntry = [string, string, number, number];
/** A referenced file of a dataset version (kept in place): [uri, sha256, size, mtime]. */
export type RefEntry = [string, string, number, number];
export interface Model {
  name: string; project: string; description: string; tags: Record<string, string>; n_versions: number;
  latest_version: number | null; aliases: Record<string, number>; created_by: string; created_at: number; updated_at: number;
}
export interface ModelVersion {
  model: string; project: string; version: number; run_id: number | null; source: string; snapshot_id: string;
  files: ManifestEntry[]; n_files: number; size: number; flavor: string;
  signature: { inputs?: unknown[]; outputs?: unknown[] } | null; requirements: string[]; description: string;
  tags: Record<string, string>; status: "ready" | "archived" | string; aliases: string[]; created_by: string;
  created_at: number; archived_at: number | null;
}
/** An alias moved (from_version null: set for the first time; to_version null: removed). */
export interface AliasEvent { alias: string; from_version: number | null; to_version: number | null; actor: string; at: number }
export interface ModelDetail extends Model { versions: ModelVersion[]; alias_history: AliasEvent[] }
export interface AliasMove { alias: string; version: number; from_version: number | null }
export interface Dataset {
  name: string; project: string; description: string; n_versions: number; latest_version: number | null;
  n_files: number; size: number; created_by: string; created_at: number; updated_at: number;
}
export interface DatasetVersion {
  dataset: string; project: string; version: number; content_id: string; snapshot_id: string | null;
  files: ManifestEntry[]; refs: RefEntry[]; n_files: number; size: number; message: string;
  tags: Record<string, string>; created_by: string; created_at: number; used_by_models: { model: string; version: number }[];
}
export type DatasetVersionSummary = Omit<DatasetVersion, "files" | "refs" | "used_by_models"> & Partial<Pick<DatasetVersion, "used_by_models">>;
export interface DatasetDetail extends Dataset { versions: DatasetVersionSummary[] }
/** `GET .../diff?a=&b=`: [path, size] added and removed, [path, size_a, size_b] changed. */
export interface DatasetDiff { added: [string, number][]; removed: [string, number][]; changed: [string, number, number][]; unchanged: number }
export interface RunDataset { name: string; project: string; dataset: string; version: number; content_id: string; snapshot_id: string | null; n_files: number; size: number }
export type LineageKind = "model_version" | "run" | "dataset_version" | "snapshot" | "image" | "experiment";
export interface LineageNode { id: string; kind: LineageKind | string; label: string; project?: string | null; data: Record<string, unknown> }
/** `data.name` of a read edge: the run's name for the dataset (the key in runyard.yml's datasets:). */
export interface LineageEdge { source: string; target: string; kind: "trained_from" | "read" | "code" | "image" | "registered_as" | "part_of" | string; data?: Record<string, unknown> }
/** Redacted nodes (in projects the caller cannot read) carry `data.redacted`; `truncated`: the server left some nodes out. */
export interface Lineage { root: string; nodes: LineageNode[]; edges: LineageEdge[]; truncated?: boolean }

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
const modelPath = (project: string, name: string) => `${projectPath(project)}/models/${encodeURIComponent(name)}`;
const datasetPath = (project: string, name: string) => `${projectPath(project)}/datasets/${encodeURIComponent(name)}`;

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
  // ---- Models, datasets and lineage ----
  models: (project: string, q?: string) => get<{ items: Model[] }>(`${projectPath(project)}/models`, { q }).then((r) => r.items),
  model: (project: string, name: string) => get<ModelDetail>(modelPath(project, name)),
  modelVersion: (project: string, name: string, version: number) => get<ModelVersion>(`${modelPath(project, name)}/versions/${version}`),
  /** Archives (or with `unarchive`, restores) a version (editors). */
  archiveModelVersion: (project: string, name: string, version: number, unarchive = false) =>
    request<ModelVersion>("POST", `${modelPath(project, name)}/versions/${version}/${unarchive ? "unarchive" : "archive"}`),
  /** Points an alias at a version (owners); the server records who moved it from which version. */
  setModelAlias: (project: string, name: string, alias: string, version: number) =>
    request<AliasMove>("PUT", `${modelPath(project, name)}/aliases/${encodeURIComponent(alias)}`, undefined, { version }),
  deleteModelAlias: (project: string, name: string, alias: string) =>
    request<void>("DELETE", `${modelPath(project, name)}/aliases/${encodeURIComponent(alias)}`),
  datasets: (project: string, q?: string) => get<{ items: Dataset[] }>(`${projectPath(project)}/datasets`, { q }).then((r) => r.items),
  dataset: (project: string, name: string) => get<DatasetDetail>(datasetPath(project, name)),
  datasetVersion: (project: string, name: string, version: number | "latest") => get<DatasetVersion>(`${datasetPath(project, name)}/versions/${version}`),
  datasetDiff: (project: string, name: string, a: number, b: number) => get<DatasetDiff>(`${datasetPath(project, name)}/diff`, { a, b }),
  /** Deletes a dataset version (owners); 409 when a registered model was trained on it or runs read it. */
  deleteDatasetVersion: (project: string, name: string, version: number) =>
    request<void>("DELETE", `${datasetPath(project, name)}/versions/${version}`),
  runDatasets: (id: number) => get<{ items: RunDataset[] }>(`/runs/${id}/datasets`).then((r) => r.items),
  lineage: (uri: string) => get<Lineage>("/lineage", { uri }),
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

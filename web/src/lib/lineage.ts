// The lineage view without React: a graph from GET /lineage laid out as an indented chain from its
// root (model version → run → dataset versions, code snapshot, image), what each node links to,
// the facts it shows, and which nodes the caller may not see.
import type { Lineage, LineageEdge, LineageNode } from "../api";
import { formatCount, formatSize } from "./registry";

/** How an edge reads from the node above to the node below (`reverse`: walked from its target to its source). */
const EDGE_TEXT: Record<string, [forward: string, reverse: string]> = {
  trained_from: ["trained from", "produced"],
  registered_as: ["registered as", "registered from"],
  read: ["read", "read by"],
  code: ["code", "code of"],
  image: ["image", "image of"],
  part_of: ["part of", "run"],
};

/** The order of a node's children: what made it first (the run), then data, code, image, then what came of it. */
const EDGE_ORDER = ["trained_from", "read", "code", "image", "part_of", "registered_as"];
const KIND_ORDER = ["model_version", "run", "experiment", "dataset_version", "snapshot", "image"];

export function edgeText(kind: string, reverse: boolean, data?: Record<string, unknown>): string {
  const t = EDGE_TEXT[kind];
  const words = kind.replace(/_/g, " ");
  // A read edge names the dataset as the run called it: "read as train", backwards "read as train by".
  if (kind === "read" && typeof data?.name === "string" && data.name) return reverse ? `read as ${data.name} by` : `read as ${data.name}`;
  return t ? (reverse ? t[1] : t[0]) : reverse ? `${words} (of)` : words;
}

export interface LineageRow {
  node: LineageNode;
  depth: number;
  /** The edge from the row's parent (null for the root and for nodes not connected to it). */
  via: { kind: string; reverse: boolean; text: string } | null;
  /** The node of the row above it in the chain (null at depth 0). */
  parent: LineageNode | null;
  /** The node was already shown higher up (a diamond: two runs read one dataset version): not expanded again. */
  repeat: boolean;
}

/**
 * The graph as rows of an indented chain, depth-first from the root. Each edge is walked from the
 * node already placed to the other end, whichever way it points, so the same layout serves a model
 * version's chain (down to its data) and a dataset version's (up to the runs and models using it).
 * A node reached twice is shown again as a repeat without its children; nodes not connected to the
 * root come last at depth 0. Edges naming unknown nodes are ignored.
 */
export function layoutLineage(graph: Lineage): LineageRow[] {
  const nodes = new Map(graph.nodes.map((n) => [n.id, n]));
  const adj = new Map<string, { other: string; edge: LineageEdge; reverse: boolean }[]>();
  const link = (from: string, other: string, edge: LineageEdge, reverse: boolean) => {
    let l = adj.get(from);
    if (!l) adj.set(from, (l = []));
    l.push({ other, edge, reverse });
  };
  const seenEdges = new Set<string>();
  for (const e of graph.edges) {
    if (!nodes.has(e.source) || !nodes.has(e.target) || e.source === e.target) continue;
    const key = `${e.source}\u0000${e.target}\u0000${e.kind}`;
    if (seenEdges.has(key)) continue;
    seenEdges.add(key);
    link(e.source, e.target, e, false);
    link(e.target, e.source, e, true);
  }
  const rank = (list: string[], k: string) => (list.includes(k) ? list.indexOf(k) : list.length);
  for (const l of adj.values()) {
    l.sort((p, q) => rank(EDGE_ORDER, p.edge.kind) - rank(EDGE_ORDER, q.edge.kind)
      || Number(p.reverse) - Number(q.reverse)
      || rank(KIND_ORDER, nodes.get(p.other)!.kind) - rank(KIND_ORDER, nodes.get(q.other)!.kind)
      || compareText(nodes.get(p.other)!.label, nodes.get(q.other)!.label)
      || compareText(p.other, q.other));
  }
  const rows: LineageRow[] = [];
  const placed = new Set<string>();
  const usedEdges = new Set<LineageEdge>();
  const walk = (id: string, depth: number, via: LineageRow["via"], parent: LineageNode | null) => {
    const node = nodes.get(id)!;
    if (placed.has(id)) {
      rows.push({ node, depth, via, parent, repeat: true });
      return;
    }
    placed.add(id);
    rows.push({ node, depth, via, parent, repeat: false });
    // Nothing is followed through a node the caller may not see (the server sends none, either).
    if (isRedacted(node) && depth > 0) return;
    for (const { other, edge, reverse } of adj.get(id) ?? []) {
      if (usedEdges.has(edge)) continue; // the edge we came by, walked back
      usedEdges.add(edge);
      walk(other, depth + 1, { kind: edge.kind, reverse, text: edgeText(edge.kind, reverse, edge.data) }, node);
    }
  };
  if (nodes.has(graph.root)) walk(graph.root, 0, null, null);
  for (const n of graph.nodes) if (!placed.has(n.id)) walk(n.id, 0, null, null);
  return rows;
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

const str = (v: unknown): string | null => (typeof v === "string" && v !== "" ? v : typeof v === "number" ? String(v) : null);
const int = (v: unknown): number | null => {
  if (typeof v === "number" && Number.isInteger(v)) return v;
  if (typeof v === "string" && /^\d+$/.test(v)) return Number(v);
  return null;
};

/** Whether the server left the node out for the caller (a run or dataset of a project they cannot read). */
export function isRedacted(node: LineageNode): boolean {
  const d = node.data ?? {};
  return node.kind === "redacted" || d.redacted === true || d.visible === false || d.hidden === true;
}

const enc = encodeURIComponent;

/** The app page a node opens (null: none, or not visible to the caller); a snapshot opens its run's code tab. */
export function nodeHref(node: LineageNode, parent: LineageNode | null = null): string | null {
  if (isRedacted(node)) return null;
  const d = node.data ?? {};
  const project = str(d.project);
  switch (node.kind) {
    case "model_version": {
      const model = str(d.model) ?? str(d.name);
      const version = int(d.version);
      if (!project || !model) return null;
      return `/projects/${enc(project)}/models/${enc(model)}${version != null ? `?version=${version}` : ""}`;
    }
    case "dataset_version": {
      const dataset = str(d.dataset) ?? str(d.name);
      const version = int(d.version);
      if (!project || !dataset) return null;
      return `/projects/${enc(project)}/datasets/${enc(dataset)}${version != null ? `?version=${version}` : ""}`;
    }
    case "run": {
      const id = int(d.run_id) ?? int(d.id) ?? int(/^runs?[:/]+(\d+)$/.exec(node.id)?.[1]);
      return id != null ? `/runs/${id}` : null;
    }
    case "snapshot": {
      const parentRun = parent?.kind === "run" && !isRedacted(parent) ? nodeHref(parent) : null;
      const run = int(d.run_id);
      return run != null ? `/runs/${run}?tab=code` : parentRun ? `${parentRun}?tab=code` : null;
    }
    case "experiment": {
      const id = int(d.experiment_id) ?? int(d.id) ?? int(/^experiments?[:/]+(\d+)$/.exec(node.id)?.[1]);
      return id != null ? `/experiments/${id}` : null;
    }
    default:
      return null;
  }
}

/** A run node's params, the first `max` by name, and how many more there are. */
export function keyParams(data: Record<string, unknown>, max = 8): { shown: [string, string][]; more: number } {
  const params = data.params;
  if (!params || typeof params !== "object" || Array.isArray(params)) return { shown: [], more: 0 };
  const entries = Object.entries(params as Record<string, unknown>).sort(([a], [b]) => compareText(a, b));
  const text = (v: unknown) => (typeof v === "string" ? v : JSON.stringify(v));
  return { shown: entries.slice(0, max).map(([k, v]) => [k, text(v)]), more: Math.max(0, entries.length - max) };
}

/** The short facts shown beside a node's label: a version's flavor and aliases, a dataset's size, a commit. */
export function nodeFacts(node: LineageNode): string[] {
  if (isRedacted(node)) return [];
  const d = node.data ?? {};
  const facts: string[] = [];
  switch (node.kind) {
    case "model_version": {
      if (str(d.flavor)) facts.push(str(d.flavor)!);
      if (str(d.status) && d.status !== "ready") facts.push(str(d.status)!);
      if (Array.isArray(d.aliases) && d.aliases.length) facts.push(d.aliases.map((a) => `@${a}`).join(" "));
      break;
    }
    case "run": {
      if (str(d.status)) facts.push(str(d.status)!);
      if (str(d.name) && !node.label.includes(str(d.name)!)) facts.push(str(d.name)!);
      break;
    }
    case "dataset_version": {
      const n = int(d.n_files);
      if (n != null) facts.push(formatCount(n, "file"));
      if (typeof d.size === "number") facts.push(formatSize(d.size));
      if (str(d.message)) facts.push(`“${str(d.message)}”`);
      break;
    }
    case "snapshot": {
      const commit = str(d.git_commit);
      const branch = str(d.git_branch) ? ` on ${str(d.git_branch)}` : "";
      if (!commit) facts.push("no git commit");
      else if (node.label.includes(commit.slice(0, 12))) {
        if (branch) facts.push(branch.trim());
      } else facts.push(`git ${commit.slice(0, 12)}${branch}`);
      if (d.git_dirty === true) facts.push("uncommitted changes");
      break;
    }
    case "image": {
      const ref = str(d.image) ?? str(d.ref) ?? str(d.reference);
      if (ref && ref !== node.label) facts.push(ref);
      break;
    }
  }
  return facts;
}

/** A node kind for people. */
export function kindLabel(kind: string): string {
  return ({ model_version: "model version", dataset_version: "dataset version", run: "run", snapshot: "code",
    image: "image", experiment: "experiment" } as Record<string, string>)[kind] ?? kind.replace(/_/g, " ");
}

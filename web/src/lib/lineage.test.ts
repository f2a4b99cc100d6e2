import { describe, expect, it } from "vitest";
import type { Lineage, LineageNode } from "../api";
import { edgeText, isRedacted, keyParams, kindLabel, layoutLineage, nodeFacts, nodeHref } from "./lineage";

const node = (id: string, kind: string, data: Record<string, unknown> = {}, label = id): LineageNode => ({ id, kind, label, data });

// models:/vision/digits/3 → run 12 → digits:1 and labels:4, code snapshot, image.
const modelChain: Lineage = {
  root: "mv",
  nodes: [
    node("img", "image", { image: "python:3.12-slim" }, "python:3.12-slim"),
    node("snap", "snapshot", { git_commit: "0123456789abcdef0123", git_branch: "main", git_dirty: true, run_id: 12 }),
    node("ds-labels", "dataset_version", { project: "vision", dataset: "labels", version: 4, n_files: 1, size: 2048 }, "labels:4"),
    node("ds-digits", "dataset_version", { project: "vision", dataset: "digits", version: 1, n_files: 10000, size: 1536 }, "digits:1"),
    node("run", "run", { id: 12, status: "succeeded", params: { lr: 0.1, depth: 3 } }, "run 12"),
    node("mv", "model_version", { project: "vision", model: "digits", version: 3, flavor: "sklearn", aliases: ["production"] }, "digits v3"),
  ],
  edges: [
    { source: "run", target: "img", kind: "image" },
    { source: "run", target: "snap", kind: "code" },
    { source: "run", target: "ds-labels", kind: "read" },
    { source: "run", target: "ds-digits", kind: "read" },
    { source: "mv", target: "run", kind: "trained_from" },
  ],
};

const shape = (g: Lineage) => layoutLineage(g).map((r) => `${"  ".repeat(r.depth)}${r.via ? `${r.via.text}: ` : ""}${r.node.id}${r.repeat ? " (again)" : ""}`);

describe("layoutLineage", () => {
  it("lays a model version's chain out from the root: run, then data, code and image", () => {
    expect(shape(modelChain)).toEqual([
      "mv",
      "  trained from: run",
      "    read: ds-digits",
      "    read: ds-labels",
      "    code: snap",
      "    image: img",
    ]);
  });

  it("walks edges backwards from a dataset version up to the runs and model versions using it", () => {
    const g: Lineage = { ...modelChain, root: "ds-digits" };
    expect(shape(g)).toEqual([
      "ds-digits",
      "  read by: run",
      "    produced: mv",
      "    read: ds-labels",
      "    code: snap",
      "    image: img",
    ]);
  });

  it("shows a node reached twice again without its children, and never loops", () => {
    const g: Lineage = {
      root: "mv",
      nodes: [node("mv", "model_version"), node("r1", "run"), node("r2", "run"), node("ds", "dataset_version"), node("snap", "snapshot")],
      edges: [
        { source: "mv", target: "r1", kind: "trained_from" },
        { source: "mv", target: "r2", kind: "trained_from" },
        { source: "r1", target: "ds", kind: "read" },
        { source: "r2", target: "ds", kind: "read" },
        { source: "ds", target: "snap", kind: "code" },
        { source: "snap", target: "mv", kind: "code" }, // a cycle the server should never send
      ],
    };
    const rows = shape(g);
    expect(rows[0]).toBe("mv");
    expect(rows.filter((r) => r.includes("(again)")).length).toBeGreaterThan(0);
    expect(rows.length).toBeLessThan(12);
    expect(new Set(layoutLineage(g).filter((r) => !r.repeat).map((r) => r.node.id)).size).toBe(5);
  });

  it("puts nodes not connected to the root last, ignores unknown, self and duplicate edges", () => {
    const g: Lineage = {
      root: "a",
      nodes: [node("a", "run"), node("b", "snapshot"), node("lonely", "image")],
      edges: [
        { source: "a", target: "b", kind: "code" },
        { source: "a", target: "b", kind: "code" },
        { source: "a", target: "ghost", kind: "read" },
        { source: "a", target: "a", kind: "read" },
      ],
    };
    expect(shape(g)).toEqual(["a", "  code: b", "lonely"]);
  });

  it("copes with a root the nodes lack and with an empty graph", () => {
    expect(shape({ root: "x", nodes: [node("a", "run")], edges: [] })).toEqual(["a"]);
    expect(layoutLineage({ root: "x", nodes: [], edges: [] })).toEqual([]);
  });

  it("names the dataset as the run called it, and the experiment a run is part of", () => {
    const g: Lineage = {
      root: "run",
      nodes: [node("run", "run", { id: 5 }), node("ds", "dataset_version"), node("exp", "experiment", { id: 2 }), node("snap", "snapshot", { git_commit: "abc" })],
      edges: [
        { source: "run", target: "ds", kind: "read", data: { name: "train" } },
        { source: "run", target: "exp", kind: "part_of" },
        { source: "run", target: "snap", kind: "code" },
      ],
    };
    expect(shape(g)).toEqual(["run", "  read as train: ds", "  code: snap", "  part of: exp"]);
    const snap = layoutLineage(g).find((r) => r.node.id === "snap")!;
    expect(snap.parent?.id).toBe("run");
    expect(nodeHref(snap.node, snap.parent)).toBe("/runs/5?tab=code");
    expect(nodeHref(snap.node)).toBeNull();
  });

  it("follows nothing through a node the caller may not see", () => {
    const g: Lineage = {
      root: "ds",
      nodes: [node("ds", "dataset_version"), node("hidden", "run", { redacted: true }), node("beyond", "model_version")],
      edges: [{ source: "hidden", target: "ds", kind: "read" }, { source: "hidden", target: "beyond", kind: "registered_as" }],
    };
    // (a node reached only through it, which the server never sends, stands apart)
    expect(shape(g)).toEqual(["ds", "  read by: hidden", "beyond", "  registered from: hidden (again)"]);
  });

  it("names unknown edge kinds from their words", () => {
    expect(edgeText("derived_from", false)).toBe("derived from");
    expect(edgeText("read", true)).toBe("read by");
    expect(edgeText("read", false, { name: "train" })).toBe("read as train");
    expect(edgeText("read", true, { name: "train" })).toBe("read as train by");
    expect(kindLabel("dataset_version")).toBe("dataset version");
    expect(kindLabel("new_thing")).toBe("new thing");
  });
});

describe("nodes", () => {
  const byId = (id: string) => modelChain.nodes.find((n) => n.id === id)!;

  it("links each kind to its page", () => {
    expect(nodeHref(byId("mv"))).toBe("/projects/vision/models/digits?version=3");
    expect(nodeHref(byId("ds-digits"))).toBe("/projects/vision/datasets/digits?version=1");
    expect(nodeHref(byId("run"))).toBe("/runs/12");
    expect(nodeHref(byId("snap"))).toBe("/runs/12?tab=code");
    expect(nodeHref(byId("img"))).toBeNull();
    expect(nodeHref(node("runs:/7", "run"))).toBe("/runs/7");
    expect(nodeHref(node("e", "experiment", { id: 4 }))).toBe("/experiments/4");
    expect(nodeHref(node("m", "model_version", { project: "a b", name: "x/y" }))).toBe("/projects/a%20b/models/x%2Fy");
    expect(nodeHref(node("m", "model_version", {}))).toBeNull();
  });

  it("links nowhere and says nothing for a node the caller may not see", () => {
    for (const n of [node("r", "run", { redacted: true, id: 3 }), node("r", "redacted"), node("d", "dataset_version", { visible: false, project: "p", dataset: "d" })]) {
      expect(isRedacted(n)).toBe(true);
      expect(nodeHref(n)).toBeNull();
      expect(nodeFacts(n)).toEqual([]);
    }
    expect(isRedacted(byId("run"))).toBe(false);
  });

  it("tells each node's facts", () => {
    expect(nodeFacts(byId("mv"))).toEqual(["sklearn", "@production"]);
    expect(nodeFacts(byId("ds-digits"))).toEqual(["10,000 files", "1.5 KiB"]);
    expect(nodeFacts(byId("snap"))).toEqual(["git 0123456789ab on main", "uncommitted changes"]);
    expect(nodeFacts(node("s", "snapshot", {}))).toEqual(["no git commit"]);
    expect(nodeFacts(byId("run"))).toEqual(["succeeded"]);
    expect(nodeFacts(node("i", "image", { image: "x:1" }, "image"))).toEqual(["x:1"]);
    // What the label already says is not repeated.
    expect(nodeFacts(node("r", "run", { name: "train", status: "failed" }, "run 3 (train)"))).toEqual(["failed"]);
    expect(nodeFacts(node("s", "snapshot", { git_commit: "0123456789abcdef", git_branch: "dev" }, "snapshot ab (git 0123456789ab)"))).toEqual(["on dev"]);
  });

  it("shows a run's first params by name and counts the rest", () => {
    expect(keyParams({ params: { lr: 0.1, depth: 3, name: "a" } }, 2)).toEqual({ shown: [["depth", "3"], ["lr", "0.1"]], more: 1 });
    expect(keyParams({ params: { opt: { kind: "adam" } } })).toEqual({ shown: [["opt", '{"kind":"adam"}']], more: 0 });
    expect(keyParams({})).toEqual({ shown: [], more: 0 });
    expect(keyParams({ params: [1, 2] })).toEqual({ shown: [], more: 0 });
  });
});

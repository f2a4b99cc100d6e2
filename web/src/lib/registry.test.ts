import { describe, expect, it } from "vitest";
import type { AliasEvent } from "../api";
import {
  aliasesByVersion, aliasProblem, canArchive, canMoveAlias, datasetVersionUri, describeAliasMove, diffPair, diffSummary,
  filterDiffRows, filterFiles, formatCount, formatSize, formatSizeDelta, groupDiff, modelVersionUri, parseVersion,
  pickVersion, pushDatasetCommand, registerModelCommand, shellWord, sortAliasHistory, topDir,
} from "./registry";

describe("formatSize", () => {
  it("reads bytes in binary units with one decimal", () => {
    expect(formatSize(0)).toBe("0 B");
    expect(formatSize(812)).toBe("812 B");
    expect(formatSize(1023)).toBe("1023 B");
    expect(formatSize(1024)).toBe("1.0 KiB");
    expect(formatSize(1536)).toBe("1.5 KiB");
    expect(formatSize(12 * 1024 * 1024)).toBe("12.0 MiB");
    expect(formatSize(1024 ** 3)).toBe("1.0 GiB");
    expect(formatSize(5 * 1024 ** 5)).toBe("5.0 PiB");
    expect(formatSize(2048 * 1024 ** 5)).toBe("2048.0 PiB");
  });
  it("never shows 1024.0 of a unit", () => {
    expect(formatSize(1024 * 1024 - 1)).toBe("1.0 MiB");
    expect(formatSize(1024 ** 3 - 10)).toBe("1.0 GiB");
    expect(formatSize(1024 * 1023.9)).toBe("1023.9 KiB");
  });
  it("says — when the size is unknown and keeps the sign of a negative one", () => {
    expect(formatSize(null)).toBe("—");
    expect(formatSize(undefined)).toBe("—");
    expect(formatSize(Number.NaN)).toBe("—");
    expect(formatSize(Infinity)).toBe("—");
    expect(formatSize(-2048)).toBe("-2.0 KiB");
  });
  it("shows a change with its sign", () => {
    expect(formatSizeDelta(1536)).toBe("+1.5 KiB");
    expect(formatSizeDelta(-300)).toBe("−300 B");
    expect(formatSizeDelta(0)).toBe("±0 B");
    expect(formatSizeDelta(Number.NaN)).toBe("—");
  });
  it("counts with the noun's plural and en-US grouping", () => {
    expect(formatCount(1, "file")).toBe("1 file");
    expect(formatCount(0, "file")).toBe("0 files");
    expect(formatCount(10000, "file")).toBe("10,000 files");
    expect(formatCount(2, "entry", "entries")).toBe("2 entries");
  });
});

describe("groupDiff", () => {
  const diff = {
    added: [["images/new.png", 300], ["z.txt", 5]] as [string, number][],
    removed: [["images/old.png", 100]] as [string, number][],
    changed: [["labels.csv", 1000, 1200], ["images/a.png", 50, 40]] as [string, number, number][],
    unchanged: 9994,
  };
  it("makes one row per path in path order with the sizes of both sides", () => {
    const g = groupDiff(diff);
    expect(g.rows.map((r) => [r.path, r.kind, r.sizeA, r.sizeB, r.delta])).toEqual([
      ["images/a.png", "changed", 50, 40, -10],
      ["images/new.png", "added", null, 300, 300],
      ["images/old.png", "removed", 100, null, -100],
      ["labels.csv", "changed", 1000, 1200, 200],
      ["z.txt", "added", null, 5, 5],
    ]);
  });
  it("totals each kind and the net change", () => {
    const g = groupDiff(diff);
    expect(g.added).toEqual({ n: 2, bytes: 305 });
    expect(g.removed).toEqual({ n: 1, bytes: -100 });
    expect(g.changed).toEqual({ n: 2, bytes: 190 });
    expect(g.unchanged).toBe(9994);
    expect(g.delta).toBe(395);
  });
  it("summarises by top directory, files at the top under ''", () => {
    expect(groupDiff(diff).dirs).toEqual([
      { dir: "", added: 1, removed: 0, changed: 1, delta: 205 },
      { dir: "images", added: 1, removed: 1, changed: 1, delta: 190 },
    ]);
    expect(topDir("a/b/c")).toBe("a");
    expect(topDir("c")).toBe("");
  });
  it("reads in one line, and says when nothing differs", () => {
    expect(diffSummary(groupDiff(diff))).toBe("+2 files (+305 B), −1 file (−100 B), 2 changed (+190 B), 9,994 unchanged");
    expect(diffSummary(groupDiff({ added: [], removed: [], changed: [], unchanged: 3 }))).toBe("no difference (3 files the same)");
  });
  it("filters rows by kind and by a piece of the path", () => {
    const rows = groupDiff(diff).rows;
    expect(filterDiffRows(rows, "added", "").map((r) => r.path)).toEqual(["images/new.png", "z.txt"]);
    expect(filterDiffRows(rows, "all", " IMAGES/").map((r) => r.path)).toEqual(["images/a.png", "images/new.png", "images/old.png"]);
    expect(filterDiffRows(rows, "removed", "csv")).toEqual([]);
  });
  it("keeps a path that is both removed and added (a type change) as two rows", () => {
    const g = groupDiff({ added: [["x", 1]], removed: [["x", 2]], changed: [], unchanged: 0 });
    expect(g.rows.map((r) => r.kind)).toEqual(["added", "removed"]);
  });
  it("groups 10,000 paths", () => {
    const added = Array.from({ length: 10000 }, (_, i) => [`d${i % 10}/f${i}`, i] as [string, number]);
    const g = groupDiff({ added, removed: [], changed: [], unchanged: 0 });
    expect(g.rows).toHaveLength(10000);
    expect(g.dirs).toHaveLength(10);
    expect(g.dirs[0].added).toBe(1000);
  });
});

describe("files", () => {
  it("filters a manifest by a piece of the path", () => {
    const files: [string, string, number, number][] = [["a/x.csv", "1", 1, 0o644], ["b/y.png", "2", 2, 0o644]];
    expect(filterFiles(files, "")).toBe(files);
    expect(filterFiles(files, "Y.P").map((f) => f[0])).toEqual(["b/y.png"]);
  });
});

describe("versions in the URL", () => {
  it("parses positive integers only", () => {
    expect(parseVersion("3")).toBe(3);
    expect(parseVersion(" 12 ")).toBe(12);
    for (const bad of [null, undefined, "", "0", "-1", "1.5", "latest", "1e3", "99999999999", "\ud800"]) expect(parseVersion(bad)).toBeNull();
  });
  it("shows the wanted version when it exists, else the latest", () => {
    expect(pickVersion(2, [1, 2, 3])).toBe(2);
    expect(pickVersion(9, [1, 2, 3])).toBe(3);
    expect(pickVersion(null, [3, 1, 2])).toBe(3);
    expect(pickVersion(1, [])).toBeNull();
  });
  it("compares the URL's pair, else the latest with the one before", () => {
    expect(diffPair(1, 3, [1, 2, 3])).toEqual({ a: 1, b: 3 });
    expect(diffPair(3, 1, [1, 2, 3])).toEqual({ a: 3, b: 1 });
    expect(diffPair(null, null, [1, 2, 3])).toEqual({ a: 2, b: 3 });
    expect(diffPair(null, 2, [1, 2, 3])).toEqual({ a: 1, b: 2 });
    expect(diffPair(1, null, [1, 2, 3])).toEqual({ a: 1, b: 3 });
    expect(diffPair(3, null, [1, 2, 3])).toEqual({ a: 2, b: 3 });
    expect(diffPair(null, 1, [1, 2, 3])).toEqual({ a: 2, b: 1 });
    expect(diffPair(7, 8, [1, 2])).toEqual({ a: 1, b: 2 });
    expect(diffPair(null, null, [1])).toBeNull();
    expect(diffPair(null, null, [])).toBeNull();
  });
});

describe("aliases", () => {
  it("lists a version's aliases in name order", () => {
    const m = aliasesByVersion({ staging: 3, production: 3, canary: 1 });
    expect(m.get(3)).toEqual(["production", "staging"]);
    expect(m.get(1)).toEqual(["canary"]);
    expect(m.get(2)).toBeUndefined();
  });
  it("says what a move did", () => {
    expect(describeAliasMove({ from_version: null, to_version: 1 })).toBe("set to v1");
    expect(describeAliasMove({ from_version: 1, to_version: 2 })).toBe("moved from v1 to v2");
    expect(describeAliasMove({ from_version: 2, to_version: null })).toBe("removed from v2");
    expect(describeAliasMove({ from_version: 2, to_version: 2 })).toBe("set again to v2");
  });
  it("orders the history newest first, later events first at equal times", () => {
    const ev = (alias: string, at: number): AliasEvent => ({ alias, at, from_version: null, to_version: 1, actor: "a" });
    expect(sortAliasHistory([ev("a", 1), ev("b", 3), ev("c", 2), ev("d", 3)]).map((e) => e.alias)).toEqual(["d", "b", "c", "a"]);
  });
  it("checks an alias the way the server does", () => {
    expect(aliasProblem("production")).toBeNull();
    expect(aliasProblem("stage-2_b")).toBeNull();
    expect(aliasProblem("")).toMatch(/Name/);
    expect(aliasProblem("2fast")).toMatch(/starts with a letter/);
    expect(aliasProblem("latest")).toMatch(/newest/);
    expect(aliasProblem("LATEST")).toMatch(/newest/);
    expect(aliasProblem("a".repeat(129))).toMatch(/128/);
    expect(aliasProblem("bad\u0000")).toMatch(/letters/);
    expect(aliasProblem("x\ud800")).toMatch(/letters/);
  });
});

describe("roles", () => {
  it("lets editors archive and only owners move aliases", () => {
    expect([null, "viewer", "editor", "owner"].map((r) => canArchive(r as never))).toEqual([false, false, true, true]);
    expect([null, "viewer", "editor", "owner"].map((r) => canMoveAlias(r as never))).toEqual([false, false, false, true]);
  });
});

describe("URIs and commands", () => {
  it("names versions the way GET /lineage takes them", () => {
    expect(modelVersionUri("vision", "digits", 3)).toBe("models:/vision/digits/3");
    expect(datasetVersionUri("vision", "digits", 2)).toBe("datasets:/vision/digits:2");
  });
  it("quotes what a shell would split", () => {
    expect(shellWord("vision-1.0")).toBe("vision-1.0");
    expect(shellWord("my project")).toBe("'my project'");
    expect(shellWord("it's")).toBe("'it'\\''s'");
  });
  it("suggests the commands that fill an empty page", () => {
    expect(pushDatasetCommand("vision")).toBe("runyard datasets push DIR --name NAME --project vision");
    expect(registerModelCommand("vision", "digits")).toMatch(/^runyard models register .* --name digits --project vision$/);
  });
});

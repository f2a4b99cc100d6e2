import { describe, expect, it } from "vitest";
import type { Run } from "../api";
import { bestAgg, cellValue, defaultColumnIds, fieldsFor, formatCell, formatNumber, nextSort, pagesFor, parseColumn, parseColumns, parseSort } from "./table";

const run = (over: Partial<Run> = {}): Run => ({
  id: 7, project: "p", experiment_id: 1, number: 3, name: "run-7", status: "running", status_message: "", attempt: 1, exit_code: null,
  snapshot_id: null, backend: "local", created_at: 1000, started_at: 1000, ended_at: 1090, heartbeat_at: null,
  params: { lr: 0.01, opt: "adam" }, tags: {}, metrics: { loss: { last: 0.5, step: 9, min: 0.25, max: 2, count: 10, ts: 1 } },
  tasks: [], events: [], ...over,
});

describe("columns", () => {
  it("parses attribute, param and metric ids, and rejects unknown ones", () => {
    expect(parseColumn("status")).toMatchObject({ kind: "attr", sortField: "status" });
    expect(parseColumn("duration")).toMatchObject({ kind: "attr", sortField: null });
    expect(parseColumn("params.lr")).toMatchObject({ kind: "param", key: "lr", sortField: "params.lr" });
    expect(parseColumn("metrics.val/acc.max")).toMatchObject({ kind: "metric", key: "val/acc", agg: "max", sortField: "metrics.val/acc.max" });
    expect(parseColumn("metrics.a.b.last")).toMatchObject({ key: "a.b", agg: "last" });
    expect(parseColumn("metrics.loss")).toBeNull();
    expect(parseColumn("metrics.val/accuracy.max")!.width).toBeGreaterThan(parseColumn("metrics.acc.max")!.width);
    expect(parseColumn("params.")).toBeNull();
    expect(parseColumn("bogus")).toBeNull();
    expect(parseColumns(["status", "bogus", "status", "params.lr"]).map((c) => c.id)).toEqual(["status", "params.lr"]);
  });

  it("shows every param and the last and best of each metric, search metric first, system metrics left out", () => {
    const ids = defaultColumnIds(["lr", "opt"], ["acc", "loss", "sys/cpu_percent"], "loss", "min");
    expect(ids).toEqual(["number", "name", "status", "duration", "params.lr", "params.opt",
      "metrics.loss.last", "metrics.loss.min", "metrics.acc.last", "metrics.acc.max"]);
  });

  it("picks the better end of a metric from the search mode or its name", () => {
    expect(bestAgg("acc", "acc", "max")).toBe("max");
    expect(bestAgg("acc", "acc", "min")).toBe("min");
    expect(bestAgg("val_loss", null, null)).toBe("min");
    expect(bestAgg("f1", "loss", "min")).toBe("max");
  });

  it("asks the server only for the fields the columns show", () => {
    const cols = parseColumns(["name", "params.lr", "metrics.loss.last", "metrics.loss.min"]);
    expect(fieldsFor(cols)).toEqual(["params.lr", "metrics.loss"]);
    expect(fieldsFor(cols, ["acc"])).toEqual(["params.lr", "metrics.loss", "metrics.acc"]);
  });
});

describe("cells", () => {
  it("reads params, metric aggregates, attributes and durations", () => {
    const r = run();
    expect(cellValue(r, parseColumn("params.lr")!)).toBe(0.01);
    expect(cellValue(r, parseColumn("metrics.loss.min")!)).toBe(0.25);
    expect(cellValue(r, parseColumn("metrics.nope.last")!)).toBeUndefined();
    expect(cellValue(r, parseColumn("name")!)).toBe("run-7");
    expect(cellValue(r, parseColumn("duration")!)).toBe(90);
    expect(cellValue(run({ ended_at: null }), parseColumn("duration")!, 1030)).toBe(30);
    expect(cellValue(run({ started_at: null }), parseColumn("duration")!)).toBeUndefined();
  });

  it("formats numbers compactly", () => {
    expect(formatNumber(3)).toBe("3");
    expect(formatNumber(0.123456789)).toBe("0.12346");
    expect(formatNumber(0.0000123)).toBe("1.230e-5");
    expect(formatNumber(12345678.5)).toBe("1.235e+7");
    expect(formatCell(undefined, parseColumn("params.lr")!)).toBe("");
    expect(formatCell({ a: 1 }, parseColumn("params.x")!)).toBe('{"a":1}');
    expect(formatCell(90, parseColumn("duration")!)).toBe("1m30s");
  });
});

describe("sorting", () => {
  it("cycles ascending, descending, unsorted on header clicks", () => {
    const col = parseColumn("metrics.loss.last")!;
    const a = nextSort(null, col);
    expect(a).toBe("metrics.loss.last");
    const d = nextSort(a, col);
    expect(d).toBe("metrics.loss.last desc");
    expect(nextSort(d, col)).toBeNull();
    expect(nextSort("params.lr desc", col)).toBe("metrics.loss.last");
    expect(nextSort("params.lr", parseColumn("duration")!)).toBe("params.lr"); // not sortable: unchanged
    expect(parseSort("metrics.acc.max desc")).toEqual({ field: "metrics.acc.max", desc: true });
    expect(parseSort(null)).toBeNull();
  });
});

describe("paged loading", () => {
  it("finds the pages that cover the visible rows", () => {
    expect(pagesFor(0, 30, 200, 10_000)).toEqual([0]);
    expect(pagesFor(190, 230, 200, 10_000)).toEqual([0, 1]);
    expect(pagesFor(9_970, 10_010, 200, 10_000)).toEqual([49]);
    expect(pagesFor(0, 10, 200, 0)).toEqual([]);
    expect(pagesFor(10, 5, 200, 100)).toEqual([]);
  });
});

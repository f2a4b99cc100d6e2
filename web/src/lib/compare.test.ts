import { describe, expect, it } from "vitest";
import { commonMetrics, diffRows, flatten, formatValue, parseRunIds } from "./compare";

describe("compare", () => {
  it("flattens nested config into dotted keys", () => {
    expect(flatten({ a: 1, b: { c: [1, 2], d: { e: "x" } }, f: {} })).toEqual({ a: 1, "b.c": [1, 2], "b.d.e": "x", f: {} });
    expect(flatten(null)).toEqual({});
  });

  it("marks the keys whose values differ, missing ones included, and lists them first", () => {
    const rows = diffRows([{ lr: 0.1, opt: "adam", seed: 1, x: [1] }, { lr: 0.2, opt: "adam", x: [1] }, { lr: 0.1, opt: "adam", x: [1] }]);
    expect(rows.map((r) => [r.key, r.differs])).toEqual([["lr", true], ["seed", true], ["opt", false], ["x", false]]);
    expect(rows[1].values).toEqual([1, undefined, undefined]);
    expect(formatValue(undefined)).toBe("—");
    expect(formatValue([1])).toBe("[1]");
  });

  it("reads 2–10 run ids and says what is wrong otherwise", () => {
    expect(parseRunIds("3,4, 4 5")).toEqual([3, 4, 5]);
    expect(parseRunIds(null)).toEqual([]);
    expect(() => parseRunIds("3,abc")).toThrow(/"abc" is not a run id/);
    expect(() => parseRunIds("1,2,3,4,5,6,7,8,9,10,11")).toThrow(/at most 10 runs, but got 11/);
  });

  it("offers the metrics every run has, system metrics last", () => {
    expect(commonMetrics([["loss", "sys/cpu", "acc"], ["acc", "loss", "sys/cpu", "f1"]])).toEqual(["acc", "loss", "sys/cpu"]);
    expect(commonMetrics([])).toEqual([]);
  });
});

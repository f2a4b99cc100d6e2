import { describe, expect, it } from "vitest";
import { brushFilters, fromUnit, inBrushes, makeAxis, parseBrushes, serializeBrushes, setBrush, toUnit } from "./parcoords";

describe("axes", () => {
  it("uses a log scale for positive numbers over two decades", () => {
    const a = makeAxis("params.lr", "lr", [0.0001, 0.01, 1, undefined]);
    expect(a.kind).toBe("log");
    expect(toUnit(a, 0.01)).toBeCloseTo(0.5, 10);
    expect(fromUnit(a, 0.5)).toBeCloseTo(0.01, 10);
    expect(toUnit(a, undefined)).toBeNull();
    expect(fromUnit(a, 1)).toBe(1); // ends are exact
  });

  it("uses a linear scale otherwise, and widens a single value", () => {
    const a = makeAxis("params.a", "a", [1, 6, 3]);
    expect(a).toMatchObject({ kind: "linear", min: 1, max: 6 });
    expect(toUnit(a, 3.5)).toBeCloseTo(0.5, 10);
    expect(makeAxis("x", "x", [2, 2])).toMatchObject({ min: 1, max: 3 });
  });

  it("spreads categories evenly", () => {
    const a = makeAxis("params.opt", "opt", ["sgd", "adam", "sgd"]);
    expect(a.kind).toBe("category");
    expect(a.categories).toEqual(["adam", "sgd"]);
    expect(toUnit(a, "sgd")).toBe(1);
    expect(toUnit(a, "rmsprop")).toBeNull();
  });
});

describe("brushes", () => {
  it("become the API's filters and round-trip through the URL", () => {
    const brushes = [{ field: "params.lr", lo: 0.001, hi: 0.1 }, { field: "metrics.acc.last", lo: 0.9, hi: 1 }];
    expect(brushFilters(brushes)).toEqual(["params.lr >= 0.001", "params.lr <= 0.1", "metrics.acc.last >= 0.9", "metrics.acc.last <= 1"]);
    expect(parseBrushes(serializeBrushes(brushes))).toEqual(brushes);
    expect(parseBrushes("params.a:5:2;junk;params.b:x:1")).toEqual([{ field: "params.a", lo: 2, hi: 5 }]);
    expect(parseBrushes(null)).toEqual([]);
  });

  it("select the runs inside every brush", () => {
    const b = [{ field: "params.a", lo: 2, hi: 4 }];
    expect(inBrushes({ "params.a": 3 }, b)).toBe(true);
    expect(inBrushes({ "params.a": 5 }, b)).toBe(false);
    expect(inBrushes({}, b)).toBe(false);
    expect(inBrushes({}, [])).toBe(true);
  });

  it("replace or clear the brush of one axis", () => {
    const b = setBrush([{ field: "a", lo: 1, hi: 2 }], "a", { field: "a", lo: 3, hi: 4 });
    expect(b).toEqual([{ field: "a", lo: 3, hi: 4 }]);
    expect(setBrush(b, "a", null)).toEqual([]);
  });
});

import { describe, expect, it } from "vitest";
import type { ImageItem, TableItem } from "../api";
import { groupImages, groupTables, pickedAt, stepIndex, thumbnailSteps } from "./media";

const img = (key: string, step: number, n = 0): ImageItem => ({
  key, step, path: `media/images/${key}/${step}-${n}.png`, caption: null, width: 28, height: 28, time: 1,
});

describe("groupImages", () => {
  it("groups by key in name order and by step ascending, several images of a step in path order", () => {
    const s = groupImages([img("val/pred", 10), img("samples", 5, 1), img("samples", 0), img("samples", 5, 0), img("val/pred", 2)]);
    expect(s.map((x) => x.key)).toEqual(["samples", "val/pred"]);
    expect(s[0].steps).toEqual([0, 5]);
    expect(s[0].byStep.get(5)!.map((i) => i.path)).toEqual(["media/images/samples/5-0.png", "media/images/samples/5-1.png"]);
    expect(s[1].steps).toEqual([2, 10]);
  });

  it("is empty for no images", () => {
    expect(groupImages([])).toEqual([]);
  });
});

describe("stepIndex", () => {
  const steps = [0, 10, 20, 100];
  it("shows the newest step until one is picked", () => {
    expect(stepIndex(steps, null)).toBe(3);
    expect(stepIndex(steps, undefined)).toBe(3);
  });
  it("finds a logged step", () => {
    expect(stepIndex(steps, 0)).toBe(0);
    expect(stepIndex(steps, 20)).toBe(2);
    expect(stepIndex(steps, 100)).toBe(3);
  });
  it("takes the nearest logged step for one that is not (the earlier of two equally near)", () => {
    expect(stepIndex(steps, 14)).toBe(1);
    expect(stepIndex(steps, 16)).toBe(2);
    expect(stepIndex(steps, 15)).toBe(1);
    expect(stepIndex(steps, -5)).toBe(0);
    expect(stepIndex(steps, 1e12)).toBe(3);
  });
  it("copes with no steps, one step, and non-numbers", () => {
    expect(stepIndex([], 3)).toBe(-1);
    expect(stepIndex([7], 3)).toBe(0);
    expect(stepIndex(steps, Number.NaN)).toBe(3);
    expect(stepIndex([Number.MAX_SAFE_INTEGER - 1, Number.MAX_SAFE_INTEGER], Number.MAX_SAFE_INTEGER)).toBe(1);
  });
});

describe("pickedAt", () => {
  it("remembers a step, but nothing at the last position (the card then follows new steps)", () => {
    expect(pickedAt([0, 10, 20], 1)).toBe(10);
    expect(pickedAt([0, 10, 20], 0)).toBe(0);
    expect(pickedAt([0, 10, 20], 2)).toBeNull();
    expect(pickedAt([0, 10, 20], 7)).toBeNull();
    expect(pickedAt([0, 10, 20], -1)).toBeNull();
    expect(pickedAt([0, 10, 20], 0.5)).toBeNull();
    expect(pickedAt([], 0)).toBeNull();
  });

  it("follows new steps after the last position was picked", () => {
    const steps = [0, 10];
    const picked = pickedAt(steps, 1);
    expect(stepIndex([...steps, 20], picked)).toBe(2);
    expect(stepIndex([...steps, 20], pickedAt(steps, 0))).toBe(0);
  });
});

describe("thumbnailSteps", () => {
  it("keeps every step when they fit", () => {
    expect(thumbnailSteps([1, 2, 3], 5)).toEqual([1, 2, 3]);
  });
  it("spreads at most max steps evenly, first and last included", () => {
    const steps = Array.from({ length: 1000 }, (_, i) => i * 10);
    const t = thumbnailSteps(steps, 60);
    expect(t.length).toBe(60);
    expect(t[0]).toBe(0);
    expect(t[59]).toBe(9990);
    expect([...t].sort((a, b) => a - b)).toEqual(t);
    expect(new Set(t).size).toBe(t.length);
  });
  it("gives the newest for max 1 and nothing for max 0", () => {
    expect(thumbnailSteps([1, 2, 3], 1)).toEqual([3]);
    expect(thumbnailSteps([1, 2, 3], 0)).toEqual([]);
  });
});

describe("groupTables", () => {
  const t = (key: string, step: number | null, path = `media/tables/${key}${step === null ? "" : `/${step}`}.csv`): TableItem =>
    ({ key, step, path, format: "csv", rows: 3, columns: ["a"] });
  it("groups by key, the version without a step first, then by step", () => {
    const g = groupTables([t("preds", 20), t("conf", null), t("preds", null), t("preds", 3)]);
    expect(g.map((x) => x.key)).toEqual(["conf", "preds"]);
    expect(g[1].versions.map((v) => v.step)).toEqual([null, 3, 20]);
  });
});

import { describe, expect, it } from "vitest";
import { align, pointsFor, positiveOnly, smooth } from "./chart";

describe("smoothing", () => {
  it("leaves values alone at weight 0 and debiases the moving average", () => {
    expect(smooth([1, 2, 3], 0)).toEqual([1, 2, 3]);
    const s = smooth([10, 10, 10], 0.9) as number[];
    s.forEach((v) => expect(v).toBeCloseTo(10, 10)); // no pull towards 0 at the start
    const t = smooth([0, 10], 0.5) as number[];
    expect(t[1]).toBeCloseTo(10 * 0.5 / 0.75, 10);
  });

  it("skips gaps and non-finite values", () => {
    const s = smooth([1, null, NaN, 3], 0.5);
    expect(s[1]).toBeNull();
    expect(s[2]).toBeNull();
    expect(s[3]).toBeCloseTo((0.25 * 1 + 0.5 * 3) / 0.75, 10);
  });
});

describe("alignment", () => {
  it("joins series on the union of their x values with gaps", () => {
    const [xs, a, b] = align([{ label: "a", x: [0, 1, 2], y: [1, 2, 3] }, { label: "b", x: [1, 3], y: [10, 30] }]);
    expect(xs).toEqual([0, 1, 2, 3]);
    expect(a).toEqual([1, 2, 3, null]);
    expect(b).toEqual([null, 10, null, 30]);
  });

  it("handles no series and one series", () => {
    expect(align([])).toEqual([[]]);
    expect(align([{ label: "a", x: [5], y: [1] }])).toEqual([[5], [1]]);
  });

  it("aligns 20 runs × 100,000 points on two x grids", () => {
    const n = 100_000;
    const series = Array.from({ length: 20 }, (_, k) => {
      const x = Array.from({ length: n }, (_, i) => i * (k % 2 ? 2 : 1)); // two different x grids
      const y = x.map((v) => Math.sin(v / 1000) + k);
      return { label: `run ${k}`, x, y };
    });
    const t0 = performance.now();
    const data = align(series.map((s) => ({ ...s, y: smooth(s.y, 0.6) })));
    const ms = performance.now() - t0;
    expect(data.length).toBe(21);
    expect(data[0].length).toBe(150_000); // 0..99,999 plus the even numbers up to 199,998
    // Its speed is not asserted here (a loaded machine is no clock); the time is printed for a look.
    console.log(`aligned 20 × 100,000 points in ${ms.toFixed(0)} ms`);
  });
});

describe("helpers", () => {
  it("drops values a log scale cannot show", () => {
    expect(positiveOnly([1, 0, -2, null, 3])).toEqual([1, null, null, null, 3]);
  });
  it("asks for about two points per pixel within bounds", () => {
    expect(pointsFor(800)).toBe(1600);
    expect(pointsFor(10)).toBe(200);
    expect(pointsFor(10_000)).toBe(4000);
    expect(pointsFor(1200, 20)).toBe(600);
    expect(pointsFor(4000, 20)).toBe(760);
  });
});

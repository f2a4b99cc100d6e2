import { describe, expect, it } from "vitest";
import { asNumber, cellText, compareCells, isMissing, isNumericColumn, nextTableSort, sortRows, truncationNote, type Cell } from "./datatable";

const col = (rows: Cell[][], i = 0) => rows.map((r) => r[i]);

describe("asNumber", () => {
  it("reads numbers and decimal text, not other text", () => {
    expect(asNumber(3)).toBe(3);
    expect(asNumber(" -2.5 ")).toBe(-2.5);
    expect(asNumber("1e-3")).toBe(0.001);
    expect(asNumber(".5")).toBe(0.5);
    expect(asNumber("inf")).toBe(Infinity);
    expect(asNumber("-Infinity")).toBe(-Infinity);
    for (const s of ["", "abc", "1,000", "0x10", "1.2.3", "12abc", "NaN", "\u0000", "1\u0000"]) expect(asNumber(s)).toBeNull();
    expect(asNumber(Number.NaN)).toBeNull();
    expect(asNumber(null)).toBeNull();
    expect(asNumber(true)).toBeNull();
  });
});

describe("sortRows", () => {
  const rows: Cell[][] = [["10"], ["9"], [2], ["b"], [null], ["100"], ["A"], [""], ["-1.5"], ["nan"]];

  it("sorts numbers as numbers (also numeric text), before text, missing cells last", () => {
    expect(col(sortRows(rows, { column: 0, desc: false }))).toEqual(["-1.5", 2, "9", "10", "100", "A", "b", null, "", "nan"]);
  });

  it("reverses for descending but keeps missing cells last", () => {
    expect(col(sortRows(rows, { column: 0, desc: true }))).toEqual(["b", "A", "100", "10", "9", 2, "-1.5", null, "", "nan"]);
  });

  it("keeps the file's order without a sort and does not change its input", () => {
    const copy = rows.map((r) => [...r]);
    expect(sortRows(rows, null)).toEqual(rows);
    sortRows(rows, { column: 0, desc: true });
    expect(rows).toEqual(copy);
  });

  it("orders text naturally and keeps ties in file order (a stable sort)", () => {
    const r: Cell[][] = [["run10", 1], ["run2", 2], ["Run2", 3], ["run1", 4]];
    expect(sortRows(r, { column: 0, desc: false }).map((x) => x[0])).toEqual(["run1", "Run2", "run2", "run10"]);
    const ties: Cell[][] = [[1, "a"], [0, "b"], [1, "c"], [0, "d"]];
    expect(sortRows(ties, { column: 0, desc: false }).map((x) => x[1])).toEqual(["b", "d", "a", "c"]);
    expect(sortRows(ties, { column: 0, desc: true }).map((x) => x[1])).toEqual(["a", "c", "b", "d"]);
  });

  it("compares integers beyond a float's precision exactly, and huge and tiny values", () => {
    const r: Cell[][] = [["12345678901234567891"], ["12345678901234567890"], ["1e308"], ["-1e308"], ["5e-324"], [0]];
    expect(col(sortRows(r, { column: 0, desc: false }))).toEqual(["-1e308", 0, "5e-324", "12345678901234567890", "12345678901234567891", "1e308"]);
  });

  it("copes with short rows, booleans, and odd text", () => {
    const r: Cell[][] = [["x", 3], ["y"], ["z", true], ["w", "\uD800"], ["v", "<script>"]];
    const sorted = sortRows(r, { column: 1, desc: false }).map((x) => x[0]);
    expect(sorted[0]).toBe("x"); // the number first
    expect(sorted[sorted.length - 1]).toBe("y"); // the missing cell last
    expect(sorted).toHaveLength(5);
  });

  it("sorts 20,000 rows", () => {
    const many: Cell[][] = Array.from({ length: 20_000 }, (_, i) => [String((i * 7919) % 20_000)]);
    const s = sortRows(many, { column: 0, desc: false });
    expect(s[0][0]).toBe("0");
    expect(s[19_999][0]).toBe("19999");
  });
});

describe("compareCells and isMissing", () => {
  it("treats equal numbers written differently as equal", () => {
    expect(compareCells("1.0", 1)).toBe(0);
    expect(compareCells("a", "a")).toBe(0);
    expect(Math.sign(compareCells("a", "B"))).toBe(-1);
  });
  it("calls null, empty or blank text and NaN missing", () => {
    expect([null, undefined, "", "  ", "NaN", Number.NaN].map(isMissing)).toEqual([true, true, true, true, true, true]);
    expect([0, "0", false, "x"].map(isMissing)).toEqual([false, false, false, false]);
  });
});

describe("header clicks", () => {
  it("go ascending, descending, then the file's order; another column starts ascending", () => {
    const a = nextTableSort(null, 2);
    expect(a).toEqual({ column: 2, desc: false });
    const d = nextTableSort(a, 2);
    expect(d).toEqual({ column: 2, desc: true });
    expect(nextTableSort(d, 2)).toBeNull();
    expect(nextTableSort(d, 0)).toEqual({ column: 0, desc: false });
  });
});

describe("cells", () => {
  it("knows numeric columns (missing cells do not count; an all-missing column is not numeric)", () => {
    const rows: Cell[][] = [[1, "a", null], ["2.5", "3", ""], [null, "x", null]];
    expect([0, 1, 2].map((i) => isNumericColumn(rows, i))).toEqual([true, false, false]);
  });
  it("shows values as they came", () => {
    expect(cellText(0.1 + 0.2)).toBe("0.30000000000000004");
    expect(cellText(null)).toBe("");
    expect(cellText(false)).toBe("false");
    expect(cellText("<b>")).toBe("<b>");
  });
  it("says when only the first rows are shown", () => {
    expect(truncationNote(1000, 25000, true)).toBe("first 1,000 of 25,000 rows");
    expect(truncationNote(3, 3, false)).toBeNull();
  });
});

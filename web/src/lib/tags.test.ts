import { describe, expect, it } from "vitest";
import { addTagFilter, filterKey, normalizeTagFilter, parseTag, removeTagFilter, tagFilter, tagLabel } from "./tags";

describe("project tags", () => {
  it("reads a key/value tag with its value and a plain label by its key", () => {
    expect(tagLabel("problem", "classification")).toBe("problem: classification");
    expect(tagLabel("benchmark", "")).toBe("benchmark");
    expect(tagFilter("problem", "classification")).toBe("problem:classification");
    expect(tagFilter("benchmark", "")).toBe("benchmark");
    expect(tagFilter("data", "mnist:v2")).toBe("data:mnist:v2");
  });

  it("turns what was typed into the server's KEY or KEY:VALUE form", () => {
    expect(normalizeTagFilter("  problem  ")).toBe("problem");
    expect(normalizeTagFilter("problem: classification")).toBe("problem:classification");
    expect(normalizeTagFilter("problem = classification")).toBe("problem:classification");
    expect(normalizeTagFilter("url=http://x")).toBe("url:http://x"); // the first separator ends the key
    expect(normalizeTagFilter("note:a=b")).toBe("note:a=b");
    expect(normalizeTagFilter("gpu:")).toBe("gpu:");
    expect(normalizeTagFilter("   ")).toBeNull();
    expect(normalizeTagFilter("bad key")).toBe("bad key"); // the server refuses it, with its message
  });

  it("keeps one filter per key and removes exactly the one asked", () => {
    expect(filterKey("problem:classification")).toBe("problem");
    expect(filterKey("problem=x")).toBe("problem");
    expect(filterKey("benchmark")).toBe("benchmark");
    let f = addTagFilter([], "problem:classification");
    f = addTagFilter(f, "benchmark");
    expect(f).toEqual(["problem:classification", "benchmark"]);
    expect(addTagFilter(f, "problem:regression")).toEqual(["benchmark", "problem:regression"]);
    expect(addTagFilter(f, "benchmark")).toEqual(["problem:classification", "benchmark"]);
    expect(removeTagFilter(f, "benchmark")).toEqual(["problem:classification"]);
    expect(removeTagFilter(f, "missing")).toEqual(f);
  });

  it("reads a tag typed to add to a project", () => {
    expect(parseTag(" problem: classification ")).toEqual({ key: "problem", value: "classification" });
    expect(parseTag("problem=regression")).toEqual({ key: "problem", value: "regression" });
    expect(parseTag("benchmark")).toEqual({ key: "benchmark", value: "" });
    expect(parseTag("data: mnist:v2")).toEqual({ key: "data", value: "mnist:v2" }); // the first separator ends the key
    expect(parseTag("   ")).toBeNull();
  });
});

import { describe, expect, it } from "vitest";
import { extension, formatBytes, looksBinary, previewKind } from "./preview";

describe("previewKind", () => {
  it("previews tables, Markdown, text and pictures by their extension, in any case", () => {
    expect(previewKind("results/preds.csv")).toBe("table");
    expect(previewKind("a.TSV")).toBe("table");
    expect(previewKind("media/tables/t.parquet")).toBe("table");
    expect(previewKind("README.md")).toBe("markdown");
    for (const p of ["train.log", "cfg.yaml", "c.yml", "m.json", "train.py", "notes.txt", "nb.ipynb", "Dockerfile", ".gitignore"]) {
      expect(previewKind(p)).toBe("text");
    }
    for (const p of ["a.png", "b.JPG", "c.jpeg", "d.gif", "e.webp"]) expect(previewKind(p)).toBe("image");
  });

  it("shows pages a browser could run code from (HTML, SVG) only sandboxed, XML only as its text", () => {
    for (const p of ["report.html", "nb/train.HTM", "plot.svg", "x.SVG"]) expect(previewKind(p)).toBe("sandboxed");
    for (const p of ["feed.xml", "page.xhtml"]) expect(previewKind(p)).toBe("text");
    for (const p of ["a.svgz", "saved.mhtml"]) expect(previewKind(p)).toBe("download");
    // the last extension decides: a name cannot pass an SVG off as text, nor the other way round
    expect(previewKind("evil.txt.svg")).toBe("sandboxed");
    expect(previewKind("evil.svg.txt")).toBe("text");
    expect(previewKind("dir.html/file.txt")).toBe("text");
  });

  it("offers a download for everything else", () => {
    for (const p of ["model.pt", "weights.bin", "data.csv.gz", "noext", "trailing.", "a/b/", "x.pdf", "", "evil.png\u0000.html"]) {
      expect(previewKind(p)).toBe(p.endsWith(".html") ? "sandboxed" : "download");
    }
  });
});

describe("extension", () => {
  it("takes the file name's last extension, lower-case", () => {
    expect(extension("a/b.c/D.TXT")).toBe("txt");
    expect(extension("a/b.c/file")).toBe("");
    expect(extension("x.")).toBe("");
  });
});

describe("looksBinary and formatBytes", () => {
  it("calls bytes with a NUL near the start binary", () => {
    expect(looksBinary(new TextEncoder().encode("hello\nworld"))).toBe(false);
    expect(looksBinary(new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0, 0]))).toBe(true);
    expect(looksBinary(new Uint8Array(0))).toBe(false);
  });
  it("writes sizes for people", () => {
    expect(formatBytes(812)).toBe("812 B");
    expect(formatBytes(1536)).toBe("1.5 KiB");
    expect(formatBytes(12 * 1024 * 1024)).toBe("12.0 MiB");
    expect(formatBytes(2 ** 60)).toBe("1048576.0 TiB");
  });
});

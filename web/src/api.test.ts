// The API client against a stand-in for fetch (there is no server in a unit test; the browser
// test tests/e2e/test_ui_auth.py drives the real one): CSRF header, 401 handling, errors, 204.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { api, ApiError, onUnauthorized, request } from "./api";
import { describeError } from "./components/Confirm";

interface Call { url: string; init: RequestInit }
let calls: Call[];

function answer(status: number, body?: unknown) {
  vi.stubGlobal("fetch", vi.fn(async (url: string, init: RequestInit) => {
    calls.push({ url, init });
    return new Response(body === undefined ? null : typeof body === "string" ? body : JSON.stringify(body), { status });
  }));
}

const headers = (i = 0) => calls[i].init.headers as Record<string, string>;

beforeEach(() => {
  calls = [];
  vi.stubGlobal("document", { cookie: "theme=dark; runyard_csrf=csrf-abc" });
});
afterEach(() => {
  vi.unstubAllGlobals();
  onUnauthorized(null);
});

describe("request", () => {
  it("sends the CSRF cookie's value as X-CSRF-Token with writes, with the cookies, and not with reads", async () => {
    answer(200, { id: 3, status: "canceled" });
    await api.cancelRun(3);
    await api.run(3);
    expect(calls[0].url).toBe("/api/v1/runs/3/cancel");
    expect(calls[0].init.method).toBe("POST");
    expect(calls[0].init.credentials).toBe("same-origin");
    expect(headers(0)["X-CSRF-Token"]).toBe("csrf-abc");
    expect(headers(1)["X-CSRF-Token"]).toBeUndefined();
  });

  it("sends no CSRF header without the cookie (single-user local mode)", async () => {
    vi.stubGlobal("document", { cookie: "" });
    answer(200, {});
    await api.share("p", "bob", "viewer");
    expect(headers()["X-CSRF-Token"]).toBeUndefined();
    expect(calls[0].init.method).toBe("PUT");
    expect(calls[0].url).toBe("/api/v1/projects/p/members/bob");
    expect(JSON.parse(calls[0].init.body as string)).toEqual({ role: "viewer" });
  });

  it("calls the unauthorized handler on a 401 and still throws the server's error", async () => {
    const seen: ApiError[] = [];
    onUnauthorized((e) => seen.push(e));
    answer(401, { code: "unauthorized", message: "This server requires sign-in.", hint: "Run `runyard login URL`." });
    const err = await api.projects().catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err.status).toBe(401);
    expect(err.message).toBe("This server requires sign-in.");
    expect(seen.map((e) => e.status)).toEqual([401]);
  });

  it("does not send a wrong password's 401 to the handler: the login page shows it", async () => {
    const seen: ApiError[] = [];
    onUnauthorized((e) => seen.push(e));
    answer(401, { code: "unauthorized", message: "Wrong username or password, or the account is disabled.", hint: "Check both." });
    const err = await api.login("alice", "nope").catch((e) => e);
    expect(err.message).toMatch(/Wrong username or password/);
    expect(err.hint).toBe("Check both.");
    expect(seen).toEqual([]);
    expect(JSON.parse(calls[0].init.body as string)).toEqual({ username: "alice", password: "nope" });
  });

  it("keeps a 403's message and hint and does not sign out", async () => {
    const seen: ApiError[] = [];
    onUnauthorized((e) => seen.push(e));
    answer(403, { code: "forbidden", message: "bob is a viewer of project 'p'; this needs editor.", hint: "Ask an owner." });
    const err = await api.cancelRun(1).catch((e) => e);
    expect([err.status, err.code, err.hint]).toEqual([403, "forbidden", "Ask an owner."]);
    expect(seen).toEqual([]);
  });

  it("answers undefined for 204 No Content (removing a member)", async () => {
    answer(204);
    await expect(api.unshare("my proj", "bob")).resolves.toBeUndefined();
    expect(calls[0].url).toBe("/api/v1/projects/my%20proj/members/bob");
    expect(calls[0].init.method).toBe("DELETE");
  });

  it("turns an answer that is not JSON into an error naming the request", async () => {
    answer(502, "<html>bad gateway</html>");
    const err = (await request("GET", "/me").catch((e: unknown) => e)) as ApiError;
    expect(err.status).toBe(502);
    expect(err.message).toBe("GET /me answered 502");
  });

  it("changes visibility with PATCH", async () => {
    answer(200, { name: "p", visibility: "public" });
    await api.setVisibility("p", "public");
    expect(calls[0].init.method).toBe("PATCH");
    expect(JSON.parse(calls[0].init.body as string)).toEqual({ visibility: "public" });
    expect(headers()["X-CSRF-Token"]).toBe("csrf-abc");
  });
});

describe("describeError", () => {
  it("says plainly that a 403 is not allowed, with the server's hint", () => {
    const e = new ApiError(403, "forbidden", "bob is a viewer of project 'p'; this needs editor.", "Ask an owner of the project.");
    expect(describeError(e)).toBe("Not allowed: bob is a viewer of project 'p'; this needs editor. Ask an owner of the project.");
  });
  it("keeps other errors' messages as they are", () => {
    expect(describeError(new ApiError(404, "not_found", "No run with id 9.", "List runs."))).toBe("No run with id 9.");
    expect(describeError(new Error("network down"))).toBe("network down");
  });
});

describe("projects", () => {
  it("asks the server to filter by tag, one tag parameter per filter", async () => {
    answer(200, { items: [] });
    await api.projects("dig", ["problem:classification", "benchmark"]);
    await api.projects();
    expect(calls[0].url).toBe("/api/v1/projects?q=dig&tag=problem%3Aclassification&tag=benchmark");
    expect(calls[1].url).toBe("/api/v1/projects");
  });
});

describe("run media", () => {
  it("asks for images (one key), tables and a table's first rows with the path as a query parameter", async () => {
    answer(200, { items: [] });
    await api.images(4, "val/pred");
    await api.images(4);
    await api.tables(4);
    await api.tableContent(4, "results/a b&c.csv", 1000);
    expect(calls.map((c) => c.url)).toEqual([
      "/api/v1/runs/4/images?key=val%2Fpred",
      "/api/v1/runs/4/images",
      "/api/v1/runs/4/tables",
      "/api/v1/runs/4/tables/content?path=results%2Fa+b%26c.csv&limit=1000",
    ]);
  });

  it("saves a note with PUT, the CSRF header and the text as JSON", async () => {
    answer(200, { text: "# hi", updated_at: "2026-12-07T10:00:00Z", updated_by: "alice" });
    const n = await api.setNote(9, "# hi\n<script>x</script>");
    expect(n.updated_by).toBe("alice");
    expect(calls[0].url).toBe("/api/v1/runs/9/note");
    expect(calls[0].init.method).toBe("PUT");
    expect(headers()["X-CSRF-Token"]).toBe("csrf-abc");
    expect(JSON.parse(calls[0].init.body as string)).toEqual({ text: "# hi\n<script>x</script>" });
  });

  it("keeps a refused note's 403 message and hint", async () => {
    answer(403, { code: "forbidden", message: "bob is a viewer of project 'p'; this needs editor.", hint: "Ask an owner." });
    const err = await api.setNote(9, "x").catch((e) => e);
    expect([err.status, err.message, err.hint]).toEqual([403, "bob is a viewer of project 'p'; this needs editor.", "Ask an owner."]);
  });
});

describe("artifactText", () => {
  it("reads a text artifact through ?view=true with the path's parts encoded", async () => {
    answer(200, "line 1\nline 2\n");
    const t = await api.artifactText(3, "logs/a b#1.txt");
    expect(calls[0].url).toBe("/api/v1/runs/3/artifacts/logs/a%20b%231.txt?view=true");
    expect(calls[0].init.credentials).toBe("same-origin");
    expect(t).toEqual({ text: "line 1\nline 2\n", bytes: 14, truncated: false, binary: false });
  });

  it("stops at the byte limit, without half a character, and says it did", async () => {
    answer(200, "ab\u00e9cd"); // é is 2 bytes: a b [c3 a9] c d
    const t = await api.artifactText(3, "x.txt", 3);
    expect(t).toEqual({ text: "ab", bytes: 3, truncated: true, binary: false });
    const whole = await api.artifactText(3, "x.txt", 6);
    expect(whole).toMatchObject({ text: "ab\u00e9cd", truncated: false });
  });

  it("stops reading a long body once it has enough", async () => {
    let pulled = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(c) { pulled++; c.enqueue(new Uint8Array(1024).fill(0x61)); },
    });
    vi.stubGlobal("fetch", vi.fn(async () => new Response(body, { status: 200 })));
    const t = await api.artifactText(3, "big.log", 4096);
    expect(t.bytes).toBe(4096);
    expect(t.truncated).toBe(true);
    expect(pulled).toBeLessThan(10);
  });

  it("tells binary content from text", async () => {
    answer(200, "PK\u0000\u0003");
    expect((await api.artifactText(3, "model.txt")).binary).toBe(true);
  });

  it("turns a refused or missing file into the server's error", async () => {
    answer(404, { code: "not_found", message: "Run 3 has no artifact 'x.txt'.", hint: "List them with `runyard info 3`." });
    const err = await api.artifactText(3, "x.txt").catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect([err.status, err.message]).toEqual([404, "Run 3 has no artifact 'x.txt'."]);
  });
});

describe("models, datasets and lineage", () => {
  it("encodes names in paths and sends alias moves and archives as writes with the CSRF token", async () => {
    answer(200, { alias: "production", version: 2, from_version: 1 });
    await api.setModelAlias("my proj", "a.b-c", "production", 2);
    await api.archiveModelVersion("p", "m", 3);
    await api.archiveModelVersion("p", "m", 3, true);
    await api.deleteModelAlias("p", "m", "staging");
    expect(calls.map((c) => [c.init.method, c.url])).toEqual([
      ["PUT", "/api/v1/projects/my%20proj/models/a.b-c/aliases/production"],
      ["POST", "/api/v1/projects/p/models/m/versions/3/archive"],
      ["POST", "/api/v1/projects/p/models/m/versions/3/unarchive"],
      ["DELETE", "/api/v1/projects/p/models/m/aliases/staging"],
    ]);
    expect(JSON.parse(calls[0].init.body as string)).toEqual({ version: 2 });
    expect(headers(0)["X-CSRF-Token"]).toBe("csrf-abc");
  });

  it("reads versions, diffs and lineage with their query", async () => {
    answer(200, { items: [] });
    await api.models("p", "dig");
    await api.datasets("p");
    await api.datasetVersion("p", "digits", "latest");
    await api.datasetDiff("p", "digits", 1, 2);
    await api.lineage("models:/p/digits@production");
    await api.runDatasets(7);
    expect(calls.map((c) => c.url)).toEqual([
      "/api/v1/projects/p/models?q=dig",
      "/api/v1/projects/p/datasets",
      "/api/v1/projects/p/datasets/digits/versions/latest",
      "/api/v1/projects/p/datasets/digits/diff?a=1&b=2",
      "/api/v1/lineage?uri=models%3A%2Fp%2Fdigits%40production",
      "/api/v1/runs/7/datasets",
    ]);
    expect(calls.every((c) => c.init.method === "GET")).toBe(true);
  });
});

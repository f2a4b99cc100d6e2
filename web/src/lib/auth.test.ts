import { describe, expect, it } from "vitest";
import { atLeast, csrfHeaders, loginUrl, readCookie, roleIn, safeNext, type Me, type Members } from "./auth";

const user = (username: string, is_admin = false): Me => ({
  mode: "auth", kind: "user", user: { id: 1, username, email: "", is_admin, disabled: false, created_at: 0 },
  run_id: null, is_admin, via: "cookie", token_id: 7,
});
const members = (owner: string | null, visibility: string, items: [string, "viewer" | "editor" | "owner"][]): Members =>
  ({ owner, visibility, items: items.map(([username, role]) => ({ username, role, created_at: 0 })) });

describe("readCookie", () => {
  it("finds one cookie among several, trimmed and decoded", () => {
    expect(readCookie("a=1; runyard_csrf=ab%3Dcd; b=2", "runyard_csrf")).toBe("ab=cd");
    expect(readCookie("runyard_csrf=x", "runyard_csrf")).toBe("x");
  });
  it("answers null for a missing cookie, an empty string, or a name that is only a prefix", () => {
    expect(readCookie("", "runyard_csrf")).toBeNull();
    expect(readCookie("runyard_csrf_old=1; other", "runyard_csrf")).toBeNull();
  });
  it("keeps a value that is not valid percent-encoding as it is", () => {
    expect(readCookie("runyard_csrf=%E0%A4%A", "runyard_csrf")).toBe("%E0%A4%A");
  });
});

describe("csrfHeaders", () => {
  const jar = "runyard_session_hint=1; runyard_csrf=tok123";
  it("sends the token with every write", () => {
    for (const m of ["POST", "PUT", "PATCH", "DELETE", "post"]) expect(csrfHeaders(m, jar)).toEqual({ "X-CSRF-Token": "tok123" });
  });
  it("sends nothing with reads", () => {
    for (const m of ["GET", "HEAD", "OPTIONS"]) expect(csrfHeaders(m, jar)).toEqual({});
  });
  it("sends nothing without a CSRF cookie (local mode, or signed out)", () => {
    expect(csrfHeaders("POST", "a=b")).toEqual({});
  });
});

describe("safeNext and loginUrl", () => {
  it("keeps paths of this app", () => {
    expect(safeNext("/projects/x?sort=name%20desc")).toBe("/projects/x?sort=name%20desc");
    expect(loginUrl("/runs/3?tab=logs")).toBe("/login?next=%2Fruns%2F3%3Ftab%3Dlogs");
  });
  it("refuses other sites, relative paths and the login page itself", () => {
    for (const bad of [null, undefined, "", "https://evil.example/", "//evil.example/x", "/\\evil.example", "runs/3", "/login", "/login?next=/x"]) {
      expect(safeNext(bad)).toBe("/");
    }
    expect(loginUrl("/")).toBe("/login");
    expect(loginUrl("/login?next=%2Fx")).toBe("/login");
  });
});

describe("roleIn", () => {
  it("gives the local user and admins the owner role", () => {
    expect(roleIn({ ...user("x"), mode: "local", kind: "local", user: null }, undefined)).toBe("owner");
    expect(roleIn(user("root", true), members("alice", "private", []))).toBe("owner");
  });
  it("gives the project's owner the owner role and members their role", () => {
    const m = members("alice", "private", [["bob", "viewer"], ["carol", "editor"]]);
    expect(roleIn(user("alice"), m)).toBe("owner");
    expect(roleIn(user("bob"), m)).toBe("viewer");
    expect(roleIn(user("carol"), m)).toBe("editor");
  });
  it("makes other users viewers of public projects only", () => {
    expect(roleIn(user("dave"), members("alice", "public", []))).toBe("viewer");
    expect(roleIn(user("dave"), members("alice", "private", []))).toBeNull();
  });
  it("is null while the caller or the members are unknown", () => {
    expect(roleIn(undefined, members("alice", "public", []))).toBeNull();
    expect(roleIn(user("bob"), undefined)).toBeNull();
  });
  it("orders roles", () => {
    expect(atLeast("owner", "editor")).toBe(true);
    expect(atLeast("editor", "editor")).toBe(true);
    expect(atLeast("viewer", "editor")).toBe(false);
    expect(atLeast(null, "viewer")).toBe(false);
  });
});

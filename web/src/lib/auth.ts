// Sign-in logic without React: the CSRF header of cookie-authenticated writes, where to go after
// signing in, and a user's role in a project (what the UI lets them do; the server decides).

/** The readable cookie holding the session's CSRF token, and the header writes send it in (runyard/server/_auth.py). */
export const CSRF_COOKIE = "runyard_csrf";
export const CSRF_HEADER = "X-CSRF-Token";
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

export type Role = "viewer" | "editor" | "owner";
export const ROLES: Role[] = ["viewer", "editor", "owner"];
const RANK: Record<Role, number> = { viewer: 1, editor: 2, owner: 3 };

export interface User { id: number; username: string; email: string; is_admin: boolean; disabled: boolean; created_at: number }
/** `GET /api/v1/me`: `mode` "local" is single-user mode (no sign-in, no users); "auth" needs sign-in. */
export interface Me {
  mode: "local" | "auth"; kind: "local" | "user" | "run" | "anonymous"; user: User | null; run_id: number | null;
  is_admin: boolean; via: "none" | "token" | "cookie"; token_id: number | null;
}
export interface Member { username: string; role: Role; created_at: number }
export interface Members { owner: string | null; visibility: string; items: Member[] }

/** One cookie's value from a `document.cookie` string (null when absent). */
export function readCookie(cookies: string, name: string): string | null {
  for (const part of cookies.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) {
      const raw = part.slice(eq + 1).trim();
      try {
        return decodeURIComponent(raw);
      } catch {
        return raw;
      }
    }
  }
  return null;
}

/** The headers a request needs against CSRF: the token for writes (POST, PUT, PATCH, DELETE) when a session cookie set one. */
export function csrfHeaders(method: string, cookies: string): Record<string, string> {
  if (SAFE_METHODS.has(method.toUpperCase())) return {};
  const token = readCookie(cookies, CSRF_COOKIE);
  return token ? { [CSRF_HEADER]: token } : {};
}

/** Where to return after signing in: a path of this app only (never another site, never the login page itself). */
export function safeNext(next: string | null | undefined): string {
  if (!next || !next.startsWith("/") || next.startsWith("//") || next.startsWith("/\\")) return "/";
  if (next === "/login" || next.startsWith("/login?") || next.startsWith("/login#")) return "/";
  return next;
}

/** The login page's URL that comes back to `here` (path + query + hash) after signing in. */
export function loginUrl(here: string): string {
  const next = safeNext(here);
  return next === "/" ? "/login" : `/login?next=${encodeURIComponent(next)}`;
}

/**
 * The signed-in caller's role in a project, as the server computes it: admins and the local
 * user own everything; then the owner, a member's role, viewer of a public project; else none.
 */
export function roleIn(me: Me | null | undefined, members: Members | null | undefined): Role | null {
  if (!me) return null;
  if (me.mode === "local" || me.kind === "local" || me.is_admin) return "owner";
  if (!me.user || !members) return null;
  if (members.owner === me.user.username) return "owner";
  const m = members.items.find((x) => x.username === me.user!.username);
  if (m) return m.role;
  return members.visibility === "public" ? "viewer" : null;
}

/** Whether `role` is at least `need`. */
export function atLeast(role: Role | null | undefined, need: Role): boolean {
  return role != null && RANK[role] >= RANK[need];
}

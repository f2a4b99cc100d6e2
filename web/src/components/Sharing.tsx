// A project's sharing: owner, visibility and members with their roles. Owners and admins change
// them (add by username, change a role, remove, private/public); everyone else reads them.
import { useState, type FormEvent } from "react";
import { api } from "../api";
import { atLeast, ROLES, type Role } from "../lib/auth";
import type { ProjectAccess } from "../lib/session";
import { ErrorNote } from "./Confirm";

export function SharingPanel({ project, access }: { project: string; access: ProjectAccess }) {
  const { members, membersError, role, reload } = access;
  const manage = atLeast(role, "owner");
  const [username, setUsername] = useState("");
  const [newRole, setNewRole] = useState<Role>("viewer");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(null);
  const [done, setDone] = useState<string | null>(null);

  const act = async (what: () => Promise<unknown>, message: string) => {
    setBusy(true);
    setError(null);
    setDone(null);
    try {
      await what();
      setDone(message);
    } catch (e) {
      setError(e as Error);
    }
    setBusy(false);
    reload();
  };
  const add = (ev: FormEvent) => {
    ev.preventDefault();
    const who = username.trim();
    if (!who) return;
    act(async () => { await api.share(project, who, newRole); setUsername(""); }, `Shared with ${who} as ${newRole}.`);
  };

  return (
    <section className="sharing" data-testid="sharing">
      <h2>Sharing</h2>
      <ErrorNote error={membersError} />
      {members && (
        <>
          <div className="controls">
            <span>owner: <strong data-testid="project-owner">{members.owner ?? "—"}</strong></span>
            {manage ? (
              <label>visibility: <select aria-label="visibility" value={members.visibility} disabled={busy}
                onChange={(e) => {
                  const v = e.target.value as "private" | "public";
                  act(() => api.setVisibility(project, v), `The project is ${v} now.`);
                }}>
                <option value="private">private (owner and members)</option>
                <option value="public">public (every signed-in user may read it)</option>
              </select></label>
            ) : <span>visibility: <strong data-testid="project-visibility">{members.visibility}</strong></span>}
            {!manage && role && <span className="muted">you are a{role === "owner" ? "n" : ""} {role}; owners change the sharing</span>}
          </div>
          <table className="list" data-testid="members">
            <thead><tr><th>member</th><th>role</th>{manage && <th></th>}</tr></thead>
            <tbody>
              {members.items.map((m) => (
                <tr key={m.username} data-member={m.username}>
                  <td>{m.username}</td>
                  <td>{manage ? (
                    <select aria-label={`role of ${m.username}`} value={m.role} disabled={busy}
                      onChange={(e) => {
                        const r = e.target.value as Role;
                        act(() => api.share(project, m.username, r), `${m.username} is ${r} now.`);
                      }}>
                      {ROLES.map((r) => <option key={r} value={r}>{r}</option>)}
                    </select>
                  ) : m.role}</td>
                  {manage && <td><button className="danger" disabled={busy} aria-label={`remove ${m.username}`}
                    onClick={() => act(() => api.unshare(project, m.username), `${m.username} was removed.`)}>remove</button></td>}
                </tr>
              ))}
              {members.items.length === 0 && <tr><td colSpan={manage ? 3 : 2} className="muted">Not shared with anyone.</td></tr>}
            </tbody>
          </table>
          {manage && (
            <form className="controls" onSubmit={add} aria-label="add a member">
              <input placeholder="username" aria-label="username to share with" value={username} onChange={(e) => setUsername(e.target.value)} />
              <select aria-label="role to give" value={newRole} onChange={(e) => setNewRole(e.target.value as Role)}>
                {ROLES.map((r) => <option key={r} value={r}>{r}</option>)}
              </select>
              <button type="submit" disabled={busy || !username.trim()}>Share</button>
            </form>
          )}
          {done && <div className="muted" role="status">{done}</div>}
          <ErrorNote error={error} />
        </>
      )}
    </section>
  );
}

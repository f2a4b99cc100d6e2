// Who is signed in (GET /api/v1/me), for the header, the login page and the pages' buttons.
import { createContext, useCallback, useContext, useEffect, useState, type ReactNode } from "react";
import { api, ApiError } from "../api";
import { atLeast, roleIn, type Me, type Members, type Role } from "./auth";
import { usePoll } from "./hooks";

export interface Session {
  /** undefined while loading; null when nobody is signed in (or the server could not be asked). */
  me: Me | null | undefined;
  error: Error | null;
  refresh: () => Promise<Me | null>;
  /** Forget the caller (after signing out) without asking the server. */
  clear: () => void;
}

const SessionContext = createContext<Session>({ me: undefined, error: null, refresh: async () => null, clear: () => {} });

export function SessionProvider({ children }: { children: ReactNode }) {
  const [me, setMe] = useState<Me | null | undefined>(undefined);
  const [error, setError] = useState<Error | null>(null);
  const refresh = useCallback(async () => {
    try {
      const m = await api.me();
      setMe(m);
      setError(null);
      return m;
    } catch (e) {
      setMe(null);
      // A 401 is "not signed in" (the app goes to the login page), not an error to show.
      setError(e instanceof ApiError && e.status === 401 ? null : (e as Error));
      return null;
    }
  }, []);
  const clear = useCallback(() => setMe(null), []);
  useEffect(() => { refresh(); }, [refresh]);
  return <SessionContext.Provider value={{ me, error, refresh, clear }}>{children}</SessionContext.Provider>;
}

export const useSession = () => useContext(SessionContext);

export interface ProjectAccess {
  /** The caller's role in the project (null: unknown yet, or none). */
  role: Role | null;
  /** Whether the caller may change runs (editor or more); true while unknown, so the server's answer decides. */
  canWrite: boolean;
  members: Members | undefined;
  membersError: Error | null;
  reload: () => void;
}

/** The caller's access to a project, from its members list (which every viewer may read). */
export function useProjectAccess(project: string | null | undefined, intervalMs = 0): ProjectAccess {
  const { me } = useSession();
  const needMembers = !!project && me?.mode === "auth";
  const members = usePoll(
    () => (needMembers ? api.members(project!) : Promise.resolve(undefined)),
    [project, needMembers], intervalMs, intervalMs > 0,
  );
  const role = me?.mode === "local" ? "owner" : roleIn(me, members.data);
  const known = me?.mode === "local" || (me != null && members.data !== undefined);
  return { role, canWrite: !known || atLeast(role, "editor"), members: members.data, membersError: members.error, reload: members.reload };
}

// A run's note: Markdown (rendered under the descriptions' allow-list) that its editors change
// here (PUT /runs/{id}/note) and the SDK writes with runyard.note(...). Viewers only read it.
import { useState } from "react";
import { api, type Note } from "../api";
import { atLeast, type Role } from "../lib/auth";
import { usePoll } from "../lib/hooks";
import { ErrorNote } from "./Confirm";
import { LazyMarkdown as Markdown } from "./LazyMarkdown";

/** The server's limit on a note's length (characters). */
export const NOTE_MAX_CHARS = 100_000;

function edited(note: Note): string | null {
  if (!note.updated_at) return null;
  const t = new Date(note.updated_at);
  const when = Number.isNaN(t.getTime()) ? note.updated_at : t.toLocaleString();
  return note.updated_by ? `edited by ${note.updated_by}, ${when}` : `edited ${when}`;
}

export function RunNote({ runId, role, live }: { runId: number; role: Role | null; live: boolean }) {
  // The Edit button shows once the role is known to allow it; the server decides in any case.
  const canEdit = atLeast(role, "editor");
  const note = usePoll(() => api.note(runId), [runId], undefined, live);
  const [draft, setDraft] = useState<string | null>(null); // null: not editing
  const [saving, setSaving] = useState(false);
  const [error, setError] = useState<Error | null>(null);
  const [saved, setSaved] = useState<Note | null>(null);
  // The newer of the last poll and our own save (a poll started before the save may answer after it).
  const n = saved && (!note.data || (note.data.updated_at ?? "") <= (saved.updated_at ?? "")) ? saved : note.data;
  const text = n?.text ?? "";
  if (!n && !note.error) return null;
  if (!n) return <section><h2>Note</h2><ErrorNote error={note.error} /></section>;
  if (!text && !canEdit && draft === null) return null;

  const save = async () => {
    if (draft === null) return;
    setSaving(true);
    setError(null);
    try {
      setSaved(await api.setNote(runId, draft));
      setDraft(null);
      note.reload();
    } catch (e) {
      setError(e as Error);
    } finally {
      setSaving(false);
    }
  };
  const tooLong = draft !== null && draft.length > NOTE_MAX_CHARS;

  return (
    <section className="note" data-testid="run-note" data-role={role ?? ""}>
      <div className="controls">
        <h2>Note</h2>
        {edited(n) && <span className="muted" data-testid="note-edited">{edited(n)}</span>}
        {canEdit && draft === null && (
          <button type="button" onClick={() => { setDraft(text); setError(null); }}>{text ? "Edit note" : "Add a note"}</button>
        )}
      </div>
      {draft === null ? (
        text ? <Markdown text={text} /> : <p className="muted">No note yet.</p>
      ) : (
        <div className="noteedit">
          <textarea aria-label="note (Markdown)" value={draft} rows={Math.min(30, Math.max(6, draft.split("\n").length + 1))}
            onChange={(e) => setDraft(e.target.value)} disabled={saving} />
          <div className="controls">
            <button type="button" onClick={save} disabled={saving || tooLong}>{saving ? "Saving…" : "Save"}</button>
            <button type="button" onClick={() => { setDraft(null); setError(null); }} disabled={saving}>Cancel</button>
            <span className={tooLong ? "error" : "muted"}>
              {draft.length.toLocaleString("en-US")} / {NOTE_MAX_CHARS.toLocaleString("en-US")} characters{tooLong ? ": too long to save" : ""}
            </span>
            <span className="muted">Markdown; raw HTML shows as text</span>
          </div>
        </div>
      )}
      <ErrorNote error={error} />
    </section>
  );
}

// A project's tags on its page: shown to everyone, added and removed by its editors (owners,
// editors, admins, the local user). Each tag links to the Projects page filtered by it.
import { useState, type FormEvent } from "react";
import { Link } from "react-router-dom";
import { api } from "../api";
import { parseTag, tagFilter, tagLabel } from "../lib/tags";
import { ErrorNote } from "./Confirm";

export function ProjectTags({ project, tags, canEdit, onChange }: {
  project: string; tags: Record<string, string>; canEdit: boolean; onChange: () => void;
}) {
  const [text, setText] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(null);

  const act = async (what: () => Promise<unknown>) => {
    setBusy(true);
    setError(null);
    try {
      await what();
      onChange();
      return true;
    } catch (e) {
      setError(e as Error);
      return false;
    } finally {
      setBusy(false);
    }
  };
  const add = async (ev: FormEvent) => {
    ev.preventDefault();
    const tag = parseTag(text);
    if (!tag) return;
    if (await act(() => api.setProjectTags(project, { [tag.key]: tag.value }))) setText("");
  };
  const entries = Object.entries(tags).sort(([a], [b]) => a.localeCompare(b));

  return (
    <div className="controls" data-testid="project-tags">
      <span className="muted">tags:</span>
      {entries.length === 0 && <span className="muted">none</span>}
      {entries.map(([key, value]) => (
        <span key={key} className="tag-chip" data-tag={tagFilter(key, value)}>
          <Link to={`/?tag=${encodeURIComponent(tagFilter(key, value))}`}>{tagLabel(key, value)}</Link>
          {canEdit && (
            <button type="button" className="link" aria-label={`remove tag ${key}`} disabled={busy}
              onClick={() => act(() => api.removeProjectTag(project, key))}>×</button>
          )}
        </span>
      ))}
      {canEdit && (
        <form onSubmit={add} className="inline">
          <input aria-label="add a tag" placeholder="key: value, or a label" value={text} disabled={busy}
            onChange={(e) => setText(e.target.value)} />
          <button type="submit" disabled={busy || !text.trim()}>Add tag</button>
        </form>
      )}
      <ErrorNote error={error} />
    </div>
  );
}

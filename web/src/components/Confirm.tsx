// A button that asks before acting (cancelling a run or an experiment), and how errors are shown.
import { useState } from "react";

export function ConfirmButton({ label, question, confirmLabel, onConfirm, disabled, title }: {
  label: string; question: string; confirmLabel: string; onConfirm: () => Promise<unknown>; disabled?: boolean; title?: string;
}) {
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(null);
  if (!asking) {
    return (
      <span>
        <button className="danger" disabled={disabled} title={title} onClick={() => { setAsking(true); setError(null); }}>{label}</button>
        {error && <span className="error" role="alert"> {describeError(error)}</span>}
      </span>
    );
  }
  return (
    <span className="confirm" role="alertdialog">
      {question}{" "}
      <button className="danger" disabled={busy} onClick={async () => {
        setBusy(true);
        try {
          await onConfirm();
        } catch (e) {
          setError(e as Error);
        }
        setBusy(false);
        setAsking(false);
      }}>{confirmLabel}</button>{" "}
      <button onClick={() => setAsking(false)}>Keep</button>
    </span>
  );
}

/** What went wrong, in one line: a 403 says plainly that the user may not do it, with the server's hint. */
export function describeError(error: Error): string {
  const { status, hint } = error as { status?: number; hint?: string | null };
  const text = status === 403 ? `Not allowed: ${error.message}` : error.message;
  return hint && status === 403 ? `${text} ${hint}` : text;
}

export function ErrorNote({ error }: { error: Error | null }) {
  if (!error) return null;
  const { status, hint } = error as { status?: number; hint?: string | null };
  return (
    <div className="error" role="alert" data-status={status ?? ""}>
      {status === 403 ? <strong>Not allowed: </strong> : null}{error.message}{hint ? <div className="hint">{hint}</div> : null}
    </div>
  );
}

export function StatusBadge({ status }: { status: string }) {
  return <span className={`status status-${status}`}>{status}</span>;
}

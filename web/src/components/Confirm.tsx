// A button that asks before acting (cancelling a run or an experiment).
import { useState } from "react";

export function ConfirmButton({ label, question, confirmLabel, onConfirm, disabled }: {
  label: string; question: string; confirmLabel: string; onConfirm: () => Promise<unknown>; disabled?: boolean;
}) {
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  if (!asking) {
    return (
      <span>
        <button className="danger" disabled={disabled} onClick={() => { setAsking(true); setError(null); }}>{label}</button>
        {error && <span className="error"> {error}</span>}
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
          setError((e as Error).message);
        }
        setBusy(false);
        setAsking(false);
      }}>{confirmLabel}</button>{" "}
      <button onClick={() => setAsking(false)}>Keep</button>
    </span>
  );
}

export function ErrorNote({ error }: { error: Error | null }) {
  if (!error) return null;
  const hint = (error as { hint?: string | null }).hint;
  return <div className="error" role="alert">{error.message}{hint ? <div className="hint">{hint}</div> : null}</div>;
}

export function StatusBadge({ status }: { status: string }) {
  return <span className={`status status-${status}`}>{status}</span>;
}

// The experiment page's "TensorBoard" button: shown when a run kept tensorboard/ artifacts; it asks the
// server to start (or refresh) the experiment's TensorBoard and opens the capability URL it answers in a
// new tab. That tab is sandboxed by the server (an opaque origin): it holds none of this app's cookies.
import { useState } from "react";
import { api } from "../api";
import { ErrorNote } from "./Confirm";
import { usePoll } from "../lib/hooks";

export function TensorBoardButton({ experimentId, live }: { experimentId: number; live: boolean }) {
  const status = usePoll(() => api.tensorboardStatus(experimentId), [experimentId], undefined, live);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(null);
  const s = status.data;
  if (!s || s.runs === 0) return null;
  const open = async () => {
    // Opened now, while the click counts as the user's gesture (a tab opened after the answer would be
    // blocked as a popup), and cut from this page: the TensorBoard tab cannot reach back through opener.
    const tab = window.open("", "_blank");
    if (tab) tab.opener = null;
    setBusy(true);
    setError(null);
    try {
      const link = await api.openTensorboard(experimentId);
      if (tab) tab.location.href = link.url;
      else window.open(link.url, "_blank", "noopener");
    } catch (e) {
      tab?.close();
      setError(e as Error);
    }
    setBusy(false);
  };
  return (
    <span className="tensorboard">
      <button data-testid="tensorboard-button" disabled={busy} onClick={open}
        title={`TensorBoard over the event files of ${s.runs} run${s.runs === 1 ? "" : "s"} (${s.files} files), in a new tab`}>
        {busy ? "Starting TensorBoard…" : "TensorBoard"}
      </button>
      <ErrorNote error={error} />
    </span>
  );
}

// One artifact shown on the run page, the way lib/preview.ts decides from its name: a sortable
// table, text, rendered Markdown, a picture, a sandboxed frame, or only a download link.
import { useEffect, useRef, useState } from "react";
import { api, artifactUrl, artifactViewUrl, type Artifact } from "../api";
import { usePoll } from "../lib/hooks";
import { formatBytes, previewKind } from "../lib/preview";
import { ErrorNote } from "./Confirm";
import { ArtifactTable } from "./DataTable";
import { LazyMarkdown as Markdown } from "./LazyMarkdown";

export function ArtifactPreview({ runId, artifact, onClose }: { runId: number; artifact: Artifact; onClose: () => void }) {
  const { path } = artifact;
  const kind = previewKind(path);
  const name = path.split("/").pop() ?? path;
  const box = useRef<HTMLElement>(null);
  // Opened from a row far down the list: bring it into view. (Braces: Chromium's scrollIntoView may return a
  // promise, which must not become the effect's clean-up.)
  useEffect(() => {
    box.current?.scrollIntoView?.({ block: "nearest" });
  }, []);
  return (
    <section ref={box} className="preview" data-testid="artifact-preview" data-kind={kind} data-path={path}>
      <div className="controls">
        <h3 className="mono">{path}</h3>
        <span className="muted">{formatBytes(artifact.size)}</span>
        <a href={artifactUrl(runId, path)} download={name}>download</a>
        <button type="button" onClick={onClose}>Close</button>
      </div>
      {kind === "table" && <ArtifactTable runId={runId} path={path} label={`contents of ${path}`} />}
      {(kind === "text" || kind === "markdown") && <TextPreview runId={runId} path={path} markdown={kind === "markdown"} />}
      {kind === "image" && <Picture src={artifactViewUrl(runId, path)} alt={path} />}
      {kind === "sandboxed" && (
        <>
          <p className="muted">
            Shown in a sandbox: its scripts do not run and it cannot reach Runyard (or <a href={artifactViewUrl(runId, path)}
              target="_blank" rel="noopener noreferrer">open it in a tab</a>, sandboxed too).
          </p>
          {/* sandbox="" (no allow-scripts, no allow-same-origin): no script, an opaque origin; the server's
              file answer adds its own `sandbox` Content-Security-Policy. */}
          <iframe className="previewframe" sandbox="" src={artifactViewUrl(runId, path)} title={`preview of ${path}`}
            referrerPolicy="no-referrer" data-testid="artifact-frame" />
        </>
      )}
      {kind === "download" && <p className="muted">No preview for this kind of file; download it to open it.</p>}
    </section>
  );
}

function TextPreview({ runId, path, markdown }: { runId: number; path: string; markdown: boolean }) {
  const text = usePoll(() => api.artifactText(runId, path), [runId, path], 0);
  const t = text.data;
  if (text.error) return <ErrorNote error={text.error} />;
  if (!t) return <p className="muted">loading…</p>;
  if (t.binary) return <p className="muted">This file does not look like text; download it to open it.</p>;
  return (
    <>
      {t.truncated && <p className="muted" data-testid="text-truncated">Showing the first {formatBytes(t.bytes)}; download the file for all of it.</p>}
      {markdown ? <Markdown text={t.text} /> : <pre className="artifacttext" data-testid="artifact-text">{t.text}</pre>}
    </>
  );
}

/** A picture at its size, or scaled up without smoothing when it is small (a 28×28 digit). */
function Picture({ src, alt }: { src: string; alt: string }) {
  const [small, setSmall] = useState(false);
  return (
    <img className={small ? "previewimg pixelated" : "previewimg"} src={src} alt={alt}
      onLoad={(e) => setSmall(e.currentTarget.naturalWidth < 128 && e.currentTarget.naturalHeight < 128)} />
  );
}

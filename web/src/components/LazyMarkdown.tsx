// Rendered Markdown for the pages that show it now and then (a run's note, a .md artifact): marked
// and DOMPurify load with the first one shown, not with the app.
import { lazy, Suspense } from "react";

const Markdown = lazy(() => import("./Markdown").then((m) => ({ default: m.Markdown })));

export function LazyMarkdown({ text }: { text: string }) {
  return <Suspense fallback={<p className="muted">…</p>}><Markdown text={text} /></Suspense>;
}

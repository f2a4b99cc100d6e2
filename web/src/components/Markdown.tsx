// Project descriptions: Markdown rendered under a strict allow-list (see lib/markdown.ts).
import { useMemo } from "react";
import DOMPurify from "dompurify";
import { PURIFY_CONFIG, renderMarkdown } from "../lib/markdown";

export function Markdown({ text }: { text: string }) {
  const html = useMemo(() => DOMPurify.sanitize(renderMarkdown(text), PURIFY_CONFIG) as string, [text]);
  return <div className="markdown" dangerouslySetInnerHTML={{ __html: html }} />;
}

// Project descriptions: Markdown rendered under a strict allow-list (see lib/markdown.ts).
import { useEffect, useMemo, useState } from "react";
import DOMPurify from "dompurify";
import { api } from "../api";
import { PURIFY_CONFIG, renderMarkdown } from "../lib/markdown";

// The hosts whose images descriptions may show (RUNYARD_UI_IMAGE_HOSTS), asked once per page load.
let imageHosts: Promise<string[]> | null = null;
function loadImageHosts(): Promise<string[]> {
  imageHosts ??= api.health().then((h) => h.image_hosts ?? [], () => []);
  return imageHosts;
}

export function Markdown({ text }: { text: string }) {
  const [hosts, setHosts] = useState<string[]>([]);
  useEffect(() => {
    let live = true;
    loadImageHosts().then((h) => live && setHosts(h));
    return () => { live = false; };
  }, []);
  const html = useMemo(
    () => DOMPurify.sanitize(renderMarkdown(text, { imageHosts: hosts }), PURIFY_CONFIG) as string, [text, hosts]);
  return <div className="markdown" dangerouslySetInnerHTML={{ __html: html }} />;
}

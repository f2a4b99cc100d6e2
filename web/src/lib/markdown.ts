// Project descriptions: Markdown to HTML under a strict allow-list.
//
// Descriptions are written by any editor of a project and read by everyone who can see it, so
// the HTML they produce must not be able to look like Runyard's own UI (a fake sign-in form) or
// reach other sites. Raw HTML in the Markdown is shown as text, never rendered; links may only
// use http(s), mailto or relative addresses and never pass a referrer; images load only from
// this server (or data: pictures), others are shown as links; task-list boxes are characters,
// not inputs. The component then passes the result through DOMPurify with PURIFY_CONFIG, a
// second allow-list of tags and attributes with no style, form, frame or script in it.
import { Marked, type Tokens } from "marked";

export type MarkdownOptions = {
  /** Hosts whose images may load (besides this server's own paths and data: pictures). */
  imageHosts?: string[];
};

const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

// Control characters and spaces are dropped before the scheme is read ("java\tscript:" is javascript:).
function compact(url: string): string {
  return url.replace(/[\u0000-\u0020\u007f-\u009f]/g, "");
}

/** The address of a link if it is safe to follow (http, https, mailto, relative, fragment), else null. */
export function safeHref(href: string): string | null {
  const c = compact(href);
  if (/^[a-z][a-z0-9+.-]*:/i.test(c)) return /^(https?|mailto):/i.test(c) ? href.trim() : null;
  return href.trim();
}

const DATA_IMAGE = /^data:image\/(png|gif|jpeg|webp);base64,[a-z0-9+/=]+$/i;

/** Whether an image may load: this server's own paths, data: pictures (not SVG), or an allowed host. */
export function imageAllowed(src: string, hosts: string[] = []): boolean {
  const c = compact(src);
  if (DATA_IMAGE.test(c)) return true;
  if (/^[a-z][a-z0-9+.-]*:/i.test(c) || c.startsWith("//") || c.startsWith("\\")) {
    if (!/^https?:\/\//i.test(c)) return false;
    try {
      return hosts.map((h) => h.toLowerCase()).includes(new URL(c).host.toLowerCase());
    } catch {
      return false;
    }
  }
  return true; // a path on this server
}

function link(href: string, title: string | null | undefined, inner: string): string {
  const safe = safeHref(href);
  if (safe === null) return inner; // the text stays, the link goes
  const t = title ? ` title="${escapeHtml(title)}"` : "";
  return `<a href="${escapeHtml(safe)}"${t} rel="noopener noreferrer nofollow" target="_blank">${inner}</a>`;
}

export function renderMarkdown(text: string, options: MarkdownOptions = {}): string {
  const md = new Marked({ async: false, gfm: true });
  md.use({
    renderer: {
      html({ text: raw }: Tokens.HTML | Tokens.Tag) {
        return escapeHtml(raw);
      },
      link(token: Tokens.Link) {
        return link(token.href, token.title, this.parser.parseInline(token.tokens));
      },
      image({ href, title, text: alt }: Tokens.Image) {
        if (imageAllowed(href, options.imageHosts)) {
          const t = title ? ` title="${escapeHtml(title)}"` : "";
          return `<img src="${escapeHtml(href.trim())}" alt="${escapeHtml(alt)}"${t}>`;
        }
        return link(href, title, escapeHtml(`image: ${alt || href}`));
      },
      checkbox({ checked }: Tokens.Checkbox) {
        return checked ? "\u2611 " : "\u2610 ";
      },
    },
  });
  return md.parse(text) as string;
}

/** DOMPurify's settings for rendered Markdown: only these tags and attributes survive. */
export const PURIFY_CONFIG = {
  ALLOWED_TAGS: ["p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "s", "code", "pre",
    "blockquote", "ul", "ol", "li", "a", "img", "table", "thead", "tbody", "tr", "th", "td"],
  ALLOWED_ATTR: ["href", "title", "alt", "src", "rel", "target", "align", "start"],
  ALLOW_DATA_ATTR: false,
  ALLOW_ARIA_ATTR: false,
  ALLOWED_URI_REGEXP: /^(?:https?:|mailto:|data:image\/(?:png|gif|jpeg|webp);|[^a-z]|[a-z+.-]+(?:[^a-z+.\-:]|$))/i,
};

// Where a model version, run or dataset version came from and what came of it (GET /lineage?uri=…),
// as an indented chain: model version → run → dataset versions read, code snapshot with its git
// commit, image, and the run's key params. Nodes the caller may not read say so instead.
import { useMemo } from "react";
import { Link } from "react-router-dom";
import { api } from "../api";
import { usePoll } from "../lib/hooks";
import { isRedacted, keyParams, kindLabel, layoutLineage, nodeFacts, nodeHref, type LineageRow } from "../lib/lineage";
import { ErrorNote } from "./Confirm";

export const NOT_VISIBLE = "not visible to you";

/** `rev`: read the graph again when it changes (the page changed what the graph shows, e.g. a version's aliases). */
export function LineageView({ uri, title = "Lineage", rev = "" }: { uri: string; title?: string; rev?: string }) {
  const graph = usePoll(() => api.lineage(uri), [uri, rev], 0);
  const rows = useMemo(() => (graph.data ? layoutLineage(graph.data) : []), [graph.data]);
  return (
    <section className="lineage" data-testid="lineage" data-uri={uri}>
      <h2>{title}</h2>
      <ErrorNote error={graph.error} />
      {!graph.data && !graph.error && <p className="muted">loading…</p>}
      {graph.data && rows.length <= 1 && <p className="muted">Nothing recorded beyond this {rows[0] ? kindLabel(rows[0].node.kind) : "item"} yet.</p>}
      {graph.data?.truncated && <p className="muted">The graph is long: the server left the least related nodes out.</p>}
      {rows.length > 0 && (
        <ol className="lineage-rows">
          {rows.map((r, i) => <LineageItem key={`${r.node.id}:${i}`} row={r} root={i === 0} />)}
        </ol>
      )}
    </section>
  );
}

function LineageItem({ row, root }: { row: LineageRow; root: boolean }) {
  const { node, depth, via, repeat, parent } = row;
  const hidden = isRedacted(node);
  const href = nodeHref(node, parent);
  const facts = nodeFacts(node);
  const params = node.kind === "run" && !repeat && !hidden ? keyParams(node.data ?? {}) : null;
  const label = hidden ? NOT_VISIBLE : node.label;
  return (
    <li className={`lineage-node kind-${node.kind}${hidden ? " redacted" : ""}${root ? " root" : ""}`} style={{ marginLeft: depth * 22 }}
      data-kind={node.kind} data-node={node.id} data-depth={depth} data-redacted={hidden ? "true" : undefined}>
      {via && <span className="lineage-edge" data-edge={via.kind}>{depth > 0 ? "└ " : ""}{via.text}</span>}
      <span className="lineage-kind">{kindLabel(node.kind)}</span>
      {href && !root ? <Link to={href} className="lineage-label">{label}</Link> : <span className="lineage-label">{label}</span>}
      {hidden && <span className="muted" title="The project it belongs to is not shared with you."> (ask its project's owner for access)</span>}
      {repeat && <span className="muted"> (shown above)</span>}
      {facts.map((f) => <span key={f} className="lineage-fact">{f}</span>)}
      {params && params.shown.length > 0 && (
        <div className="lineage-params" data-testid="lineage-params">
          {params.shown.map(([k, v]) => <span key={k} className="param"><span className="muted">{k}=</span>{v}</span>)}
          {params.more > 0 && (href ? <Link to={href}>+{params.more} more</Link> : <span className="muted">+{params.more} more</span>)}
        </div>
      )}
    </li>
  );
}

// The runs table: virtualised rows, loaded from the API a page at a time as they scroll into view.
// Sorting, filtering and column choice happen on the server (order_by, filter, status, fields).
import { useEffect, useMemo, useRef, useState } from "react";
import { Link } from "react-router-dom";
import { useVirtualizer } from "@tanstack/react-virtual";
import { api, type Run, type RunQuery } from "../api";
import { cellValue, formatCell, pagesFor, parseSort, TERMINAL, type Column } from "../lib/table";
import { hidden, POLL_MS } from "../lib/hooks";
import { ConfirmButton, ErrorNote, StatusBadge } from "./Confirm";

export const PAGE_SIZE = 200;
export const CANNOT_CANCEL = "viewers cannot cancel runs; ask an owner of the project for the editor role";
const ROW_PX = 28;

export interface RunTableProps {
  query: Omit<RunQuery, "limit" | "offset" | "fields" | "order_by">;
  columns: Column[];
  orderBy: string | null;
  onSort?: (col: Column) => void;
  selected?: number[];
  onToggle?: (run: Run) => void;
  extraMetrics?: string[];
  live?: boolean;
  onTotal?: (total: number) => void;
  height?: number;
  /** false: the caller may not cancel runs here (a viewer); the buttons are disabled and say why. */
  canCancel?: boolean;
}

export function RunTable({ query, columns, orderBy, onSort, selected = [], onToggle, extraMetrics = [], live = true, onTotal, height = 480, canCancel = true }: RunTableProps) {
  const scroller = useRef<HTMLDivElement>(null);
  const [pages, setPages] = useState<Map<number, Run[]>>(new Map());
  const [total, setTotal] = useState<number | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const inflight = useRef(new Set<number>());
  const visible = useRef<number[]>([0]);
  const fieldsKey = useMemo(() => {
    const f = new Set<string>();
    columns.forEach((c) => { if (c.kind === "param") f.add(`params.${c.key}`); if (c.kind === "metric") f.add(`metrics.${c.key}`); });
    extraMetrics.forEach((m) => f.add(`metrics.${m}`));
    return [...f].sort().join("\n");
  }, [columns, extraMetrics]);
  const rowsKey = JSON.stringify([query, orderBy]);
  const key = JSON.stringify([rowsKey, fieldsKey]);
  const generation = useRef(0);
  // After a change the pages held are stale: they stay on screen until the first fresh page replaces them all.
  const stale = useRef(false);

  const fetchPage = async (page: number, gen: number) => {
    if (inflight.current.has(page) && gen === generation.current && !stale.current) return;
    inflight.current.add(page);
    try {
      // No param or metric columns: ask for a field no run has, so rows carry none (no fields means all).
      const fields = fieldsKey ? fieldsKey.split("\n") : ["params.-", "metrics.-"];
      const res = await api.runs({ ...query, order_by: orderBy, limit: PAGE_SIZE, offset: page * PAGE_SIZE, fields });
      if (gen !== generation.current) return;
      setTotal(res.total);
      if (stale.current) {
        stale.current = false;
        setPages(new Map([[page, res.items]]));
      } else {
        setPages((prev) => new Map(prev).set(page, res.items));
      }
      setError(null);
    } catch (e) {
      if (gen === generation.current) setError(e as Error);
    } finally {
      inflight.current.delete(page);
    }
  };

  // Other rows (query or order): back to the top. Other columns only: keep the place.
  const lastRows = useRef(rowsKey);
  useEffect(() => {
    generation.current += 1;
    inflight.current.clear();
    stale.current = true;
    if (lastRows.current !== rowsKey) {
      lastRows.current = rowsKey;
      scroller.current?.scrollTo({ top: 0 });
      fetchPage(0, generation.current);
    } else {
      for (const p of visible.current) fetchPage(p, generation.current);
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key]);

  useEffect(() => { if (total !== null) onTotal?.(total); }, [total, onTotal]);

  const virt = useVirtualizer({ count: total ?? 0, getScrollElement: () => scroller.current, estimateSize: () => ROW_PX, overscan: 30 });
  const items = virt.getVirtualItems();
  const first = items.length ? items[0].index : 0;
  const last = items.length ? items[items.length - 1].index : 0;

  // Load the pages the visible rows fall on.
  useEffect(() => {
    if (total === null) return;
    for (const p of pagesFor(first, last, PAGE_SIZE, total)) if (!pages.has(p)) fetchPage(p, generation.current);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [first, last, total, pages]);

  // Live: re-read the visible pages every 2 s.
  visible.current = total === null ? [0] : pagesFor(first, last, PAGE_SIZE, Math.max(total, 1));
  const wasLive = useRef(live);
  useEffect(() => {
    if (!live) {
      // The experiment just ended: read the visible pages once more, or the table keeps the
      // statuses of the last poll, which may predate the last runs' ends.
      if (wasLive.current) for (const p of visible.current) fetchPage(p, generation.current);
      wasLive.current = false;
      return;
    }
    wasLive.current = true;
    const t = setInterval(() => { if (!hidden()) for (const p of visible.current) fetchPage(p, generation.current); }, POLL_MS);
    return () => clearInterval(t);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [live, key]);

  const sort = parseSort(orderBy);
  const width = 36 + columns.reduce((w, c) => w + c.width, 0) + 90;
  const row = (i: number): Run | undefined => pages.get(Math.floor(i / PAGE_SIZE))?.[i % PAGE_SIZE];

  return (
    <div className="runtable">
      <ErrorNote error={error} />
      <div className="runtable-scroll" ref={scroller} style={{ height }} data-testid="run-table" data-total={total ?? ""}>
        <div style={{ width, minWidth: "100%" }}>
          <div className="runtable-head" role="row">
            <div className="cell check" style={{ width: 36 }} />
            {columns.map((c) => {
              const active = sort && c.sortField === sort.field;
              return (
                <div key={c.id} role="columnheader" data-col={c.id} className={`cell ${c.sortField ? "sortable" : ""} ${c.kind !== "attr" ? "num" : ""}`} style={{ width: c.width }}
                  title={c.sortField ? `sort by ${c.id}` : c.id} onClick={() => onSort?.(c)}
                  aria-sort={active ? (sort!.desc ? "descending" : "ascending") : "none"}>
                  {c.label}{active ? (sort!.desc ? " ▼" : " ▲") : ""}
                </div>
              );
            })}
            <div className="cell" style={{ width: 90 }} />
          </div>
          <div style={{ height: virt.getTotalSize(), position: "relative" }}>
            {items.map((vi) => {
              const r = row(vi.index);
              return (
                <div key={vi.key} className={`runtable-row ${r && selected.includes(r.id) ? "selected" : ""}`} role="row"
                  data-testid="run-row" data-index={vi.index} data-run-id={r?.id ?? ""}
                  style={{ position: "absolute", top: 0, left: 0, height: ROW_PX, transform: `translateY(${vi.start}px)` }}>
                  <div className="cell check" style={{ width: 36 }}>
                    {r && onToggle && <input type="checkbox" aria-label={`select run ${r.id}`} checked={selected.includes(r.id)} onChange={() => onToggle(r)} />}
                  </div>
                  {columns.map((c) => (
                    <div key={c.id} className={`cell ${c.kind !== "attr" ? "num" : ""}`} style={{ width: c.width }} data-col={c.id}>
                      {!r ? (c === columns[0] ? "…" : "") : c.key === "name" && c.kind === "attr" ? <Link to={`/runs/${r.id}`}>{r.name}</Link>
                        : c.key === "status" && c.kind === "attr" ? <StatusBadge status={r.status} /> : formatCell(cellValue(r, c), c)}
                    </div>
                  ))}
                  <div className="cell" style={{ width: 90 }}>
                    {r && !TERMINAL.has(r.status) && (
                      <ConfirmButton label="cancel" question={`Cancel run ${r.id}?`} confirmLabel="Yes, cancel"
                        disabled={!canCancel} title={canCancel ? undefined : CANNOT_CANCEL}
                        onConfirm={async () => { await api.cancelRun(r.id); fetchPage(Math.floor(vi.index / PAGE_SIZE), generation.current); }} />
                    )}
                  </div>
                </div>
              );
            })}
          </div>
        </div>
        {total === 0 && <div className="empty">No runs match.</div>}
      </div>
    </div>
  );
}

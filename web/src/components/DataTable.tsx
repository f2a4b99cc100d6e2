// A logged table or a CSV/TSV/Parquet artifact: the first rows the server sent, sortable by a
// header click (ascending, descending, the file's order), numbers sorted as numbers.
import { useMemo, useState } from "react";
import { api, type TableContent } from "../api";
import { cellText, isNumericColumn, nextTableSort, sortRows, truncationNote, type TableSort } from "../lib/datatable";
import { usePoll } from "../lib/hooks";
import { ErrorNote } from "./Confirm";

/** How many rows a table on the run page loads. */
export const TABLE_ROWS = 1000;

export function DataTable({ content, label }: { content: TableContent; label: string }) {
  const [sort, setSort] = useState<TableSort | null>(null);
  const rows = useMemo(() => sortRows(content.rows, sort), [content.rows, sort]);
  const numeric = useMemo(() => content.columns.map((_, i) => isNumericColumn(content.rows, i)), [content]);
  const note = truncationNote(content.rows.length, content.total, content.truncated);
  return (
    <div className="datatable" data-testid="data-table" data-path={content.path}>
      <p className="muted tablemeta" data-testid="table-rows">
        {note ? <>{note}; sorting orders these</> : `${content.total.toLocaleString("en-US")} rows`}
        {`, ${content.columns.length} columns`}
      </p>
      <div className="datatable-scroll">
        <table className="list" aria-label={label}>
          <thead><tr>
            {content.columns.map((c, i) => {
              const dir = sort?.column === i ? (sort.desc ? "descending" : "ascending") : "none";
              return (
                <th key={i} aria-sort={dir} className={numeric[i] ? "num" : undefined}>
                  <button type="button" className="sorthead" onClick={() => setSort(nextTableSort(sort, i))}
                    title="sort by this column (again: reverse, a third time: the file's order)">
                    {c}<span className="arrow" aria-hidden="true">{dir === "ascending" ? " ▲" : dir === "descending" ? " ▼" : ""}</span>
                  </button>
                </th>
              );
            })}
          </tr></thead>
          <tbody>
            {rows.map((row, r) => (
              <tr key={r}>{content.columns.map((_, i) => <td key={i} className={numeric[i] ? "num" : undefined}>{cellText(row[i])}</td>)}</tr>
            ))}
          </tbody>
        </table>
      </div>
      {content.rows.length === 0 && <p className="muted">No rows.</p>}
    </div>
  );
}

/** Loads the first rows of a table artifact (`GET /runs/{id}/tables/content`) and shows them; again when `rev`
 *  changes (a table logged anew under the same path). */
export function ArtifactTable({ runId, path, label, rev }: { runId: number; path: string; label: string; rev?: string }) {
  const content = usePoll(() => api.tableContent(runId, path, TABLE_ROWS), [runId, path, rev], 0);
  return (
    <>
      <ErrorNote error={content.error} />
      {content.data ? <DataTable content={content.data} label={label} /> : !content.error && <p className="muted">loading…</p>}
    </>
  );
}

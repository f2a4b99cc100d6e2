// A long list (a dataset version's 10,000 files, a diff of as many) as a fixed-height scroller that
// renders only the rows in view; the columns are CSS grid tracks shared by the header and the rows.
import { useRef, type ReactNode } from "react";
import { useVirtualizer } from "@tanstack/react-virtual";

const ROW_PX = 26;

export function VirtualRows<T>({ items, columns, header, row, height = 420, testid, label, rowKey }: {
  items: readonly T[];
  /** grid-template-columns of the header and of each row, e.g. "minmax(0,1fr) 90px 110px". */
  columns: string;
  header: ReactNode;
  row: (item: T, index: number) => ReactNode;
  height?: number;
  testid: string;
  label: string;
  rowKey: (item: T, index: number) => string;
}) {
  const scroller = useRef<HTMLDivElement>(null);
  const virt = useVirtualizer({ count: items.length, getScrollElement: () => scroller.current, estimateSize: () => ROW_PX, overscan: 20 });
  const shown = Math.min(height, ROW_PX * (items.length + 1) + 2);
  return (
    <div className="vrows" ref={scroller} style={{ height: Math.max(shown, ROW_PX * 2) }} data-testid={testid}
      data-count={items.length} role="region" aria-label={label} tabIndex={0}>
      <div className="vrows-head" style={{ gridTemplateColumns: columns }}>{header}</div>
      <div style={{ height: virt.getTotalSize(), position: "relative" }}>
        {virt.getVirtualItems().map((vi) => {
          const item = items[vi.index];
          return (
            <div key={rowKey(item, vi.index)} className="vrows-row" data-index={vi.index}
              style={{ gridTemplateColumns: columns, height: ROW_PX, transform: `translateY(${vi.start}px)` }}>
              {row(item, vi.index)}
            </div>
          );
        })}
      </div>
    </div>
  );
}

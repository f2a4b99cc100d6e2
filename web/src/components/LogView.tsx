// A run's log: per task, follows new lines live (polling ≤ 2 s), with search.
import { useEffect, useMemo, useRef, useState } from "react";
import { api, type LogLine } from "../api";
import { hidden, POLL_MS } from "../lib/hooks";

const MAX_LINES = 50_000;

export function LogView({ runId, tasks, task, onTask, search, onSearch, live }: {
  runId: number; tasks: string[]; task: string | null; onTask: (t: string | null) => void;
  search: string; onSearch: (s: string) => void; live: boolean;
}) {
  const [lines, setLines] = useState<LogLine[]>([]);
  const [follow, setFollow] = useState(true);
  const [error, setError] = useState<string | null>(null);
  const box = useRef<HTMLDivElement>(null);

  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let offset = 0;
    let acc: LogLine[] = [];
    setLines([]);
    const load = async () => {
      if (hidden() && live) {
        timer = setTimeout(load, POLL_MS);
        return;
      }
      try {
        for (;;) {
          const page = await api.logs(runId, offset, task);
          if (stopped) return;
          if (page.lines.length) {
            acc = acc.concat(page.lines);
            if (acc.length > MAX_LINES) acc = acc.slice(acc.length - MAX_LINES);
            offset = page.next_offset;
            setLines(acc);
          }
          setError(null);
          if (page.lines.length < 5000) break;
        }
      } catch (e) {
        if (!stopped) setError((e as Error).message);
      }
      if (!stopped && live) timer = setTimeout(load, POLL_MS);
    };
    load();
    return () => { stopped = true; if (timer) clearTimeout(timer); };
  }, [runId, task, live]);

  const shown = useMemo(() => {
    if (!search) return lines;
    const q = search.toLowerCase();
    return lines.filter((l) => l.text.toLowerCase().includes(q));
  }, [lines, search]);

  useEffect(() => {
    if (follow && box.current) box.current.scrollTop = box.current.scrollHeight;
  }, [shown, follow]);

  return (
    <div className="logview">
      <div className="controls">
        <label>task: <select value={task ?? ""} onChange={(e) => onTask(e.target.value || null)}>
          <option value="">all</option>
          {tasks.map((t) => <option key={t} value={t}>{t}</option>)}
        </select></label>
        <input type="search" placeholder="search the log" value={search} onChange={(e) => onSearch(e.target.value)} aria-label="search the log" />
        <label><input type="checkbox" checked={follow} onChange={(e) => setFollow(e.target.checked)} /> follow</label>
        <span className="muted">{search ? `${shown.length} of ${lines.length} lines` : `${lines.length} lines`}</span>
      </div>
      {error && <div className="error">{error}</div>}
      <div className="log" ref={box} data-testid="log"
        onScroll={(e) => { const el = e.currentTarget; const atEnd = el.scrollHeight - el.scrollTop - el.clientHeight < 20; if (!atEnd && follow) setFollow(false); }}>
        {shown.map((l) => (
          <div key={l.offset} className={`logline ${l.stream}`} data-testid="log-line">
            {tasks.length > 1 && !task && <span className="muted">[{l.task}] </span>}{l.text}
          </div>
        ))}
      </div>
    </div>
  );
}

"""How the CLI prints: Rich consoles, JSON, human-readable times, sizes and numbers.

Tables and messages go through Rich; ``--json`` output bypasses Rich entirely so
it never carries markup, wrapping or colour. Text from the server (names, messages, the audit
log) may hold terminal control sequences: the consoles pass every piece of text they print
through :func:`safe`, which shows control characters and bidirectional overrides as visible
escapes (``\x1b``, ``\u202e``); Rich's own colours are not text and stay. Consoles are built per call so they
follow ``sys.stdout``/``sys.stderr`` as they are at that moment (test runners swap them).
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "STATUS_STYLES",
    "ago",
    "compact_params",
    "console",
    "counts_text",
    "err_console",
    "fmt_duration",
    "fmt_number",
    "fmt_size",
    "fmt_time",
    "print_json",
    "run_duration",
    "safe",
    "status_text",
]

STATUS_STYLES = {
    "queued": "dim",
    "starting": "yellow",
    "running": "cyan",
    "succeeded": "green",
    "failed": "bold red",
    "canceled": "magenta",
    "pruned": "blue",
}

# C0 controls but tab and newline, DEL, C1 controls, and the marks that reorder text on screen
# (bidi embeddings, overrides and isolates; LRM, RLM, ALM).
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(text: str) -> str:
    """``text`` with terminal control characters and bidi overrides shown as escapes; tabs and newlines kept.

    >>> safe("ok\\x1b[2Jgone\\u202e")
    'ok\\\\x1b[2Jgone\\\\u202e'
    """
    return _UNSAFE.sub(_escape, text) if _UNSAFE.search(text) else text


# Wide enough that tables piped to a file or `grep` keep whole cells.
_PIPE_WIDTH = 200


def _make_console(stderr: bool) -> Console:
    from rich.console import Console
    from rich.segment import Segment

    class SafeConsole(Console):
        """A console whose printed text goes through :func:`safe` (tables, panels, messages alike)."""

        def render_str(self, text, **kwargs):  # type: ignore[no-untyped-def]  # noqa: ANN001, ANN003, ANN202
            # Before markup and measuring, so table columns are as wide as the escaped text.
            return super().render_str(safe(text), **kwargs)

        def render(self, renderable, options=None):  # type: ignore[no-untyped-def]  # noqa: ANN001, ANN202
            for seg in super().render(renderable, options):
                if seg.control is None and seg.text and _UNSAFE.search(seg.text):
                    yield Segment(safe(seg.text), seg.style, seg.control)
                else:
                    yield seg

    stream = sys.stderr if stderr else sys.stdout
    width = None
    if not (hasattr(stream, "isatty") and stream.isatty()) and not os.environ.get("COLUMNS"):
        width = _PIPE_WIDTH
    return SafeConsole(stderr=stderr, width=width, highlight=False, soft_wrap=False)


def console() -> Console:
    """A Rich console on stdout (tables, results)."""
    return _make_console(stderr=False)


def err_console() -> Console:
    """A Rich console on stderr (notes, errors, progress)."""
    return _make_console(stderr=True)


def print_json(obj: Any) -> None:
    """Machine-readable output: plain JSON on stdout, no Rich involved."""
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
    sys.stdout.flush()


def status_text(status: str) -> str:
    """``status`` wrapped in Rich markup for its colour."""
    style = STATUS_STYLES.get(status)
    return f"[{style}]{status}[/]" if style else status


def counts_text(counts: dict[str, int]) -> str:
    """Runs per status, in lifecycle order and coloured: ``2 running, 5 succeeded``; ``-`` when empty.

    >>> counts_text({"succeeded": 5, "running": 2, "failed": 0})
    '2 [cyan]running[/], 5 [green]succeeded[/]'
    """
    order = [s for s in STATUS_STYLES if counts.get(s)] + sorted(k for k in counts if k not in STATUS_STYLES and counts[k])
    return ", ".join(f"{counts[k]} {status_text(k)}" for k in order) or "-"


def fmt_duration(seconds: float | None) -> str:
    """Compact duration: ``850ms``, ``45s``, ``1m12s``, ``2h03m``, ``3d04h``; ``-`` for ``None``.

    >>> fmt_duration(72)
    '1m12s'
    """
    if seconds is None:
        return "-"
    if seconds < 0:
        seconds = 0.0
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h}h{m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d{h:02d}h"


def ago(ts: float | None, *, now: float | None = None) -> str:
    """How long ago ``ts`` was: ``just now``, ``45s ago``, ``3m ago``, ``2h ago``, ``5d ago``, then a date.

    >>> ago(1000.0, now=1180.0)
    '3m ago'
    """
    if ts is None:
        return "-"
    now = time.time() if now is None else now
    delta = now - ts
    if delta < 0:
        return "just now"  # a server clock slightly ahead of ours
    if delta < 5:
        return "just now"
    if delta < 60:
        return f"{int(delta)}s ago"
    if delta < 3600:
        return f"{int(delta // 60)}m ago"
    if delta < 86400:
        return f"{int(delta // 3600)}h ago"
    if delta < 30 * 86400:
        return f"{int(delta // 86400)}d ago"
    return time.strftime("%Y-%m-%d", time.localtime(ts))


def fmt_time(ts: float | None) -> str:
    """Local wall-clock time, ``2024-05-01 13:04:05``; ``-`` for ``None``."""
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def run_duration(run: dict[str, Any], *, now: float | None = None) -> float | None:
    """Seconds a run has been running (until it ended, or until now); ``None`` before it started."""
    start = run.get("started_at")
    if start is None:
        return None
    end = run.get("ended_at")
    if end is None:
        end = time.time() if now is None else now
    return end - start


def fmt_number(value: Any) -> str:
    """Short numbers for tables: 4 significant digits, ``nan`` for a missing value.

    >>> fmt_number(0.123456)
    '0.1235'
    """
    if value is None:
        return "nan"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.4g}"
    return str(value)


def fmt_size(n_bytes: int) -> str:
    """``512 B``, ``1.5 KB``, ``3.2 MB``, ``1.1 GB`` (powers of 1000, like Rich's progress bar)."""
    size = float(n_bytes)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"  # pragma: no cover


def compact_params(params: dict[str, Any], max_chars: int = 48) -> str:
    """``lr=0.01 bs=32 …``: parameters on one line, cut at ``max_chars``.

    >>> compact_params({"lr": 0.01, "bs": 32})
    'lr=0.01 bs=32'
    """
    parts = []
    for key, value in params.items():
        if isinstance(value, float):
            text = fmt_number(value)
        elif isinstance(value, str):
            text = value
        else:
            text = json.dumps(value, separators=(",", ":"), default=str)
        parts.append(f"{key}={text}")
    line = " ".join(parts)
    if len(line) > max_chars:
        line = line[: max_chars - 1] + "…"
    return line

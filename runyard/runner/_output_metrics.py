"""Metrics read from a task's output lines (``output_metrics:`` in runyard.yml).

:class:`OutputMetrics` is called by the task runner with every stdout/stderr line as it
streams; each pattern that matches gives ``{metric: value}`` at a step, which the runner
logs through its reporter, the path SDK metrics take (searches, pruners, filters and the
UI see them alike).

A pattern is a regex with named groups (each group but ``step`` is a metric; ``step``, when
present, is the step), or one of the presets:

- ``key=value``: every ``name=number`` on the line (``loss=0.25 acc=0.91``);
- ``key: value``: every ``name: number`` on the line (``loss: 0.25, acc: 0.91``);
- ``keras``: Keras's finished progress lines (``1875/1875 [====] - 3s - loss: 0.29 - accuracy: 0.91``),
  at the step of the last ``Epoch N/M`` line;
- ``json``: a line that is a JSON object; its numeric members (a ``step`` member is the step).

Without a step, a pattern counts its matching lines: 0, 1, 2, ... (the SDK's ``log()`` does the same).

Costs are per line and small (``benchmarks/output_metrics.py``: under 2 µs a line): presets
look for their marker character before running a regex, and nothing allocates for a line
that matches nothing.

Values: a number as Python's ``float`` reads it; one too large for a float (``1e999``) or a
NaN is stored as missing, the way the SDK stores non-finite values; text that is no number
is skipped, with one note per metric (``notes``). A metric name the store refuses is skipped
the same way.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from runyard.names import key_problem

__all__ = ["OutputMetrics"]

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)"
_KEY_EQ = re.compile(rf"(?<![\w./-])([A-Za-z_][\w./-]*)\s*=\s*({_NUMBER})(?![\w.])")
_KEY_COLON = re.compile(rf"(?<![\w./-])([A-Za-z_][\w./-]*):\s*({_NUMBER})(?![\w.:])")
_KERAS_DONE = re.compile(r"^\s*(\d+)/(\d+)\s")
_KERAS_EPOCH = re.compile(r"^Epoch (\d+)/\d+\s*$")
_KERAS_PAIR = re.compile(rf"(?:^|\s-\s)([A-Za-z_][\w]*): ({_NUMBER})")
MAX_METRICS_PER_LINE = 100
MAX_LINE_CHARS = 8192  # longer lines are not searched: no pattern of ours reads a metric from a megabyte line

Found = tuple[dict[str, float | None], int]


class OutputMetrics:
    """Parses lines with the patterns of a launch's ``task_io["output_metrics"]``. Not thread-safe
    (one per task, called from the thread that reads the task's output).

    Args:
        patterns: ``[{"regex": ...} | {"preset": ...}]`` as the spec stores them.
        note: called with one ``[runyard]`` line to show in the run's log (a value skipped, say).
    """

    def __init__(self, patterns: Iterable[Mapping[str, str]], note: Callable[[str], None] = lambda text: None) -> None:
        self._parsers: list[Callable[[str], Found | None]] = []
        self._note = note
        self._noted: set[str] = set()
        self._epoch: int | None = None
        for item in patterns:
            if "regex" in item:
                self._parsers.append(self._regex_parser(re.compile(item["regex"])))
            else:
                self._parsers.append(self._preset_parser(item["preset"]))

    def __bool__(self) -> bool:
        return bool(self._parsers)

    def parse(self, line: str) -> list[Found]:
        """The metrics in ``line``: one ``({name: value}, step)`` per pattern that matched."""
        if len(line) > MAX_LINE_CHARS:
            return []
        out = []
        for parser in self._parsers:
            found = parser(line)
            if found is not None:
                out.append(found)
        return out

    # ------------------------------------------------------------------ parsers
    def _regex_parser(self, pattern: re.Pattern[str]) -> Callable[[str], Found | None]:
        names = [n for n in pattern.groupindex if n != "step"]
        has_step = "step" in pattern.groupindex
        counter = [0]
        search = pattern.search

        def parse(line: str) -> Found | None:
            m = search(line)
            if m is None:
                return None
            values = {}
            for name in names:
                text = m.group(name)
                if text is not None:
                    self._add(values, name, text)
            return self._step(values, m.group("step") if has_step else None, counter)

        return parse

    def _preset_parser(self, preset: str) -> Callable[[str], Found | None]:
        counter = [0]
        if preset in ("key=value", "key: value"):
            marker, pairs = ("=", _KEY_EQ) if preset == "key=value" else (":", _KEY_COLON)
            finditer = pairs.finditer

            def parse(line: str) -> Found | None:
                if marker not in line:
                    return None
                values: dict[str, float | None] = {}
                step_text = None
                for m in finditer(line):
                    name, text = m.group(1), m.group(2)
                    if name == "step":
                        step_text = text
                    elif len(values) < MAX_METRICS_PER_LINE:
                        self._add(values, name, text)
                return self._step(values, step_text, counter) if values else None

            return parse
        if preset == "keras":

            def parse(line: str) -> Found | None:
                if line.startswith("Epoch "):
                    m = _KERAS_EPOCH.match(line)
                    if m is not None:
                        self._epoch = int(m.group(1))
                    return None
                if "/" not in line or ": " not in line:
                    return None
                m = _KERAS_DONE.match(line)
                if m is None or m.group(1) != m.group(2):  # a progress line not yet at the end of the epoch
                    return None
                values: dict[str, float | None] = {}
                for pair in _KERAS_PAIR.finditer(line, m.end()):
                    self._add(values, pair.group(1), pair.group(2))
                if not values:
                    return None
                if self._epoch is not None:
                    return values, self._epoch
                return self._step(values, None, counter)

            return parse
        if preset == "json":

            def parse(line: str) -> Found | None:
                text = line.strip()
                if not text.startswith("{") or not text.endswith("}"):
                    return None
                try:
                    data = json.loads(text)
                except ValueError:
                    return None
                if not isinstance(data, dict):
                    return None
                values: dict[str, float | None] = {}
                step = data.get("step")
                for name, value in data.items():
                    if name == "step" or isinstance(value, bool) or not isinstance(value, (int, float)):
                        continue
                    if len(values) < MAX_METRICS_PER_LINE:
                        self._add(values, name, value)
                if not values:
                    return None
                if isinstance(step, int) and not isinstance(step, bool) and 0 <= step < 2**63:
                    return values, step
                return self._step(values, None, counter)

            return parse
        raise ValueError(f"unknown output_metrics preset {preset!r}")

    # ------------------------------------------------------------------ values
    def _add(self, values: dict[str, float | None], name: str, text: Any) -> None:
        try:
            value = float(text)
        except (TypeError, ValueError, OverflowError):
            self._once(name, f"[runyard] output_metrics: {text!r} for metric {name!r} is not a number; "
                             "such values are skipped")
            return
        if key_problem(name) is not None:
            self._once(name, f"[runyard] output_metrics: the metric name {name!r} is not one Runyard stores; skipped")
            return
        if not math.isfinite(value):
            self._once(f"{name}\0inf", f"[runyard] output_metrics: {str(text)[:40]!r} for metric {name!r} is not a "
                                        "finite number; stored as missing, as the SDK stores it")
            values[name] = None
            return
        values[name] = value

    def _step(self, values: dict[str, float | None], text: str | None, counter: list[int]) -> Found | None:
        if not values:
            return None
        step = None
        if text is not None:
            try:
                number = float(text)
                if number.is_integer() and 0 <= number < 2**63:
                    step = int(number)
            except (ValueError, OverflowError):
                step = None
        if step is None:
            step = counter[0]
        counter[0] += 1
        return values, step

    def _once(self, key: str, text: str) -> None:
        if key not in self._noted and len(self._noted) < 100:
            self._noted.add(key)
            self._note(text)

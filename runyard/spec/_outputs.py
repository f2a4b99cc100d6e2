"""The runyard.yml keys for code run as it is: ``output_metrics``, ``outputs``, ``outputs_every``,
``stop_signal``, ``stop_grace`` and ``mounts``.

Each is a field annotation used by :class:`runyard.spec.Spec`; :func:`task_io` turns a spec's
values into the launch's ``task_io`` mapping the runner reads (``runyard.runner._output_metrics``,
``runyard.runner._outputs``).
"""

from __future__ import annotations

import posixpath
import re
import signal
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from runyard.spec._rules import Rule, bad, invalid, show
from runyard.spec._values import parse_time_limit

__all__ = ["PRESETS", "MountsField", "OutputMetricsField", "OutputsEveryField", "OutputsField", "StopGraceField",
           "StopSignalField", "task_io"]

# The named formats `output_metrics` understands besides regexes (runyard.runner._output_metrics parses them).
PRESETS = ("key=value", "key: value", "keras", "json")
MAX_PATTERNS = 50
MAX_PATTERN_CHARS = 1000
STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGQUIT")
_METRIC_GROUP = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _check_output_metrics(value: Any) -> list[dict[str, str]]:
    """Each item is a regex string with named groups, or ``{preset: NAME}``; returns ``[{regex}|{preset}]``."""
    items = value if isinstance(value, list) else [value]
    if not items:
        return []
    if len(items) > MAX_PATTERNS:
        raise bad(f"lists {len(items)} patterns, more than {MAX_PATTERNS}. Merge patterns, e.g. with a preset.")
    out: list[dict[str, str]] = []
    for i, item in enumerate(items):
        where = f"item {i + 1}" if len(items) > 1 else "item 1"
        if isinstance(item, dict) and set(item) == {"preset"}:
            name = item["preset"]
            if name not in PRESETS:
                raise bad(f"{where} names the preset {show(name)}, which does not exist. Known presets: "
                          + ", ".join(repr(p) for p in PRESETS) + ", e.g. `- preset: key=value`.")
            out.append({"preset": name})
            continue
        if isinstance(item, dict) and set(item) == {"regex"}:  # the stored form (Spec.to_config)
            item = item["regex"]
        if not isinstance(item, str) or not item.strip():
            raise bad(f"{where} is {show(item)}, but each item is a regex with named groups or `{{preset: NAME}}`. "
                      r"Write e.g. `- 'valid ppl\s+(?P<val_ppl>[\d.]+)'` or `- preset: key=value`.")
        if "\x00" in item or len(item) > MAX_PATTERN_CHARS:
            raise bad(f"{where} is longer than {MAX_PATTERN_CHARS} characters or holds a NUL character. "
                      "Shorten the regex.")
        try:
            compiled = re.compile(item)
        except re.error as e:
            pos = "" if e.pos is None else f" at character {e.pos + 1}"
            shown = item if len(item) <= 80 else item[:76] + " ..."
            raise bad(f"{where} is not a valid regex: {e.msg}{pos} of '{shown}'. Fix the regex; "
                      r"named groups look like (?P<loss>[\d.]+), and a literal '(' is written '\('.") from e
        names = [n for n in compiled.groupindex if n != "step"]
        if not names:
            raise bad(f"{where} {show(item)} has no named group to take a metric from. Name the value's group, "
                      r"e.g. `loss:\s*(?P<loss>[\d.eE+-]+)`; the group's name is the metric's.")
        out.append({"regex": item})
    return out


OutputMetricsField = Annotated[
    list[dict[str, str]],
    BeforeValidator(_check_output_metrics),
    Rule("a regex with named groups, `{preset: NAME}`, or a list of them",
         r"Write e.g. `output_metrics: ['valid ppl\s+(?P<val_ppl>[\d.]+)', {preset: key=value}]`."),
]


def _check_glob(pattern: Any) -> str:
    if not isinstance(pattern, str) or not pattern.strip("! "):
        raise invalid()
    if "\x00" in pattern or len(pattern) > MAX_PATTERN_CHARS:
        raise bad(f"has a pattern holding a NUL character or longer than {MAX_PATTERN_CHARS} characters: "
                  f"{show(pattern)}. Shorten it.")
    body = pattern[1:] if pattern.startswith("!") else pattern
    if body.startswith("/") or body.startswith("~"):
        raise bad(f"has the absolute pattern {show(pattern)}, but outputs are kept from the run's working "
                  "directory. Write a path relative to it, e.g. `model.pt` or `checkpoints/**`.")
    if ".." in body.split("/"):
        raise bad(f"has the pattern {show(pattern)}, which reaches out of the run's working directory with '..'. "
                  "Write a path inside it, e.g. `results/*.csv`; copy files from elsewhere into it in your command.")
    return pattern


def _check_outputs(value: Any) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise invalid()
    if len(items) > MAX_PATTERNS:
        raise bad(f"lists {len(items)} patterns, more than {MAX_PATTERNS}. Use broader globs, e.g. `checkpoints/**`.")
    checked = [_check_glob(p) for p in items]
    if checked and all(p.startswith("!") for p in checked):
        raise bad(f"lists only excludes ({show(checked)}), so nothing would be kept. Add what to keep, "
                  "e.g. `outputs: ['checkpoints/**', '!checkpoints/tmp-*']`.")
    return checked


OutputsField = Annotated[
    list[str],
    BeforeValidator(_check_outputs),
    Rule("a glob relative to the working directory, or a list of them ('!glob' excludes)",
         "Write e.g. `outputs: [model.pt, 'checkpoints/**', '!checkpoints/tmp-*']`."),
]


def _check_every(value: Any) -> Any:
    seconds = parse_time_limit(value)
    if seconds < 10:
        raise bad(f"must be at least 10s, but got {show(value)}. Upload outputs less often, e.g. `outputs_every: 10m`.")
    return seconds


OutputsEveryField = Annotated[
    int | None,
    BeforeValidator(_check_every),
    Rule("a duration like 30s, 10m or 1h", "Write e.g. `outputs_every: 10m`, or remove it to keep outputs at the end only."),
]


def _check_signal(value: Any) -> str:
    if not isinstance(value, str):
        raise invalid()
    name = value.strip().upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    if name not in STOP_SIGNALS:
        raise bad(f"is {show(value)}, which is not a signal a run is stopped with. Use one of "
                  f"{', '.join(STOP_SIGNALS)}, or remove it for SIGINT then SIGTERM.")
    return name


StopSignalField = Annotated[
    str | None,
    BeforeValidator(_check_signal),
    Rule("a signal name", "Write e.g. `stop_signal: SIGTERM`, or remove it for SIGINT then SIGTERM."),
]


def _check_grace(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and value <= 0:
        if value == 0:
            return 0
        raise bad(f"must be 0 or longer, but got {show(value)}. Write e.g. `stop_grace: 30s`.")
    return parse_time_limit(value)


StopGraceField = Annotated[
    int | None,
    BeforeValidator(_check_grace),
    Field(le=3600),
    Rule("a duration like 10s or 2m (at most 1h)", "Write e.g. `stop_grace: 30s`."),
]


def _check_mounts(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise invalid()
    out: dict[str, str] = {}
    for key, source in value.items():
        if not isinstance(key, str) or not key.strip() or "\x00" in key:
            raise bad(f"has the key {show(key)}, but each key is a path in the working directory. "
                      "Write e.g. `mounts: {data/wikitext: /shared/corpora/wikitext}`.")
        if key.startswith("/") or key.startswith("~"):
            raise bad(f"has the absolute key {show(key)}, but keys are paths in the run's working directory. "
                      "Write it relative to the working directory, e.g. `data/wikitext`.")
        norm = posixpath.normpath(key)
        if ".." in key.split("/") or norm in (".", ""):
            raise bad(f"has the key {show(key)}, which is not a path inside the working directory. "
                      "Write a path below it without '..', e.g. `data/wikitext`.")
        if not isinstance(source, str) or not source.startswith("/") or "\x00" in source:
            raise bad(f"maps {show(key)} to {show(source)}, but the source is an absolute path on the backend. "
                      "Write e.g. `/shared/corpora/wikitext`.")
        if any(c in key + source for c in ":,\n"):
            raise bad(f"maps {show(key)} to {show(source)}, but mount paths cannot hold ':', ',' or a line break "
                      "(container runtimes split bind mounts on them). Rename the directory or link it elsewhere.")
        if norm in out:
            raise bad(f"names {show(norm)} twice. Keep one entry per path.")
        out[norm] = posixpath.normpath(source)
    keys = sorted(out)
    for a, b in zip(keys, keys[1:], strict=False):
        if b.startswith(a + "/"):
            raise bad(f"puts {show(b)} inside {show(a)}, another mount. Mount each path once, side by side.")
    return out


MountsField = Annotated[
    dict[str, str],
    BeforeValidator(_check_mounts),
    Rule("a mapping from a path in the working directory to an absolute path on the backend",
         "Write e.g. `mounts: {data/wikitext: /shared/corpora/wikitext}`."),
]


def task_io(spec: Any) -> dict[str, Any]:
    """The launch's ``task_io``: what the runner does around the command (empty keys left out)."""
    out: dict[str, Any] = {}
    if spec.output_metrics:
        out["output_metrics"] = list(spec.output_metrics)
    if spec.outputs:
        out["outputs"] = list(spec.outputs)
        if spec.outputs_every:
            out["outputs_every_s"] = spec.outputs_every
    if spec.stop_signal:
        out["stop_signal"] = spec.stop_signal
    if spec.stop_grace is not None:
        out["stop_grace_s"] = spec.stop_grace
    if spec.mounts:
        out["mounts"] = dict(spec.mounts)
    return out


def signal_number(name: str) -> int:
    """``SIGINT`` → 2."""
    return int(getattr(signal, name))

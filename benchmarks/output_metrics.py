"""Output metrics: what the runner's parsing of ``output_metrics:`` costs per line of a task's output.

    .venv/bin/python benchmarks/output_metrics.py [--lines 200000] [--json FILE]

Feeds lines of a chatty training script to ``runyard.runner._output_metrics.OutputMetrics``
(the object the task runner calls with every stdout/stderr line) and reports the mean
cost per line for each kind of pattern, in microseconds, on two mixes of lines:

- ``quiet``: 1 line in 50 holds a metric (the rest is progress and chatter, the common case);
- ``dense``: every line holds a metric (a script that prints a loss per step).

Patterns: one regex (``valid ppl``), each preset, and all of them together (the worst
case a runyard.yml writes). Target: under 2 µs a line for the quiet mix with one regex
or one preset, so a chatty script is not slowed. Prints PASS or FAIL; exits 0 either way.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import fmt, print_table, verdict, write_json  # noqa: E402

from runyard.runner._output_metrics import OutputMetrics  # noqa: E402

TARGET_US = 2.0
PATTERNS = {
    "regex": [{"regex": r"valid ppl\s+(?P<val_ppl>[\d.]+)"}],
    "key=value": [{"preset": "key=value"}],
    "key: value": [{"preset": "key: value"}],
    "keras": [{"preset": "keras"}],
    "json": [{"preset": "json"}],
}
PATTERNS["all five"] = [p for ps in list(PATTERNS.values()) for p in ps]
CHATTER = [
    "| epoch   3 |   200/ 2983 batches | lr 20.00 | ms/batch 45.12 | loss  5.98 | ppl   395.12",
    "Downloading shard 3 of 8 from the cache directory /scratch/data/wikitext-103",
    "  warnings.warn(  # a library's deprecation notice on stderr, repeated",
    "375/1875 [=====>........................] - ETA: 2s - loss: 0.4521 - accuracy: 0.8412",
]
METRIC_LINES = [
    "| end of epoch   3 | time: 12.01s | valid loss  5.52 | valid ppl   250.02",
    "step=120 loss=0.2511 acc=0.9140",
    "loss: 0.2511, acc: 0.9140",
    "1875/1875 [==============================] - 3s 1ms/step - loss: 0.2958 - accuracy: 0.9140",
    '{"step": 120, "loss": 0.2511, "acc": 0.914}',
]


def lines(mix: str, n: int) -> list[str]:
    out = []
    for i in range(n):
        if mix == "dense" or i % 50 == 0:
            out.append(METRIC_LINES[i % len(METRIC_LINES)])
        else:
            out.append(CHATTER[i % len(CHATTER)])
    return out


def cost_us(patterns: list[dict[str, str]], batch: list[str], repeats: int = 3) -> float:
    """The best of ``repeats`` passes over ``batch``: mean microseconds per line."""
    best = float("inf")
    for _ in range(repeats):
        parser = OutputMetrics(patterns)
        parse = parser.parse
        t0 = time.perf_counter()
        for line in batch:
            parse(line)
        best = min(best, (time.perf_counter() - t0) / len(batch) * 1e6)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    mixes = {mix: lines(mix, args.lines) for mix in ("quiet", "dense")}
    figures: dict[str, float] = {}
    rows = []
    ok = True
    for name, patterns in PATTERNS.items():
        quiet, dense = cost_us(patterns, mixes["quiet"]), cost_us(patterns, mixes["dense"])
        figures[f"{name}/quiet_us"], figures[f"{name}/dense_us"] = quiet, dense
        passed = quiet < TARGET_US if name != "all five" else None
        ok = ok and passed is not False
        rows.append([name, fmt(quiet, " µs"), fmt(dense, " µs"), verdict(passed)])
    print_table(f"output_metrics parsing, per line ({args.lines:,} lines per mix)",
                ["patterns", "quiet (1 in 50 a metric)", "dense (every line)", f"< {TARGET_US:g} µs"], rows)
    print("PASS" if ok else "FAIL")
    write_json(args.json, figures, {"lines": args.lines, "target_us": TARGET_US})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A search's or pruner's metric that runs do not log: said at once, on the run and on the experiment.

A typo in ``search.metric`` or an ``output_metrics:`` pattern that matches nothing does not fail
anything: TPE and CMA-ES then propose at random, the median rule stops no run, and no run is best.
So, while the experiment runs, as soon as a run succeeded without logging the metric:

- the run gets the tag ``runyard.warning`` ("metric val_loss never logged", shown on its page and by
  ``runyard info``) and a ``[runyard] warning:`` line in its log;
- while no run of the experiment has logged it, the experiment gets a warning (``experiments.warnings``:
  the status line, ``runyard run``'s follow output and the banner on the UI's experiment page), which
  says what the search and the pruner do without it.

Checked once per change of the experiment's count of ended runs (one indexed query then).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from runyard.errors import RunyardError

__all__ = ["experiment_warning", "warn_missing_metrics"]

log = logging.getLogger("runyard.scheduler")

_ENDED = ("succeeded", "failed", "pruned")


def experiment_warning(metric: str, spec: Any) -> str:
    """The experiment's warning for ``metric`` never logged: the same text while it runs and once it ended."""
    algorithm = spec.search.algorithm
    parts = []
    if algorithm in ("tpe", "cmaes"):
        parts.append(f"the {algorithm} search is behaving as random search")
    if spec.early_stopping is not None:
        parts.append(f"early stopping ({spec.early_stopping.algorithm}) cannot stop any run")
    parts.append("there is no best run")
    return f"metric {metric} was never logged by any run: " + ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]


def warn_missing_metrics(state: Any) -> None:
    """Warn about each running experiment whose metric its ended runs did not log (see the module's docs)."""
    checked, warned_runs = state.missing_metric_checked, state.missing_metric_runs
    for exp in state.running_experiments():
        n_ended = sum(exp["counts"].get(s, 0) for s in _ENDED)
        if not n_ended or checked.get(exp["id"]) == n_ended:
            continue
        checked[exp["id"]] = n_ended
        spec = state.specs.get(exp["id"])
        if spec is None:
            continue
        metric = spec.search.metric
        if not metric:
            continue
        try:
            rows = state.store.experiment_runs_brief(exp["id"], metric)
            logged = any(count for *_, count in rows)
            readers = [f"search.metric ({spec.search.algorithm})"]
            if spec.early_stopping is not None:
                readers.append(f"early_stopping ({spec.early_stopping.algorithm})")
            for run_id, _, status, _, count in rows:
                # A failed run's failure is what it needs to say; a run that succeeded without the metric is the mistake.
                if status == "succeeded" and not count and run_id not in warned_runs:
                    warned_runs.add(run_id)
                    # A tag (the run page's overview, `runyard info`) and a line in its log.
                    state.store.set_tags(run_id, {"runyard.warning": f"metric {metric} never logged"})
                    state.store.append_logs(run_id, "main", [(
                        "system",
                        f"[runyard] warning: this run never logged metric {metric}, which {' and '.join(readers)} "
                        "read. Log it under that name (runyard.log, or an output_metrics: pattern in runyard.yml "
                        "whose group is named after it).", time.time())])
            if not logged and any(status == "succeeded" for _, _, status, _, _ in rows):
                state.store.add_experiment_warning(exp["id"], experiment_warning(metric, spec))
        except RunyardError as e:
            log.warning("experiment %s: checking for metric %s failed: %s", exp["id"], metric, e.message)

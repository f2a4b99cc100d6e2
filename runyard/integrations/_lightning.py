"""The Lightning logger and stop callback, built against ``lightning.pytorch`` or ``pytorch_lightning``.

The two packages are the same code under two names, and a Trainer only accepts loggers and
callbacks derived from its own package's classes, so the classes are made once per package.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import Any

from runyard.integrations._common import RunRef, numeric_metrics
from runyard.sdk import Run
from runyard.sdk._report import report

__all__ = ["make_classes"]

_LOG_MODEL = (False, True, "all")


def make_classes(pl: ModuleType, logger_utils: ModuleType, integration: str) -> tuple[type, type]:
    """``(RunyardLogger, RunyardStopCallback)`` derived from ``pl``'s Logger and Callback.

    ``logger_utils``: the matching ``lightning.fabric.utilities.logger`` (hyper-parameter clean-up);
    ``integration``: the public module the classes are shown under.
    """
    rank_zero_only = pl.utilities.rank_zero_only
    rank_zero_experiment = pl.loggers.logger.rank_zero_experiment

    class RunyardLogger(pl.loggers.Logger):  # type: ignore[name-defined,misc]
        """A Lightning logger that records to a Runyard run: hyper-parameters, metrics, checkpoints.

        ``Trainer(logger=RunyardLogger(), callbacks=[RunyardStopCallback()])``. Hyper-parameters
        (``self.save_hyperparameters()``) become the run's params (nested ones as ``a.b``),
        ``self.log(...)`` values become metrics at the trainer's global step, and checkpoints
        of the ``ModelCheckpoint`` callback become artifacts under ``checkpoints/``.

        Args:
            project: the project of an ad-hoc run started here (without a run given or active).
            name: that run's name.
            run: the run to log to; default the active run (the one Runyard launched, or
                ``runyard.init()``'s), else a new ad-hoc run that becomes the active run.
            log_model: ``True`` (default): the best and the last checkpoint when training ends;
                ``"all"``: every checkpoint when it is saved; ``False``: none.
            prefix: put before every metric name (e.g. ``"train/"``).

        Only the process of global rank 0 records, as with Lightning's other loggers. The run is
        flushed when training ends; it stays open for later ``fit``/``test`` calls and ends with
        ``runyard.finish()`` or the process.
        """

        def __init__(self, project: str | None = None, name: str = "", *, run: Run | None = None,
                     log_model: bool | str = True, prefix: str = "") -> None:
            super().__init__()
            if log_model not in _LOG_MODEL:
                raise ValueError(f"RunyardLogger(log_model=...) must be True, False or 'all', but got {log_model!r}.")
            self._ref = RunRef(run, project, name, integration)
            self._project = project
            self._log_model = log_model
            self._prefix = prefix
            self._checkpoint_callbacks: list[Any] = []
            self._logged: dict[str, float] = {}  # checkpoint path -> its mtime when uploaded

        @property
        def name(self) -> str:
            return self._project or "runyard"

        @property
        def version(self) -> str:
            run = self._ref.peek()
            return f"run-{run.id}" if run is not None and run.id is not None else "run"

        @property
        @rank_zero_experiment
        def experiment(self) -> Run:
            """The Runyard run (started on first use when none was given or active); on other ranks a stand-in."""
            return self._ref.run

        @property
        def run(self) -> Run:
            return self._ref.run

        @rank_zero_only
        def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
            params = logger_utils._convert_params(params)
            params = logger_utils._sanitize_callable_params(params)
            self._ref.log_params(params)

        @rank_zero_only
        def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
            self._ref.log(numeric_metrics(metrics, self._prefix), step)

        @rank_zero_only
        def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
            if self._log_model == "all":
                self._upload_checkpoints(checkpoint_callback)
            elif self._log_model and checkpoint_callback not in self._checkpoint_callbacks:
                self._checkpoint_callbacks.append(checkpoint_callback)

        @rank_zero_only
        def finalize(self, status: str) -> None:
            if self._log_model is True and status == "success":
                for callback in self._checkpoint_callbacks:
                    self._upload_checkpoints(callback)
            self._ref.flush()

        def _upload_checkpoints(self, callback: Any) -> None:
            """Upload the callback's checkpoints not uploaded yet (or changed since), oldest first."""
            paths = {getattr(callback, "best_model_path", ""), getattr(callback, "last_model_path", ""),
                     *getattr(callback, "best_k_models", {})}
            found = []
            for path in paths:
                if path and os.path.isfile(path):
                    mtime = os.path.getmtime(path)
                    if self._logged.get(path) != mtime:
                        found.append((mtime, path))
            for mtime, path in sorted(found):
                if self._ref.log_artifact(path, f"checkpoints/{Path(path).name}"):
                    self._logged[path] = mtime

    class RunyardStopCallback(pl.Callback):  # type: ignore[name-defined,misc]
        """Stops training (``trainer.should_stop``) once the run was stopped on the server.

        The experiment's early-stopping rule prunes a run, or a user cancels it: then
        :func:`runyard.should_stop` turns true, and this ends ``fit`` after the current batch
        (checked after each batch, epoch and validation), as Lightning's own EarlyStopping would (every process of a distributed run stops
        when any of them sees it).

        Args:
            run: the run to watch; default the active run.
        """

        def __init__(self, run: Run | None = None) -> None:
            super().__init__()
            self._ref = RunRef(run, None, "", integration)
            self.stopped_at: int | None = None  # the global step training stopped at, if it did

        def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
            self._check(trainer)

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            self._check(trainer)

        def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
            if not trainer.sanity_checking:
                self._check(trainer)

        def _check(self, trainer: Any) -> None:
            stop = self._ref.should_stop()
            if trainer.world_size > 1:
                stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
            if stop and not trainer.should_stop:
                trainer.should_stop = True
                self.stopped_at = trainer.global_step
                if trainer.is_global_zero:
                    run = self._ref.peek()
                    report(f"run {run.id if run is not None else '?'} was stopped on the server (pruned or canceled): "
                           f"training stops at step {trainer.global_step}.")

    for cls in (RunyardLogger, RunyardStopCallback):
        cls.__module__, cls.__qualname__ = integration, cls.__name__
    return RunyardLogger, RunyardStopCallback

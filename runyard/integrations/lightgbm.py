"""LightGBM: a callback that records boosting in a Runyard run and stops it when Runyard does.

Example::

    import lightgbm as lgb
    from runyard.integrations.lightgbm import log_model, runyard_callback

    booster = lgb.train({"objective": "regression", "learning_rate": 0.1}, train, num_boost_round=200,
                        valid_sets=[valid], valid_names=["valid"], callbacks=[runyard_callback()])

Also with the scikit-learn API: ``LGBMRegressor().fit(x, y, eval_X=..., eval_y=..., callbacks=[runyard_callback()])``.
Needs ``pip install 'runyard[lightgbm]'``.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from runyard.integrations._common import RunRef, require
from runyard.sdk import Run
from runyard.sdk._report import report

__all__ = ["RunyardCallback", "log_model", "runyard_callback"]

_lgb = require("lightgbm", "lightgbm", "runyard.integrations.lightgbm")


class RunyardCallback:
    """Records a LightGBM training: its params, each iteration's evaluation, the final model.

    - at the first iteration: the params given to ``lgb.train`` become the run's params;
    - each iteration: every evaluation becomes the metric ``<data>-<metric>`` (``valid-l2``,
      ``training-auc``; the names LightGBM prints) at step = the iteration (0, 1, ...); in
      ``lgb.cv`` the mean;
    - at the last iteration, or when Runyard stops training: the model, saved in LightGBM's
      text format, becomes the artifact ``model.txt`` (``log_model=False`` turns that off);
      when LightGBM's own early stopping ends training, call :func:`log_model` afterwards;
    - after each iteration: once the run was stopped on the server (pruned by the
      experiment's early-stopping rule, or canceled), ``lightgbm.callback.EarlyStopException``
      ends training, as LightGBM's own early stopping does (the booster keeps every iteration).

    Args:
        run: the run to log to; default the active run (the one Runyard launched, or
            ``runyard.init()``'s), else a new ad-hoc run that becomes the active run.
        project: the project of an ad-hoc run started here.
        name: that run's name.
        log_model: upload the final model.

    The run stays open after training; it ends with ``runyard.finish()`` or the process.
    """

    before_iteration = False

    def __init__(self, run: Run | None = None, *, project: str | None = None, name: str = "",
                 log_model: bool = True) -> None:
        self._ref = RunRef(run, project, name, "runyard.integrations.lightgbm")
        # After the callbacks given without an order and LightGBM's log_evaluation (10) and record_evaluation (20),
        # before its early_stopping (30). An instance attribute: lgb.train() gives one without it a place by its index.
        self.order = 25
        self.log_model = log_model
        self.stopped_at: int | None = None  # the iteration training stopped after, if Runyard stopped it

    def __call__(self, env: Any) -> None:
        if env.iteration == env.begin_iteration:
            self.stopped_at = None
            self._ref.log_params(dict(env.params))
        metrics = {f"{item[0]}-{item[1]}": float(item[2]) for item in env.evaluation_result_list or ()}
        self._ref.log(metrics, env.iteration)
        if self._ref.should_stop():
            self.stopped_at = env.iteration
            run = self._ref.peek()
            report(f"run {run.id if run is not None else '?'} was stopped on the server (pruned or canceled): "
                   f"boosting stops after iteration {env.iteration}.")
            self._save(env.model)
            raise _lgb.callback.EarlyStopException(env.iteration, env.evaluation_result_list or [])
        if env.iteration == env.end_iteration - 1:
            self._save(env.model)

    def _save(self, model: Any) -> None:
        if self.log_model and hasattr(model, "save_model") and not hasattr(model, "boosters"):  # not a CVBooster
            _upload(self._ref, model)
        self._ref.flush()


def runyard_callback(run: Run | None = None, *, project: str | None = None, name: str = "",
                     log_model: bool = True) -> RunyardCallback:
    """A :class:`RunyardCallback`, named as LightGBM's own callbacks are (``lgb.early_stopping()``, ...)."""
    return RunyardCallback(run, project=project, name=name, log_model=log_model)


def log_model(booster: Any, run: Run | None = None, name: str = "model.txt") -> list[str]:
    """Upload a trained booster (or a fitted ``LGBMModel``) as the artifact ``name``, in LightGBM's text format.

    Returns:
        The artifact paths uploaded.
    """
    booster = getattr(booster, "booster_", booster)  # the scikit-learn API's fitted model
    return _upload(RunRef(run, None, "", "runyard.integrations.lightgbm"), booster, name)


def _upload(ref: RunRef, booster: Any, name: str = "model.txt") -> list[str]:
    with tempfile.TemporaryDirectory(prefix="runyard-model-") as directory:
        path = os.path.join(directory, "model.txt")
        booster.save_model(path)
        return ref.log_artifact(path, name)

"""XGBoost: a training callback that records boosting in a Runyard run and stops it when Runyard does.

Example::

    import xgboost as xgb
    from runyard.integrations.xgboost import RunyardCallback

    booster = xgb.train({"eta": 0.1, "eval_metric": "rmse"}, dtrain, num_boost_round=200,
                        evals=[(dtrain, "train"), (dvalid, "valid")], callbacks=[RunyardCallback()])

Also with the scikit-learn API: ``XGBRegressor(callbacks=[RunyardCallback()])``. Needs
``pip install 'runyard[xgboost]'``.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

from runyard.integrations._common import RunRef, require
from runyard.sdk import Run
from runyard.sdk._report import report

__all__ = ["RunyardCallback"]

_xgb = require("xgboost", "xgboost", "runyard.integrations.xgboost")


class RunyardCallback(_xgb.callback.TrainingCallback):  # type: ignore[misc]
    """Records an XGBoost training: the booster's settings, each iteration's evaluation, the model.

    - before training: the learner's settings from ``Booster.save_config()`` (``objective``,
      ``booster``, ``eta``, ``max_depth``, ...; numbers as numbers) become the run's params;
    - each iteration: the last value of every evaluation becomes the metric
      ``<data>-<metric>`` (``train-rmse``, ``valid-logloss``; the names XGBoost prints) at
      step = the iteration (0, 1, ...); in ``xgb.cv`` the mean;
    - after training: the model, saved as XGBoost JSON, becomes the artifact ``model.json``
      (``log_model=False`` turns that off);
    - after each iteration: once the run was stopped on the server (pruned by the
      experiment's early-stopping rule, or canceled), training ends (the callback returns True).

    Args:
        run: the run to log to; default the active run (the one Runyard launched, or
            ``runyard.init()``'s), else a new ad-hoc run that becomes the active run.
        project: the project of an ad-hoc run started here.
        name: that run's name.
        log_model: upload the final model when training ends.

    In distributed training (``xgboost.collective``) only rank 0 records. The run stays open
    after training; it ends with ``runyard.finish()`` or the process.
    """

    def __init__(self, run: Run | None = None, *, project: str | None = None, name: str = "",
                 log_model: bool = True) -> None:
        super().__init__()
        self._ref = RunRef(run, project, name, "runyard.integrations.xgboost")
        self.log_model = log_model
        self.stopped_at: int | None = None  # the iteration training stopped after, if Runyard stopped it

    def before_training(self, model: Any) -> Any:
        self.stopped_at = None
        if _rank() == 0 and hasattr(model, "save_config"):
            self._ref.log_params(booster_params(model))
        return model

    def after_iteration(self, model: Any, epoch: int, evals_log: dict[str, dict[str, Any]]) -> bool:
        if _rank() == 0:
            metrics: dict[str, float] = {}
            for data, by_metric in evals_log.items():
                for metric, values in by_metric.items():
                    if values:
                        value = values[-1]
                        metrics[f"{data}-{metric}"] = float(value[0] if isinstance(value, tuple) else value)
            self._ref.log(metrics, epoch)
        if self._ref.should_stop():
            self.stopped_at = epoch
            run = self._ref.peek()
            report(f"run {run.id if run is not None else '?'} was stopped on the server (pruned or canceled): "
                   f"boosting stops after iteration {epoch}.")
            return True
        return False

    def after_training(self, model: Any) -> Any:
        if _rank() != 0:
            return model
        if self.log_model and hasattr(model, "save_model"):
            with tempfile.TemporaryDirectory(prefix="runyard-model-") as directory:
                path = os.path.join(directory, "model.json")
                model.save_model(path)
                self._ref.log_artifact(path, "model.json")
        self._ref.flush()
        return model


def booster_params(booster: Any) -> dict[str, Any]:
    """The settings a booster trains with, read from its saved config: ``{"objective": ..., "eta": 0.1, ...}``."""
    config = json.loads(booster.save_config())
    learner = config.get("learner", {})
    params: dict[str, Any] = {}
    params.update(learner.get("learner_train_param", {}))
    objective = learner.get("objective", {})
    if "name" in objective:
        params["objective"] = objective["name"]
    gradient_booster = learner.get("gradient_booster", {})
    for key, value in gradient_booster.items():
        if key.endswith("_train_param") and isinstance(value, dict):  # tree_train_param, gbtree_train_param, ...
            params.update(value)
    for key in ("num_feature", "num_class", "num_target"):
        if key in learner.get("learner_model_param", {}):
            params[key] = learner["learner_model_param"][key]
    params.pop("eval_metric", None)  # a JSON list in a string: the metrics show it
    return {key: _number(value) for key, value in params.items() if not isinstance(value, (dict, list))}


def _number(text: Any) -> Any:
    """XGBoost's config holds every value as a string: ``"6"`` → 6, ``"0.300000012"`` → 0.3 (as float32 it was)."""
    if not isinstance(text, str):
        return text
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return text
    return float(f"{value:.7g}")  # the config prints float32 with 9 digits


def _rank() -> int:
    try:
        return int(_xgb.collective.get_rank())
    except (AttributeError, RuntimeError, ValueError):
        return 0

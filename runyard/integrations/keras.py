"""Keras 3: a callback that records ``model.fit`` in a Runyard run and stops it when Runyard does.

Example::

    from runyard.integrations.keras import RunyardCallback

    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=20, validation_split=0.2, callbacks=[RunyardCallback()])

Works with whichever Keras backend is installed (TensorFlow, JAX, PyTorch). Needs
``pip install 'runyard[keras]'`` and a backend.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from runyard.integrations._common import RunRef, numeric_metrics, require
from runyard.sdk import Run
from runyard.sdk._report import report

__all__ = ["RunyardCallback"]

_keras = require("keras", "keras", "runyard.integrations.keras")


class RunyardCallback(_keras.callbacks.Callback):  # type: ignore[misc]
    """Records a Keras ``fit``: params, per-epoch (and optionally per-batch) metrics, the final model.

    - when training begins: ``epochs``, ``steps`` (per epoch), ``batch_size`` when known,
      ``n_params``, ``loss`` and the optimizer's settings (``optimizer.name``,
      ``optimizer.learning_rate``, ...) become the run's params;
    - each epoch: the epoch's logs (``loss``, ``val_loss``, ``accuracy``, ...) become metrics at
      step = the epoch (0, 1, ...);
    - every ``log_every_n_batches`` batches (default 0: never): the batch logs become metrics
      ``batch/<name>`` at step = the number of batches trained so far;
    - when training ends: the model, saved as ``model.keras``, becomes an artifact
      (``log_model=False`` turns that off);
    - after each batch: once the run was stopped on the server (pruned by the experiment's
      early-stopping rule, or canceled), ``model.stop_training = True`` ends ``fit``.

    Args:
        run: the run to log to; default the active run (the one Runyard launched, or
            ``runyard.init()``'s), else a new ad-hoc run that becomes the active run.
        project: the project of an ad-hoc run started here.
        name: that run's name.
        log_every_n_batches: also log batch metrics every this many batches (0: never).
        log_model: upload the final model when training ends.

    The run stays open after ``fit`` (for ``evaluate``, another ``fit``); it ends with
    ``runyard.finish()`` or the process.
    """

    def __init__(self, run: Run | None = None, *, project: str | None = None, name: str = "",
                 log_every_n_batches: int = 0, log_model: bool = True) -> None:
        super().__init__()
        if isinstance(log_every_n_batches, bool) or not isinstance(log_every_n_batches, int) or log_every_n_batches < 0:
            raise ValueError(f"RunyardCallback(log_every_n_batches=...) must be an integer >= 0 (0: no batch metrics), "
                             f"but got {log_every_n_batches!r}.")
        self._ref = RunRef(run, project, name, "runyard.integrations.keras")
        self.log_every_n_batches = log_every_n_batches
        self.log_model = log_model
        self._batches = 0
        self.stopped_at: int | None = None  # the epoch training stopped in, if Runyard stopped it
        self._epoch = 0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.stopped_at = None
        params: dict[str, Any] = {}
        fit = dict(self.params or {})
        for key in ("epochs", "steps", "batch_size"):
            if fit.get(key) is not None:
                params[key] = fit[key]
        model = self.model
        try:
            params["n_params"] = int(model.count_params())
        except (ValueError, AttributeError):  # a model not built yet
            pass
        loss = getattr(model, "loss", None)
        if loss is not None:
            params["loss"] = loss if isinstance(loss, str) else getattr(loss, "name", None) or type(loss).__name__
        optimizer = getattr(model, "optimizer", None)
        if optimizer is not None:
            params["optimizer"] = {"name": type(optimizer).__name__, **optimizer.get_config()}  # the config's name wins
        self._ref.log_params(params)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs:
            self._ref.log(numeric_metrics(logs), epoch)
        self._check_stop()

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._batches += 1
        n = self.log_every_n_batches
        if n and logs and self._batches % n == 0:
            self._ref.log(numeric_metrics(logs, "batch/"), self._batches)
        self._check_stop()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.log_model:
            with tempfile.TemporaryDirectory(prefix="runyard-model-") as directory:
                path = os.path.join(directory, "model.keras")
                self.model.save(path)
                self._ref.log_artifact(path, "model.keras")
        self._ref.flush()

    def _check_stop(self) -> None:
        if self.stopped_at is None and self._ref.should_stop():
            self.model.stop_training = True
            self.stopped_at = self._epoch
            run = self._ref.peek()
            report(f"run {run.id if run is not None else '?'} was stopped on the server (pruned or canceled): "
                   f"training stops in epoch {self._epoch}.")

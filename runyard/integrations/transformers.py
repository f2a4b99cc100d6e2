"""Hugging Face Transformers: a ``TrainerCallback`` that records a ``Trainer``'s training in a Runyard run.

Example::

    from transformers import Trainer, TrainingArguments
    from runyard.integrations.transformers import RunyardCallback

    trainer = Trainer(model=model, args=TrainingArguments("out", report_to="none"), train_dataset=train,
                      callbacks=[RunyardCallback()])
    trainer.train()

Transformers picks its ``report_to=`` integrations from a fixed table inside the library
(``transformers.integrations.integration_utils``), with no way for another package to add
one, so Runyard is passed as a callback rather than as ``report_to="runyard"``.

Needs ``pip install 'runyard[transformers]'``.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from runyard.integrations._common import RunRef, numeric_metrics, require
from runyard.sdk import Run
from runyard.sdk._report import report

__all__ = ["RunyardCallback"]

_transformers = require("transformers", "transformers", "runyard.integrations.transformers")

# Keys of TrainingArguments that are secrets or say nothing about the training.
_SKIPPED_ARGS = frozenset({"hub_token", "push_to_hub_token", "push_to_hub_organization", "push_to_hub_model_id",
                           "logging_dir", "output_dir"})


class RunyardCallback(_transformers.TrainerCallback):  # type: ignore[misc]
    """Records a ``Trainer``'s arguments, model config, logs and checkpoints, and stops it when Runyard does.

    - when training begins: the ``TrainingArguments`` (``learning_rate``, ``num_train_epochs``, ...)
      and the model's config (as ``model.<key>``) become the run's params;
    - every log (``logging_steps``): the numbers logged (``loss``, ``learning_rate``,
      ``eval_loss``, ...) become metrics at ``state.global_step``;
    - every save (``save_strategy``): the checkpoint directory becomes artifacts under
      ``checkpoints/checkpoint-<step>/`` (``log_checkpoints=False`` turns that off);
    - when training ends: the model (``save_pretrained``, with the tokenizer or processor the
      Trainer has) becomes artifacts under ``model/`` (``log_model=False`` turns that off);
    - after each step: once the run was stopped on the server (pruned by the experiment's
      early-stopping rule, or canceled), ``control.should_training_stop`` ends training.

    Args:
        run: the run to log to; default the active run (the one Runyard launched, or
            ``runyard.init()``'s), else a new ad-hoc run that becomes the active run.
        project: the project of an ad-hoc run started here.
        name: that run's name.
        log_checkpoints: upload each checkpoint the Trainer saves.
        log_model: upload the final model when training ends.

    Only the main process (``state.is_world_process_zero``) records. The run stays open after
    training (for ``evaluate()``); it ends with ``runyard.finish()`` or the process.
    """

    def __init__(self, run: Run | None = None, *, project: str | None = None, name: str = "",
                 log_checkpoints: bool = True, log_model: bool = True) -> None:
        self._ref = RunRef(run, project, name, "runyard.integrations.transformers")
        self.log_checkpoints = log_checkpoints
        self.log_model = log_model
        self.stopped_at: int | None = None  # the global step training stopped at, if Runyard stopped it

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        params = {k: v for k, v in args.to_dict().items() if k not in _SKIPPED_ARGS}
        config = getattr(model, "config", None)
        if config is not None and hasattr(config, "to_dict"):
            params["model"] = config.to_dict()
        if model is not None and hasattr(model, "num_parameters"):
            params["model.num_parameters"] = model.num_parameters()
        self._ref.log_params(params)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if state.is_world_process_zero and logs:
            self._ref.log(numeric_metrics(logs), state.global_step)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not (self.log_checkpoints and state.is_world_process_zero):
            return
        name = f"checkpoint-{state.global_step}"
        path = os.path.join(args.output_dir, name)
        if os.path.isdir(path):
            self._ref.log_artifact(path, f"checkpoints/{name}")

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.stopped_at is None and self._ref.should_stop():
            control.should_training_stop = True
            self.stopped_at = state.global_step
            if state.is_world_process_zero:
                run = self._ref.peek()
                report(f"run {run.id if run is not None else '?'} was stopped on the server (pruned or canceled): "
                       f"training stops at step {state.global_step}.")

    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, processing_class: Any = None,
                     **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        if self.log_model and model is not None and hasattr(model, "save_pretrained"):
            with tempfile.TemporaryDirectory(prefix="runyard-model-") as directory:
                model.save_pretrained(directory)
                if processing_class is not None and hasattr(processing_class, "save_pretrained"):
                    processing_class.save_pretrained(directory)
                self._ref.log_artifact(directory, "model")
        self._ref.flush()

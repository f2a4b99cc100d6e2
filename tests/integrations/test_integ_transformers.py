"""runyard.integrations.transformers with a real Trainer on CPU and a tiny GPT-2 built from a config (nothing
downloaded): arguments and config as params, logs at the global step, checkpoints and the model, stopping."""

from __future__ import annotations

import os

import pytest
from integration_helpers import Lazy, artifact_paths, lazy_framework, points, prune_and_wait

import runyard

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = lazy_framework("torch")
transformers = lazy_framework("transformers")
RunyardCallback = Lazy("runyard.integrations.transformers", "RunyardCallback")

pytestmark = pytest.mark.slow  # torch and the Trainer take 5-10 s to import


def _model() -> transformers.PreTrainedModel:
    transformers.set_seed(0)
    config = transformers.GPT2Config(vocab_size=32, n_positions=16, n_embd=16, n_layer=1, n_head=2)
    return transformers.GPT2LMHeadModel(config)


def _dataset(n: int = 32) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    rows = []
    for _ in range(n):
        start = int(torch.randint(0, 16, (1,), generator=g))
        ids = torch.arange(start, start + 12) % 32  # counting sequences: easy to learn
        rows.append({"input_ids": ids, "labels": ids.clone()})
    return rows


def _args(tmp_path, **more) -> transformers.TrainingArguments:
    return transformers.TrainingArguments(output_dir=str(tmp_path / "out"), per_device_train_batch_size=8,
                                          logging_steps=1, report_to="none", use_cpu=True, disable_tqdm=True,
                                          save_strategy="steps", save_steps=3, seed=0, **more)


def test_train_records_arguments_logs_checkpoints_and_the_model_and_stops_when_pruned(server, client, tmp_path) -> None:
    run = runyard.init(project="integ-transformers")

    class PruneAtStepFive(transformers.TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs) -> None:
            if state.global_step == 5:
                prune_and_wait(client, run)

    callback = RunyardCallback()
    trainer = transformers.Trainer(model=_model(), args=_args(tmp_path, learning_rate=5e-3, max_steps=100),
                                   train_dataset=_dataset(), callbacks=[PruneAtStepFive(), callback])
    trainer.train()
    runyard.finish()

    # Training ended at the step the run was pruned in; that step's log is not recorded (the
    # runner would take it for code ignoring should_stop()), nor the summary after it.
    assert callback.stopped_at == 5 and trainer.state.global_step == 5
    record = client.get_run(run.id)
    assert record["status"] == "pruned"
    params = record["params"]
    assert (params["learning_rate"], params["max_steps"], params["per_device_train_batch_size"]) == (5e-3, 100, 8)
    assert (params["model.n_embd"], params["model.model_type"], params["model.vocab_size"]) == (16, "gpt2", 32)
    assert params["model.num_parameters"] == _model().num_parameters()
    assert "output_dir" not in params and "hub_token" not in params
    assert [s for s, _ in points(client, run.id, "loss")] == [1, 2, 3, 4]
    assert [s for s, _ in points(client, run.id, "learning_rate")] == [1, 2, 3, 4]
    assert "train_runtime" not in client.metric_summaries(run.id)
    paths = artifact_paths(client, run.id)
    assert {"checkpoints/checkpoint-3/config.json", "checkpoints/checkpoint-3/model.safetensors",
            "model/config.json", "model/model.safetensors"} <= paths
    assert not any(p.startswith("checkpoints/checkpoint-6") for p in paths)
    client.download_artifact(run.id, "model/config.json", tmp_path / "saved" / "config.json")
    client.download_artifact(run.id, "model/model.safetensors", tmp_path / "saved" / "model.safetensors")
    loaded = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "saved")
    assert torch.equal(loaded.lm_head.weight, trainer.model.lm_head.weight.cpu())


def test_a_full_training_logs_the_summary_and_the_switches_turn_uploads_off(server, client, tmp_path) -> None:
    run = runyard.init(project="integ-transformers", params={"learning_rate": 0.01})  # the run's own value wins
    trainer = transformers.Trainer(model=_model(), args=_args(tmp_path, learning_rate=1e-3, max_steps=4),
                                   train_dataset=_dataset(),
                                   callbacks=[RunyardCallback(log_checkpoints=False, log_model=False)])
    trainer.train()
    runyard.finish()
    assert client.get_run(run.id)["params"]["learning_rate"] == 0.01
    assert [s for s, _ in points(client, run.id, "loss")] == [1, 2, 3, 4]
    assert [s for s, _ in points(client, run.id, "train_runtime")] == [4]
    assert artifact_paths(client, run.id) == set()


SWEEP_PY = """
import json, os, time
import torch
import transformers
import runyard
from runyard.integrations.transformers import RunyardCallback

poor = runyard.params()["quality"] == "poor"
transformers.set_seed(0)
model = transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=32, n_positions=16, n_embd=16, n_layer=1,
                                                             n_head=2))
rows = []
for i in range(32):
    ids = (torch.arange(12) + i) % 32
    rows.append({"input_ids": ids, "labels": ids.clone()})

class Slow(transformers.TrainerCallback):  # the poor run takes its time: the rule has to catch it
    def on_step_end(self, args, state, control, **kwargs):
        time.sleep(0.5 if poor else 0)

callback = RunyardCallback(log_checkpoints=False)
args = transformers.TrainingArguments(output_dir="out", per_device_train_batch_size=8, logging_steps=1,
                                      report_to="none", use_cpu=True, disable_tqdm=True, save_strategy="no",
                                      learning_rate=1e-9 if poor else 5e-3, max_steps=40, seed=0)
trainer = transformers.Trainer(model=model, args=args, train_dataset=rows, callbacks=[Slow(), callback])
trainer.train()
with open(os.path.join(os.environ["E2E_OUT"], os.environ["RUNYARD_RUN_ID"] + ".json"), "w") as f:
    json.dump({"stopped_at": callback.stopped_at, "steps": trainer.state.global_step}, f)
"""


def test_the_median_rule_prunes_a_poor_run_and_training_stops(sweep, client) -> None:
    result = sweep("integ-transformers-sweep", "loss", SWEEP_PY)
    assert result.good["status"] == "succeeded", result.good["status_message"]
    assert result.result(result.good) == {"stopped_at": None, "steps": 40}
    assert result.poor["status"] == "pruned", result.poor["status_message"]
    assert "median" in result.poor["status_message"]
    poor = result.result(result.poor)  # train() returned by itself: the runner's signal did not end it
    assert poor["stopped_at"] is not None and poor["steps"] == poor["stopped_at"] < 40
    assert "model/model.safetensors" in artifact_paths(client, result.poor["id"])
    assert result.poor["metrics"]["loss"]["count"] < poor["steps"]

"""runyard.integrations.lightning (and .pytorch_lightning) with real Lightning on CPU: hyper-parameters,
metrics at the global step, checkpoints, and training stopped when the run is pruned."""

from __future__ import annotations

import pytest
from integration_helpers import Lazy, artifact_paths, lazy_framework, points, prune_and_wait

import runyard

torch = lazy_framework("torch")
lp = lazy_framework("lightning.pytorch")
RunyardLogger = Lazy("runyard.integrations.lightning", "RunyardLogger")
RunyardStopCallback = Lazy("runyard.integrations.lightning", "RunyardStopCallback")

pytestmark = [
    pytest.mark.slow,  # Lightning and torch take 10-15 s to import
    # Lightning's own advice on a tiny CPU dataset (workers, logging interval): not the code under test
    pytest.mark.filterwarnings("ignore::UserWarning:lightning.*"),
    pytest.mark.filterwarnings("ignore::UserWarning:pytorch_lightning.*"),
    # Lightning 2.6 on torch 2.13's pytree (Lightning's to fix)
    pytest.mark.filterwarnings(r"ignore:`isinstance\(treespec, LeafSpec\)` is deprecated:FutureWarning"),
]


def _regression(base: type) -> type:
    """A tiny regression model on ``base`` (the LightningModule of ``lightning`` or of ``pytorch_lightning``)."""

    class Regression(base):
        def __init__(self, lr: float = 0.1, hidden: int = 8, optimizer: dict | None = None) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Sequential(torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.net(x), y)
            self.log("train_loss", loss, on_step=False, on_epoch=True)
            return loss

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    return Regression


_REGRESSION: list[type] = []


def Regression(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202, N802
    """The tiny model on ``lightning``'s LightningModule (its class made at first use, not at collection)."""
    if not _REGRESSION:
        _REGRESSION.append(_regression(lp.LightningModule))
    return _REGRESSION[0](*args, **kwargs)


def _loaders() -> tuple:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [0.0]])
    data = torch.utils.data.TensorDataset(x, y)
    return (torch.utils.data.DataLoader(data, batch_size=16, shuffle=False),
            torch.utils.data.DataLoader(data, batch_size=64))


def _trainer(pl, tmp_path, logger, callbacks, max_epochs: int):
    return pl.Trainer(max_epochs=max_epochs, accelerator="cpu", logger=logger, callbacks=callbacks,
                      default_root_dir=tmp_path, enable_progress_bar=False, enable_model_summary=False,
                      log_every_n_steps=1, num_sanity_val_steps=0)


def test_fit_records_hyperparameters_metrics_and_checkpoints_and_stops_when_pruned(server, client, tmp_path) -> None:
    lp.seed_everything(0)
    run = runyard.init(project="integ-lightning", params={"hidden": 8})

    class PruneAfterEpochThree(lp.Callback):
        def on_train_epoch_end(self, trainer, pl_module) -> None:
            if trainer.current_epoch == 3:
                prune_and_wait(client, run)

    stop = RunyardStopCallback()
    checkpoints = lp.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val_loss", save_top_k=1,
                                               save_last=True, filename="best")
    logger = RunyardLogger(prefix="")
    trainer = _trainer(lp, tmp_path, logger, [PruneAfterEpochThree(), stop, checkpoints], max_epochs=50)
    train, valid = _loaders()
    trainer.fit(Regression(lr=0.05, optimizer={"name": "sgd", "momentum": 0.0}), train, valid)
    assert logger.experiment is run and logger.version == f"run-{run.id}"  # the active run, still open
    runyard.finish()

    # fit() ended at the end of the epoch the run was pruned in (4 batches an epoch)
    assert stop.stopped_at == 16 and trainer.current_epoch == 4 and trainer.global_step == 16
    record = client.get_run(run.id)
    assert record["status"] == "pruned"
    params = record["params"]
    assert (params["lr"], params["hidden"], params["optimizer.name"], params["optimizer.momentum"]) == (0.05, 8, "sgd", 0.0)
    # Epoch metrics at the global step of each epoch's end; nothing logged once the run was pruned
    assert [s for s, _ in points(client, run.id, "train_loss")] == [3, 7, 11]
    assert [s for s, _ in points(client, run.id, "val_loss")] == [3, 7, 11, 15]
    losses = [v for _, v in points(client, run.id, "val_loss")]
    assert losses == sorted(losses, reverse=True)
    assert artifact_paths(client, run.id) == {"checkpoints/best.ckpt", "checkpoints/last.ckpt"}
    client.download_artifact(run.id, "checkpoints/last.ckpt", tmp_path / "last.ckpt")
    assert torch.load(tmp_path / "last.ckpt", weights_only=False)["global_step"] == 16


def test_log_model_all_uploads_each_checkpoint_and_false_none(server, client, tmp_path) -> None:
    train, valid = _loaders()
    runs = {}
    for log_model in ("all", False):
        run = runyard.init(project="integ-lightning")
        checkpoints = lp.callbacks.ModelCheckpoint(dirpath=tmp_path / str(log_model), filename="e{epoch}",
                                                   save_top_k=-1, every_n_epochs=1)
        _trainer(lp, tmp_path, RunyardLogger(log_model=log_model, prefix="fit/"), [checkpoints], 2).fit(
            Regression(), train, valid)
        runyard.finish()
        runs[log_model] = run
    assert artifact_paths(client, runs["all"].id) == {"checkpoints/eepoch=0.ckpt", "checkpoints/eepoch=1.ckpt"}
    assert [s for s, _ in points(client, runs["all"].id, "fit/train_loss")] == [3, 7]
    assert artifact_paths(client, runs[False].id) == set()
    with pytest.raises(ValueError, match=r"log_model=\.\.\.\) must be True, False or 'all', but got 'best'"):
        RunyardLogger(log_model="best")


def test_the_pytorch_lightning_package_gets_classes_of_its_own(server, client, tmp_path) -> None:
    pl = pytest.importorskip("pytorch_lightning")
    from runyard.integrations import pytorch_lightning as integration

    run = runyard.init(project="integ-lightning")
    logger, stop = integration.RunyardLogger(log_model=False), integration.RunyardStopCallback()
    assert isinstance(logger, pl.loggers.Logger) and isinstance(stop, pl.Callback)
    assert type(logger).__module__ == "runyard.integrations.pytorch_lightning"
    train, valid = _loaders()
    _trainer(pl, tmp_path, logger, [stop], 2).fit(_regression(pl.LightningModule)(lr=0.01), train, valid)
    runyard.finish()
    assert client.get_run(run.id)["params"]["lr"] == 0.01
    assert [s for s, _ in points(client, run.id, "val_loss")] == [3, 7]


SWEEP_PY = """
import json, os, time
import torch
import lightning.pytorch as lp
import runyard
from runyard.integrations.lightning import RunyardLogger, RunyardStopCallback

poor = runyard.params()["quality"] == "poor"
lp.seed_everything(0)

class Regression(lp.LightningModule):
    def __init__(self, lr):
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

class Slow(lp.Callback):  # the poor run takes its time: the rule has to catch it
    def on_train_epoch_end(self, trainer, pl_module):
        time.sleep(0.5 if poor else 0)

x = torch.randn(64, 4)
y = x @ torch.tensor([[1.0], [-2.0], [0.5], [0.0]])
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
stop = RunyardStopCallback()
trainer = lp.Trainer(max_epochs=40, accelerator="cpu", logger=RunyardLogger(), callbacks=[Slow(), stop],
                     enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1)
trainer.fit(Regression(lr=0.0 if poor else 0.05), loader)
with open(os.path.join(os.environ["E2E_OUT"], os.environ["RUNYARD_RUN_ID"] + ".json"), "w") as f:
    json.dump({"stopped_at": stop.stopped_at, "epochs": trainer.current_epoch}, f)
"""


def test_the_median_rule_prunes_a_poor_run_and_fit_stops(sweep, client) -> None:
    result = sweep("integ-lightning-sweep", "train_loss", SWEEP_PY)
    assert result.good["status"] == "succeeded", result.good["status_message"]
    assert result.result(result.good) == {"stopped_at": None, "epochs": 40}
    assert result.poor["status"] == "pruned", result.poor["status_message"]
    assert "median" in result.poor["status_message"]
    poor = result.result(result.poor)  # fit() returned by itself: the runner's signal did not end it
    assert poor["stopped_at"] is not None and poor["epochs"] < 40
    assert "checkpoints/last.ckpt" not in artifact_paths(client, result.poor["id"])  # no ModelCheckpoint(save_last)
    assert any(p.startswith("checkpoints/") for p in artifact_paths(client, result.poor["id"]))
    assert result.poor["metrics"]["train_loss"]["count"] <= poor["epochs"]

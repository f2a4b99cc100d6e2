"""runyard.integrations.keras with real Keras 3 (the installed backend) on CPU: params, metrics, the model, stopping."""

from __future__ import annotations

import os

import numpy as np
import pytest
from integration_helpers import Lazy, artifact_paths, lazy_framework, points, prune_and_wait

import runyard

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
keras = lazy_framework("keras")
RunyardCallback = Lazy("runyard.integrations.keras", "RunyardCallback")

pytestmark = [
    pytest.mark.slow,  # Keras and its backend take 10-20 s to import
    # TensorFlow's tensors under numpy 2, when Keras saves a model (TensorFlow's to fix, harmless here)
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"),
]


def _model(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05), loss="mse", metrics=["mae"])
    return model


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    return x, (x @ np.array([1.0, -2.0, 0.5, 0.0], dtype="float32"))[:, None]


def test_fit_records_params_metrics_and_the_model_and_stops_when_pruned(server, client, tmp_path) -> None:
    x, y = _data()
    model = _model()
    run = runyard.init(project="integ-keras")

    class PruneInEpochThree(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None) -> None:
            if epoch == 3:
                prune_and_wait(client, run)

    callback = RunyardCallback(log_every_n_batches=2)
    history = model.fit(x, y, batch_size=16, epochs=50, validation_split=0.25, verbose=0,
                        callbacks=[PruneInEpochThree(), callback])
    runyard.finish()

    # fit() ended after the epoch the run was pruned in; that epoch's metrics are not logged (the
    # runner would take them for code ignoring should_stop()).
    assert callback.stopped_at == 3 and len(history.history["loss"]) == 4
    record = client.get_run(run.id)
    assert record["status"] == "pruned"
    params = record["params"]
    assert (params["epochs"], params["steps"], params["loss"], params["optimizer.name"]) == (50, 3, "mse", "sgd")
    assert params["optimizer.learning_rate"] == pytest.approx(0.05)
    assert params["n_params"] == 4 * 8 + 8 + 8 + 1
    for key in ("loss", "val_loss", "mae", "val_mae"):
        assert [s for s, _ in points(client, run.id, key)] == [0, 1, 2], key
    assert [v for _, v in points(client, run.id, "loss")] == pytest.approx(history.history["loss"][:3])
    # 3 batches an epoch, every 2nd logged, over the 4 epochs (the run was pruned at the 4th's end)
    assert [s for s, _ in points(client, run.id, "batch/loss")] == [2, 4, 6, 8, 10, 12]
    assert artifact_paths(client, run.id) == {"model.keras"}
    client.download_artifact(run.id, "model.keras", tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5)


def test_bad_settings_are_refused_with_the_rule() -> None:
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ValueError, match=r"log_every_n_batches=\.\.\.\) must be an integer >= 0"):
            RunyardCallback(log_every_n_batches=bad)


SWEEP_PY = """
import json, os, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
import keras
import runyard
from runyard.integrations.keras import RunyardCallback

poor = runyard.params()["quality"] == "poor"
keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x = rng.normal(size=(64, 4)).astype("float32")
y = (x @ np.array([1.0, -2.0, 0.5, 0.0], dtype="float32"))[:, None]
model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0 if poor else 0.05), loss="mse")

class Slow(keras.callbacks.Callback):  # the poor run takes its time: the rule has to catch it
    def on_epoch_end(self, epoch, logs=None):
        time.sleep(0.5 if poor else 0)

callback = RunyardCallback()
history = model.fit(x, y, batch_size=16, epochs=40, verbose=0, callbacks=[Slow(), callback])
with open(os.path.join(os.environ["E2E_OUT"], os.environ["RUNYARD_RUN_ID"] + ".json"), "w") as f:
    json.dump({"stopped_at": callback.stopped_at, "epochs": len(history.history["loss"])}, f)
"""


def test_the_median_rule_prunes_a_poor_run_and_fit_stops(sweep, client) -> None:
    result = sweep("integ-keras-sweep", "loss", SWEEP_PY)
    assert result.good["status"] == "succeeded", result.good["status_message"]
    assert result.result(result.good) == {"stopped_at": None, "epochs": 40}
    assert result.poor["status"] == "pruned", result.poor["status_message"]
    assert "median" in result.poor["status_message"]
    poor = result.result(result.poor)  # fit() returned by itself: the runner's signal did not end it
    assert poor["stopped_at"] is not None and poor["epochs"] == poor["stopped_at"] + 1 < 40
    assert "model.keras" in artifact_paths(client, result.poor["id"])
    assert result.poor["metrics"]["loss"]["count"] < poor["epochs"]

"""runyard.integrations.lightgbm with real LightGBM on CPU: params, per-iteration metrics, the model, stopping."""

from __future__ import annotations

import numpy as np
import pytest
from integration_helpers import Lazy, artifact_paths, lazy_framework, points, prune_and_wait

import runyard

lgb = lazy_framework("lightgbm")
RunyardCallback = Lazy("runyard.integrations.lightgbm", "RunyardCallback")
log_model = Lazy("runyard.integrations.lightgbm", "log_model")
runyard_callback = Lazy("runyard.integrations.lightgbm", "runyard_callback")

PARAMS = {"objective": "regression", "learning_rate": 0.2, "num_leaves": 7, "min_data_in_leaf": 5, "verbose": -1,
          "metric": ["l2", "l1"]}


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(300, 4))
    return x, x @ np.array([1.0, -2.0, 0.5, 0.0]) + rng.normal(scale=0.1, size=300)


def test_boosting_records_params_metrics_and_the_model_and_stops_when_pruned(server, client, tmp_path) -> None:
    x, y = _data()
    train = lgb.Dataset(x[:200], label=y[:200])
    valid = lgb.Dataset(x[200:], label=y[200:], reference=train)
    run = runyard.init(project="integ-lightgbm")

    def prune_at_five(env) -> None:
        if env.iteration == 5:
            prune_and_wait(client, run)

    callback = runyard_callback()
    booster = lgb.train(PARAMS, train, num_boost_round=100, valid_sets=[train, valid], valid_names=["train", "valid"],
                        callbacks=[prune_at_five, callback])
    runyard.finish()

    # LightGBM's EarlyStopException ended training at the iteration the run was pruned in; that
    # iteration's metrics are not logged (the runner would take them for code ignoring should_stop()).
    assert isinstance(callback, RunyardCallback._get()) and callback.stopped_at == 5
    assert booster.current_iteration() == 6 and booster.best_iteration == 6
    record = client.get_run(run.id)
    assert record["status"] == "pruned"
    params = record["params"]
    assert (params["objective"], params["learning_rate"], params["num_leaves"]) == ("regression", 0.2, 7)
    assert params["metric"] == ["l2", "l1"]
    for key in ("train-l2", "valid-l2", "train-l1", "valid-l1"):
        assert [s for s, _ in points(client, run.id, key)] == list(range(5)), key
    l2 = [v for _, v in points(client, run.id, "train-l2")]
    assert l2 == sorted(l2, reverse=True) and l2[-1] < l2[0]
    assert artifact_paths(client, run.id) == {"model.txt"}
    client.download_artifact(run.id, "model.txt", tmp_path / "model.txt")
    assert lgb.Booster(model_file=str(tmp_path / "model.txt")).current_iteration() == 6


def test_a_full_training_uploads_the_model_and_log_model_uploads_a_fitted_estimator(server, client, tmp_path) -> None:
    x, y = _data(1)
    run = runyard.init(project="integ-lightgbm")
    model = lgb.LGBMRegressor(n_estimators=7, num_leaves=5, min_child_samples=5, verbose=-1)
    model.fit(x, y, eval_X=(x,), eval_y=(y,), callbacks=[runyard_callback(run)])
    assert log_model(model, name="estimator.txt") == ["estimator.txt"]
    runyard.finish()
    assert [s for s, _ in points(client, run.id, "training-l2")] == list(range(7)), client.metric_summaries(run.id)
    assert artifact_paths(client, run.id) == {"model.txt", "estimator.txt"}
    assert client.get_run(run.id)["params"]["num_leaves"] == 5


def test_cross_validation_logs_the_means_and_no_model(server, client) -> None:
    x, y = _data(2)
    run = runyard.init(project="integ-lightgbm")
    lgb.cv({**PARAMS, "metric": "l2"}, lgb.Dataset(x, label=y), num_boost_round=4, nfold=3, stratified=False,
           callbacks=[runyard_callback()])
    runyard.finish()
    assert [s for s, _ in points(client, run.id, "valid-l2")] == list(range(4))
    assert artifact_paths(client, run.id) == set()


SWEEP_PY = """
import json, os, time
import numpy as np
import lightgbm as lgb
import runyard
from runyard.integrations.lightgbm import runyard_callback

poor = runyard.params()["quality"] == "poor"
rng = np.random.default_rng(0)
x = rng.normal(size=(300, 4))
y = x @ np.array([1.0, -2.0, 0.5, 0.0])

def slow(env):  # the poor run takes its time: the rule has to catch it
    time.sleep(0.5 if poor else 0)

callback = runyard_callback()
params = {"objective": "regression", "learning_rate": 1e-6 if poor else 0.2, "num_leaves": 7, "verbose": -1}
data = lgb.Dataset(x, label=y)
booster = lgb.train(params, data, num_boost_round=40, valid_sets=[data], valid_names=["train"],
                    callbacks=[slow, callback])
with open(os.path.join(os.environ["E2E_OUT"], os.environ["RUNYARD_RUN_ID"] + ".json"), "w") as f:
    json.dump({"stopped_at": callback.stopped_at, "rounds": booster.current_iteration()}, f)
"""


@pytest.mark.slow
def test_the_median_rule_prunes_a_poor_run_and_boosting_stops(sweep, client) -> None:
    result = sweep("integ-lightgbm-sweep", "train-l2", SWEEP_PY)
    assert result.good["status"] == "succeeded", result.good["status_message"]
    assert result.result(result.good) == {"stopped_at": None, "rounds": 40}
    assert result.poor["status"] == "pruned", result.poor["status_message"]
    assert "median" in result.poor["status_message"]
    poor = result.result(result.poor)  # boosting returned by itself: the runner's signal did not end it
    assert poor["stopped_at"] is not None and poor["rounds"] == poor["stopped_at"] + 1 < 40
    assert "model.txt" in artifact_paths(client, result.poor["id"])
    assert result.poor["metrics"]["train-l2"]["count"] < poor["rounds"]

"""runyard.integrations.xgboost with real XGBoost on CPU: params, per-iteration metrics, the model, stopping."""

from __future__ import annotations

import json

import numpy as np
import pytest
from integration_helpers import Lazy, artifact_paths, lazy_framework, points, prune_and_wait

import runyard

xgb = lazy_framework("xgboost")
RunyardCallback = Lazy("runyard.integrations.xgboost", "RunyardCallback")


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(200, 4))
    return x, x @ np.array([1.0, -2.0, 0.5, 0.0]) + rng.normal(scale=0.1, size=200)


def test_boosting_records_params_metrics_and_the_model_and_stops_when_pruned(server, client, tmp_path) -> None:
    x, y = _data()
    train, valid = xgb.DMatrix(x[:150], label=y[:150]), xgb.DMatrix(x[150:], label=y[150:])
    run = runyard.init(project="integ-xgboost", params={"eta": 0.3})  # the run's own value of a param wins

    class PruneAtFive(xgb.callback.TrainingCallback):
        def after_iteration(self, model, epoch, evals_log) -> bool:
            if epoch == 5:
                prune_and_wait(client, run)
            return False

    callback = RunyardCallback()
    booster = xgb.train({"eta": 0.2, "max_depth": 3, "eval_metric": ["rmse", "mae"]}, train, num_boost_round=100,
                        evals=[(train, "train"), (valid, "valid")], callbacks=[PruneAtFive(), callback],
                        verbose_eval=False)
    runyard.finish()

    # Stopped by the callback at the iteration the run was pruned in; that iteration's metrics are not
    # logged (the runner would take a point from a pruned run for one that ignores should_stop()).
    assert callback.stopped_at == 5 and booster.num_boosted_rounds() == 6
    record = client.get_run(run.id)
    assert record["status"] == "pruned"
    params = record["params"]
    assert params["eta"] == 0.3 and params["max_depth"] == 3 and params["objective"] == "reg:squarederror"
    assert params["num_feature"] == 4
    for key in ("train-rmse", "valid-rmse", "train-mae", "valid-mae"):
        assert [s for s, _ in points(client, run.id, key)] == list(range(5)), key
    rmse = [v for _, v in points(client, run.id, "train-rmse")]
    assert rmse == sorted(rmse, reverse=True) and rmse[-1] < rmse[0]
    assert artifact_paths(client, run.id) == {"model.json"}
    client.download_artifact(run.id, "model.json", tmp_path / "model.json")
    loaded = xgb.Booster(model_file=str(tmp_path / "model.json"))
    assert loaded.num_boosted_rounds() == 6
    assert json.loads((tmp_path / "model.json").read_text())["learner"]["objective"]["name"] == "reg:squarederror"


def test_without_a_run_the_callback_starts_one_and_the_scikit_learn_api_works(server, client) -> None:
    x, y = _data(1)
    assert runyard.active_run() is None
    model = xgb.XGBRegressor(n_estimators=8, max_depth=2,
                             callbacks=[RunyardCallback(project="integ-xgboost", name="sklearn", log_model=False)])
    model.fit(x, y, eval_set=[(x, y)], verbose=False)
    run = runyard.active_run()  # the callback's run is the active run, finished as any other
    assert run is not None
    runyard.finish()
    record = client.get_run(run.id)
    assert (record["name"], record["status"], record["params"]["max_depth"]) == ("sklearn", "succeeded", 2)
    assert [s for s, _ in points(client, run.id, "validation_0-rmse")] == list(range(8))
    assert artifact_paths(client, run.id) == set()


SWEEP_PY = """
import json, os, time
import numpy as np
import xgboost as xgb
import runyard
from runyard.integrations.xgboost import RunyardCallback

poor = runyard.params()["quality"] == "poor"
rng = np.random.default_rng(0)
x = rng.normal(size=(200, 4))
y = x @ np.array([1.0, -2.0, 0.5, 0.0])

class Slow(xgb.callback.TrainingCallback):  # the poor run takes its time: the rule has to catch it
    def after_iteration(self, model, epoch, evals_log):
        time.sleep(0.5 if poor else 0)
        return False

callback = RunyardCallback()
booster = xgb.train({"eta": 1e-6 if poor else 0.3, "max_depth": 3}, xgb.DMatrix(x, label=y), num_boost_round=40,
                    evals=[(xgb.DMatrix(x, label=y), "train")], callbacks=[Slow(), callback], verbose_eval=False)
with open(os.path.join(os.environ["E2E_OUT"], os.environ["RUNYARD_RUN_ID"] + ".json"), "w") as f:
    json.dump({"stopped_at": callback.stopped_at, "rounds": booster.num_boosted_rounds()}, f)
"""


@pytest.mark.slow
def test_the_median_rule_prunes_a_poor_run_and_boosting_stops(sweep, client) -> None:
    result = sweep("integ-xgboost-sweep", "train-rmse", SWEEP_PY)
    assert result.good["status"] == "succeeded", result.good["status_message"]
    assert result.result(result.good) == {"stopped_at": None, "rounds": 40}
    assert result.poor["status"] == "pruned", result.poor["status_message"]
    assert "median" in result.poor["status_message"]
    poor = result.result(result.poor)  # boosting returned by itself: the runner's signal did not end it
    assert poor["stopped_at"] is not None and poor["rounds"] == poor["stopped_at"] + 1 < 40
    assert "model.json" in artifact_paths(client, result.poor["id"])
    assert result.poor["metrics"]["train-rmse"]["count"] < poor["rounds"]

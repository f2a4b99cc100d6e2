"""One distributed XGBoost run: each worker task trains on its shard of the digits, together.

Runyard set DMLC_TRACKER_URI, DMLC_TRACKER_PORT and DMLC_TASK_ID; XGBoost takes them as
``CommunicatorContext`` arguments (``runyard.launch.xgboost_args()``). Both workers end
with the same model; worker rank 0 logs the metrics.
"""

from __future__ import annotations

import argparse

import numpy as np
import xgboost as xgb
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from xgboost import collective

import runyard
import runyard.launch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-depth", type=int, required=True)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()

    X, y = load_digits(return_X_y=True)
    X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.25, random_state=0)
    with collective.CommunicatorContext(**runyard.launch.xgboost_args()):
        rank, world = collective.get_rank(), collective.get_world_size()
        train = xgb.DMatrix(X_train[rank::world], label=y_train[rank::world])
        val = xgb.DMatrix(X_val, label=y_val)
        history: dict[str, dict[str, list[float]]] = {}
        booster = xgb.train({"objective": "multi:softprob", "num_class": 10, "max_depth": args.max_depth,
                             "eta": 0.3, "nthread": 1, "eval_metric": "mlogloss"},
                            train, num_boost_round=args.rounds, evals=[(val, "val")], evals_result=history,
                            verbose_eval=False)
        accuracy = float((np.argmax(booster.predict(val), axis=1) == y_val).mean())
        if rank == 0:
            for step, loss in enumerate(history["val"]["mlogloss"]):
                runyard.log({"val/mlogloss": loss}, step=step)
            runyard.log({"val/accuracy": accuracy}, step=args.rounds)
        print(f"worker rank {rank} of {world}: validation accuracy {accuracy:.3f}")


if __name__ == "__main__":
    main()

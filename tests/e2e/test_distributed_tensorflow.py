"""Distributed TensorFlow on the local backend: a chief and a worker train one Keras model with
MultiWorkerMirroredStrategy on CPU, reading only the TF_CONFIG Runyard set."""

from __future__ import annotations

import json

import pytest
from dist_frameworks import require
from e2e_helpers import Yard, log_texts

pytestmark = pytest.mark.slow

TF_YML = """
project: e2e-tf
command: python train.py
distributed:
  framework: tensorflow
  chief: 1
  worker: 1
resources:
  cpus: 0.5
"""

TF_PY = """
import json, os
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
import tensorflow as tf
from sklearn.datasets import load_digits

config = json.loads(os.environ["TF_CONFIG"])
strategy = tf.distribute.MultiWorkerMirroredStrategy()  # reads TF_CONFIG
X, y = load_digits(return_X_y=True)
X, y = tf.constant(X / 16.0, tf.float32), tf.constant(y)
with strategy.scope():
    w = tf.Variable(tf.zeros([64, 10]), aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    b = tf.Variable(tf.zeros([10]), aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)


def loss_on(mask):
    logits = tf.boolean_mask(X, mask) @ w + b
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(tf.boolean_mask(y, mask), logits))


@tf.function
def step():
    ctx = tf.distribute.get_replica_context()
    rid = ctx.replica_id_in_sync_group
    total = ctx.all_reduce("SUM", tf.cast(rid + 1, tf.float32))  # 1 + 2 across the two tasks
    mask = tf.equal(tf.range(tf.shape(y)[0]) % 2, rid)  # each task its half of the digits
    with tf.GradientTape() as tape:
        loss = loss_on(mask)
    gw, gb = ctx.all_reduce("MEAN", tape.gradient(loss, [w, b]))
    w.assign_sub(0.5 * gw)
    b.assign_sub(0.5 * gb)
    return total, ctx.all_reduce("MEAN", loss)


losses = []
for _ in range(30):
    total, loss = strategy.run(step)
    losses.append(float(strategy.experimental_local_results(loss)[0]))
total = float(strategy.experimental_local_results(total)[0])
acc = float(tf.reduce_mean(tf.cast(tf.equal(tf.argmax(X @ w + b, 1), tf.cast(y, tf.int64)), tf.float32)))
print(f"{config['task']['type']}-{config['task']['index']}: sum {total} accuracy {acc:.3f}", flush=True)
with open(os.path.join(os.environ["E2E_OUT"], f"{config['task']['type']}.json"), "w") as f:
    json.dump({"config": config, "replicas": strategy.num_replicas_in_sync, "sum": total, "losses": losses,
               "accuracy": acc, "weights": float(tf.reduce_sum(w) + tf.reduce_sum(b))}, f)
"""


def test_tensorflow_chief_and_worker_train_together(yard: Yard, make_project) -> None:
    require("tensorflow")
    project = make_project("tf", TF_YML, TF_PY)
    exp = yard.submit(project.path)
    yard.wait_experiment(exp["id"], timeout_s=240)
    (run,) = yard.runs(exp["id"])
    assert run["status"] == "succeeded", yard.describe(exp["id"]) + "\n" + "\n".join(log_texts(yard.client, run["id"])[-40:])
    chief, worker = (json.loads((project.out / f"{role}.json").read_text()) for role in ("chief", "worker"))
    assert chief["config"]["task"] == {"type": "chief", "index": 0}
    assert worker["config"]["task"] == {"type": "worker", "index": 0}
    assert chief["config"]["cluster"] == worker["config"]["cluster"]
    assert chief["replicas"] == worker["replicas"] == 2
    assert chief["sum"] == worker["sum"] == 3.0  # a cross-task all-reduce
    assert chief["losses"][-1] < chief["losses"][0] * 0.5
    # One model, mirrored: both hold the same weights after training.
    assert chief["weights"] == pytest.approx(worker["weights"], rel=1e-5)
    assert chief["accuracy"] > 0.8

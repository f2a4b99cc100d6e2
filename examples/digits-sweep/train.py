"""One run of the digits sweep: an SGD classifier on the 8x8 digits.

The data is the ``digits`` dataset the runyard.yml declares: Runyard puts its files, read-only,
in the directory named by ``RUNYARD_DATASET_TRAIN`` (without it, as when run by hand, scikit-learn's
bundled copy is used). Runyard passes the params on the command line; each epoch logs the training
loss and the validation accuracy, and the loop stops when Runyard's early-stopping rule says so
(runyard.should_stop()). At the end the fitted model is stored in the run (``models/digits``,
scikit-learn's format through skops), ready to be registered: ``runyard models register RUN
models/digits --name digits``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import runyard


def load_data() -> tuple[np.ndarray, np.ndarray]:
    """The declared dataset's ``digits.npz`` when Runyard provides it, else scikit-learn's bundled digits."""
    directory = os.environ.get("RUNYARD_DATASET_TRAIN")
    if not directory:
        return load_digits(return_X_y=True)
    with np.load(Path(directory) / "digits.npz") as data:
        return data["x"], data["y"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--alpha", type=float, required=True)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--epoch-seconds", type=float, default=0.2, help="minimum time per epoch, to watch it live")
    args = parser.parse_args()

    runyard.init()
    x, y = load_data()
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    example = x_val[:5].astype(np.float32)  # raw pixels: what the stored model (scaler + classifier) takes
    scaler = StandardScaler().fit(x_train)
    x_train, x_val = scaler.transform(x_train), scaler.transform(x_val)
    classes = np.unique(y)
    model = SGDClassifier(loss="log_loss", learning_rate="constant", eta0=args.lr, alpha=args.alpha, random_state=0)
    rng = np.random.default_rng(0)
    for epoch in range(args.epochs):
        started = time.monotonic()
        order = rng.permutation(len(x_train))
        model.partial_fit(x_train[order], y_train[order], classes=classes)
        loss = log_loss(y_train, model.predict_proba(x_train), labels=classes)
        acc = accuracy_score(y_val, model.predict(x_val))
        runyard.log({"train/loss": loss, "val/accuracy": acc}, step=epoch)
        print(f"epoch {epoch:2d} loss {loss:.4f} val_accuracy {acc:.4f}", flush=True)
        time.sleep(max(0.0, args.epoch_seconds - (time.monotonic() - started)))
        if runyard.should_stop():
            print("stopped early by Runyard", flush=True)
            break
    runyard.log_model(make_pipeline(scaler, model), "digits", input_example=example, register=False)
    runyard.finish()


if __name__ == "__main__":
    main()

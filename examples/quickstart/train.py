"""Quickstart: a real small training run logged through the Runyard SDK.

A linear classifier (scikit-learn's SGDClassifier) learns the 8x8 digits bundled
with scikit-learn, one pass over the training set per epoch; every epoch logs the
training loss and the validation accuracy.

    python train.py                # logs to the local Runyard server (started on demand)
    python train.py --epochs 30 --lr 0.01
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import runyard


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--alpha", type=float, default=1e-4)
    args = parser.parse_args()

    run = runyard.init(project="quickstart", name="digits-sgd", params=vars(args))
    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    scaler = StandardScaler().fit(x_train)
    x_train, x_val = scaler.transform(x_train), scaler.transform(x_val)
    classes = np.unique(y)
    model = SGDClassifier(loss="log_loss", learning_rate="constant", eta0=args.lr, alpha=args.alpha, random_state=0)
    rng = np.random.default_rng(0)
    for epoch in range(args.epochs):
        order = rng.permutation(len(x_train))
        model.partial_fit(x_train[order], y_train[order], classes=classes)
        loss = log_loss(y_train, model.predict_proba(x_train), labels=classes)
        acc = accuracy_score(y_val, model.predict(x_val))
        runyard.log({"train/loss": loss, "val/accuracy": acc}, step=epoch)
        print(f"epoch {epoch:2d}  loss {loss:.4f}  val_accuracy {acc:.4f}")
    runyard.finish()
    print(f"run {run.id}: done")


if __name__ == "__main__":
    main()

"""One run of the digits sweep: an SGD classifier on scikit-learn's bundled 8x8 digits.

Runyard passes the params on the command line (see runyard.yml); each epoch logs
the training loss and the validation accuracy, and the loop stops when Runyard's
early-stopping rule says so (runyard.should_stop()).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import runyard


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--alpha", type=float, required=True)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--epoch-seconds", type=float, default=0.2, help="minimum time per epoch, to watch it live")
    args = parser.parse_args()

    runyard.init()
    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
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
    runyard.finish()


if __name__ == "__main__":
    main()

"""A tiny grid example: fits a polynomial of a given degree with ridge regularisation."""

from __future__ import annotations

import argparse

import numpy as np

import runyard


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--degree", type=int, required=True)
    parser.add_argument("--ridge", type=float, required=True)
    args = parser.parse_args()
    runyard.init()
    rng = np.random.default_rng(0)
    x = np.linspace(-1, 1, 200)
    y = np.sin(3 * x) + 0.1 * rng.standard_normal(x.size)
    train, val = slice(0, None, 2), slice(1, None, 2)
    features = np.vander(x, args.degree + 1)
    a = features[train]
    coef = np.linalg.solve(a.T @ a + args.ridge * np.eye(a.shape[1]), a.T @ y[train])
    mse = float(np.mean((features[val] @ coef - y[val]) ** 2))
    runyard.log({"val/mse": mse}, step=0)
    print(f"degree={args.degree} ridge={args.ridge} val_mse={mse:.5f}")
    runyard.finish()


if __name__ == "__main__":
    main()

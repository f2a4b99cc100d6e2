"""Write the digits data set the sweep reads as files: ``data/digits.npz`` (scikit-learn's bundled 8x8 digits).

Push it as a Runyard dataset; the sweep's runyard.yml declares it (``datasets: {train: digits@latest}``):

    python prepare_data.py
    runyard datasets push data --name digits --project digits -m "scikit-learn's 8x8 digits"
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "data"), help="directory to write into")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    x, y = load_digits(return_X_y=True)
    # savez (not savez_compressed) with fixed inputs: the same bytes every time, so pushing again makes no new version
    with open(out / "digits.npz", "wb") as f:
        np.savez(f, x=x.astype(np.float32), y=y.astype(np.int64))
    print(f"wrote {out / 'digits.npz'}: {len(y)} images of 8x8 pixels")


if __name__ == "__main__":
    main()

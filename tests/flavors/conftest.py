"""Flavor fixtures: small fitted models of each library and the hostile files made from them."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def xy() -> tuple[np.ndarray, np.ndarray]:
    """60 rows of 4 features and a binary label that depends on two of them."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    return x, y

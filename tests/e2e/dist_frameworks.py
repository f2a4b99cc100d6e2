"""Which framework packages the distributed tests need, and a loud skip (or a CI failure) when one is missing.

They come from the ``distributed-test`` extra (``pip install -e '.[distributed-test]'``).
"""

from __future__ import annotations

import importlib.util
import os

import pytest


def require(module: str) -> None:
    """Skip the test loudly when ``module`` is not installed; fail it when ``CI=true``."""
    if importlib.util.find_spec(module) is not None:
        return
    message = (f"{module} is not installed: pip install -e '.[distributed-test]' "
               "(torch must come as torch==2.13.0, the CPU wheel)")
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {message}. CI must run the distributed tests.")
    pytest.skip(f"SKIPPING DISTRIBUTED TEST: {message}")

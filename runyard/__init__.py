"""Runyard: self-hosted machine-learning experiments.

Training code logs through the SDK functions re-exported here::

    import runyard
    runyard.init(project="digits", params={"lr": 0.1})
    for epoch in range(10):
        runyard.log({"loss": 0.3}, step=epoch)
    runyard.finish()

Imports are lazy so that ``import runyard`` inside a run costs almost nothing.
"""

from __future__ import annotations

from typing import Any

from runyard._version import __version__ as __version__

_SDK_NAMES = {
    "init",
    "log",
    "log_params",
    "set_tags",
    "log_artifact",
    "log_image",
    "log_table",
    # models (runyard.sdk._models): log_model saves with a flavor and registers; load_model takes models:/ URIs
    "log_model",
    "register_model",
    "load_model",
    "note",
    "params",
    "finish",
    "should_stop",
    "active_run",
    "Run",
    # lineage: a dataset version read from code
    "use_dataset",
}

__all__ = sorted(_SDK_NAMES | {"__version__"})


def __getattr__(name: str) -> Any:
    if name in _SDK_NAMES:
        from runyard import sdk

        value = getattr(sdk, name)
        globals()[name] = value  # later lookups skip this hook (runyard.log is on the hot path)
        return value
    raise AttributeError(f"module 'runyard' has no attribute {name!r}")

"""The SDK training code logs through; re-exported as ``runyard.init``, ``runyard.log``, ...

Example::

    import runyard

    run = runyard.init(project="digits", params={"lr": 0.1})
    for step in range(1000):
        loss = train_step(runyard.params()["lr"])
        runyard.log({"loss": loss})  # ~1 µs: queued; a background thread sends batches
        if runyard.should_stop():  # pruned or canceled on the server
            break
    runyard.log_artifact("model.pt")
    runyard.finish()

Inside a run launched by Runyard, ``init()`` attaches to that run (``RUNYARD_RUN_ID``,
``RUNYARD_SERVER``, ``RUNYARD_PARAMS``) and the runner owns its status; anywhere else
it creates an ad-hoc run. Nothing raises into the training loop: server outages are
buffered in memory (``RUNYARD_SDK_BUFFER_POINTS``, default 1,000,000 points), then
under ``$RUNYARD_HOME/spool/<run_id>/``, and replayed in order; problems are reported
once on stderr. ``finish()`` waits up to ``RUNYARD_SDK_FLUSH_TIMEOUT_S`` (60 s).

Importing this package loads neither the HTTP client nor numpy; the client loads at ``init()``.
"""

from __future__ import annotations

import sys as _sys

from runyard.sdk._api import (
    active_run,
    finish,
    init,
    log,
    log_artifact,
    log_image,
    log_params,
    log_table,
    note,
    params,
    set_tags,
    should_stop,
)
from runyard.sdk._datasets import use_dataset
from runyard.sdk._models import load_model, log_model, register_model
from runyard.sdk._run import Run

__all__ = [
    "Run",
    "active_run",
    "finish",
    "init",
    "load_model",
    "log",
    "log_artifact",
    "log_image",
    "log_model",
    "log_params",
    "log_table",
    "note",
    "params",
    "register_model",
    "set_tags",
    "should_stop",
    "use_dataset",
]

# `runyard` re-exports these lazily through a module __getattr__, which Python calls on
# *every* `runyard.log` lookup (~0.3 µs, as much as log() itself). Binding them on the
# package once makes later lookups plain attribute reads.
_package = _sys.modules.get("runyard")
if _package is not None:
    for _name in __all__:
        _package.__dict__.setdefault(_name, globals()[_name])
    del _name
del _package

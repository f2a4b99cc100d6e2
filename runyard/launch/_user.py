"""Helpers for user code in a distributed task: the framework settings Runyard put in the environment."""

from __future__ import annotations

import os
from typing import Any

from runyard.errors import InvalidInput

__all__ = ["jax_initialize", "xgboost_args"]


def _env(name: str, framework: str) -> str:
    value = os.environ.get(name)
    if value is None:
        raise InvalidInput(f"{name} is not set: this process is not a task of a distributed {framework} run.",
                           f"Add `distributed: {{framework: {framework}, ...}}` to runyard.yml and start it with `runyard run`.")
    return value


def xgboost_args() -> dict[str, Any]:
    """Arguments for ``xgboost.collective.CommunicatorContext(**xgboost_args())`` in an xgboost worker task.

    Raises:
        InvalidInput: not inside a worker task of a distributed xgboost run.
    """
    return {"dmlc_tracker_uri": _env("DMLC_TRACKER_URI", "xgboost"),
            "dmlc_tracker_port": int(_env("DMLC_TRACKER_PORT", "xgboost")),
            "dmlc_task_id": _env("DMLC_TASK_ID", "xgboost")}


def jax_initialize(**kwargs: Any) -> None:
    """``jax.distributed.initialize`` with the coordinator, process count and id Runyard set.

    JAX 0.10 reads only ``JAX_COORDINATOR_ADDRESS`` by itself; the count and id it
    takes from a cluster it detects (Slurm, Open MPI, Kubernetes, Cloud TPU). This
    passes ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` too, so it works anywhere.

    Raises:
        InvalidInput: not inside a task of a distributed jax run.
    """
    import jax

    jax.distributed.initialize(coordinator_address=_env("JAX_COORDINATOR_ADDRESS", "jax"),
                               num_processes=int(_env("JAX_NUM_PROCESSES", "jax")),
                               process_id=int(_env("JAX_PROCESS_ID", "jax")), **kwargs)

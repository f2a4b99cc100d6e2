"""``RunLaunch`` as JSON: how a launch travels to the local agent and to ``runyard.runner exec``.

The dict is plain JSON (no pickles), so a launch file written by one Runyard
version is readable by a runner on another machine. The token travels inside it:
whoever writes a launch file must make it readable by its owner only
(:func:`write_launch_file` does).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runyard.errors import InvalidInput
from runyard.records.compute import Resources, RunLaunch, TaskSlot

__all__ = ["launch_from_dict", "launch_to_dict", "read_launch_file", "write_launch_file"]


def launch_to_dict(launch: RunLaunch) -> dict[str, Any]:
    """A JSON-safe dict that :func:`launch_from_dict` turns back into an equal ``RunLaunch``."""
    return {
        "run_id": launch.run_id,
        "attempt": launch.attempt,
        "project": launch.project,
        "experiment_id": launch.experiment_id,
        "command": launch.command,
        "snapshot_id": launch.snapshot_id,
        "server_url": launch.server_url,
        "token": launch.token,
        "params": dict(launch.params),
        "env": {str(k): str(v) for k, v in launch.env.items()},
        "setup": list(launch.setup),
        "resources": {"cpus": launch.resources.cpus, "memory_mb": launch.resources.memory_mb, "gpus": launch.resources.gpus},
        "time_limit_s": launch.time_limit_s,
        "grace_period_s": launch.grace_period_s,
        "tasks": [{"role": t.role, "rank": t.rank} for t in launch.tasks],
        "options": dict(launch.options),
        "distributed": None if launch.distributed is None else dict(launch.distributed),
        "container": None if launch.container is None else dict(launch.container),
        "tensorboard": None if launch.tensorboard is None else dict(launch.tensorboard),
        "task_io": dict(launch.task_io),
        "datasets": {str(k): dict(v) for k, v in launch.datasets.items()},
    }


_REQUIRED = ("run_id", "attempt", "project", "command", "server_url")


def launch_from_dict(data: Mapping[str, Any]) -> RunLaunch:
    """Rebuild a ``RunLaunch``.

    Raises:
        InvalidInput: a required key is missing or a value has the wrong type.
    """
    if not isinstance(data, Mapping):
        raise InvalidInput(f"A launch must be a JSON object, but got {type(data).__name__}.",
                           "Write it with runyard.runner.launch_to_dict().")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise InvalidInput(f"The launch lacks {', '.join(missing)}; a launch needs {', '.join(_REQUIRED)}.",
                           "Write it with runyard.runner.launch_to_dict().")
    try:
        res = data.get("resources") or {}
        tasks = data.get("tasks") or [{"role": "main", "rank": 0}]
        return RunLaunch(
            run_id=int(data["run_id"]),
            attempt=int(data["attempt"]),
            project=str(data["project"]),
            experiment_id=None if data.get("experiment_id") is None else int(data["experiment_id"]),
            command=str(data["command"]),
            snapshot_id=None if data.get("snapshot_id") is None else str(data["snapshot_id"]),
            server_url=str(data["server_url"]),
            token=None if data.get("token") is None else str(data["token"]),
            params=dict(data.get("params") or {}),
            env={str(k): str(v) for k, v in (data.get("env") or {}).items()},
            setup=tuple(str(s) for s in data.get("setup") or ()),
            resources=Resources(cpus=float(res.get("cpus", 1.0)), memory_mb=int(res.get("memory_mb", 0)), gpus=int(res.get("gpus", 0))),
            time_limit_s=None if data.get("time_limit_s") is None else int(data["time_limit_s"]),
            grace_period_s=float(data.get("grace_period_s", 10.0)),
            tasks=tuple(TaskSlot(str(t["role"]), int(t["rank"])) for t in tasks),
            options=dict(data.get("options") or {}),
            distributed=None if data.get("distributed") is None else dict(data["distributed"]),
            container=None if data.get("container") is None else dict(data["container"]),
            tensorboard=None if data.get("tensorboard") is None else dict(data["tensorboard"]),
            task_io=dict(data.get("task_io") or {}),
            datasets={str(k): dict(v) for k, v in (data.get("datasets") or {}).items()},
        )
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise InvalidInput(f"The launch has a value of the wrong type ({type(e).__name__}: {e}).",
                           "Write it with runyard.runner.launch_to_dict().") from e


def write_launch_file(launch: RunLaunch, path: Path) -> Path:
    """Write the launch as JSON, readable by its owner only (it holds the API token)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(launch_to_dict(launch), f)
    os.replace(tmp, path)
    return path


def read_launch_file(path: Path) -> RunLaunch:
    """Read a launch file written by :func:`write_launch_file`.

    Raises:
        InvalidInput: the file is missing, not JSON, or not a launch.
    """
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError as e:
        raise InvalidInput(f"No launch file at {path}.", "Pass the path the backend wrote with --launch.") from e
    except (OSError, ValueError) as e:
        raise InvalidInput(f"Cannot read the launch file {path}: {e}.", "Pass a file written by write_launch_file().") from e
    return launch_from_dict(data)

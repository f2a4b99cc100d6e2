"""Runyard's records as MLflow's messages, and MLflow's values as Runyard's (the mapping of docs/mlflow.md)."""

from __future__ import annotations

import json
import math
from typing import Any

from runyard.server.mlflow._errors import finite_or_text, ms
from runyard.store import Project, Run

__all__ = [
    "DEFAULT_EXPERIMENT", "DEFAULT_PROJECT", "DELETED_TAG", "EXPERIMENT_DELETED_TAG", "MODEL_TAG_PREFIX",
    "STATUS_OF_MLFLOW", "experiment_id_of", "experiment_json", "mlflow_status", "param_texts", "param_value",
    "run_info_json", "run_json",
]

#: MLflow's experiment "0" (runs started with no experiment set) is the project "default".
DEFAULT_EXPERIMENT = "0"
DEFAULT_PROJECT = "default"
#: A run deleted through MLflow keeps this tag (Runyard keeps the run: ``runs/restore`` removes the tag).
DELETED_TAG = "runyard.mlflow.deleted"
#: A project deleted as an MLflow experiment keeps this project tag.
EXPERIMENT_DELETED_TAG = "mlflow.lifecycle"
#: A model logged by MLflow 3 (``logged-models``) is kept as a run tag of this prefix + its name (JSON).
MODEL_TAG_PREFIX = "runyard.mlflow.model."
_HIDDEN_TAGS = (DELETED_TAG,)

_MLFLOW_STATUS = {"queued": "SCHEDULED", "starting": "RUNNING", "running": "RUNNING", "succeeded": "FINISHED",
                  "failed": "FAILED", "canceled": "KILLED", "pruned": "KILLED"}
#: MLflow's run statuses as Runyard's (a search for KILLED finds canceled and pruned runs).
STATUS_OF_MLFLOW = {"SCHEDULED": ["queued"], "RUNNING": ["starting", "running"], "FINISHED": ["succeeded"],
                    "FAILED": ["failed"], "KILLED": ["canceled", "pruned"]}


def mlflow_status(status: str) -> str:
    return _MLFLOW_STATUS.get(status, "RUNNING")


def experiment_id_of(project_id: int, project_name: str) -> str:
    return DEFAULT_EXPERIMENT if project_name == DEFAULT_PROJECT else str(project_id)


def experiment_json(project: Project) -> dict[str, Any]:
    exp_id = experiment_id_of(project.id, project.name)
    deleted = project.tags.get(EXPERIMENT_DELETED_TAG) == "deleted"
    return {
        "experiment_id": exp_id,
        "name": project.name,
        "artifact_location": f"mlflow-artifacts:/{exp_id}",
        "lifecycle_stage": "deleted" if deleted else "active",
        "creation_time": ms(project.created_at),
        "last_update_time": ms(project.updated_at),
        "tags": [{"key": k, "value": v} for k, v in sorted(project.tags.items()) if k != EXPERIMENT_DELETED_TAG],
    }


def _canonical_number(text: str) -> int | float | None:
    """The number whose JSON text is exactly ``text`` ("0.01", "3", "1e-05"), else None."""
    if not text or text[0] not in "-0123456789" or len(text) > 32:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if json.dumps(value) == text else None


def param_value(text: str) -> Any:
    """An MLflow param (always text) as Runyard stores it: a number when the text is one written the way
    JSON writes it (so ``runyard ls --filter 'params.lr > 0.001'`` compares numbers), else the text."""
    number = _canonical_number(text)
    return text if number is None else number


def param_text(value: Any) -> str:
    """A stored param as MLflow text: the text itself, or the JSON of anything else (numbers, lists)."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def param_texts(text: str) -> tuple[str, ...]:
    """The stored JSON texts a param equal to ``text`` may have (a number's, and a string's)."""
    as_string = json.dumps(text, sort_keys=True)
    return (as_string, text) if _canonical_number(text) is not None else (as_string,)


def run_info_json(run: Run, exp_id: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "run_id": str(run.id),
        "run_uuid": str(run.id),
        "run_name": run.name,
        "experiment_id": exp_id,
        "user_id": run.tags.get("mlflow.user", ""),
        "status": mlflow_status(run.status),
        "start_time": ms(run.started_at if run.started_at is not None else run.created_at),
        "artifact_uri": f"mlflow-artifacts:/{exp_id}/{run.id}/artifacts",
        "lifecycle_stage": "deleted" if DELETED_TAG in run.tags else "active",
    }
    if run.ended_at is not None:
        info["end_time"] = ms(run.ended_at)
    return info


def run_json(run: Run, exp_id: str) -> dict[str, Any]:
    tags = [{"key": k, "value": v} for k, v in run.tags.items() if k not in _HIDDEN_TAGS and not k.startswith(MODEL_TAG_PREFIX)]
    tags.append({"key": "mlflow.runName", "value": run.name})
    metrics = [
        {"key": k, "value": finite_or_text(s.last), "timestamp": ms(s.ts) or 0, "step": s.step}
        for k, s in run.metrics.items()
    ]
    params = [{"key": k, "value": param_text(v)} for k, v in run.params.items()]
    return {"info": run_info_json(run, exp_id), "data": {"metrics": metrics, "params": params, "tags": tags},
            "inputs": {}, "outputs": {}}

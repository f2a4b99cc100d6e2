"""Frozen records returned by the store; they double as the REST API's response schemas."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from runyard.records.status import ACTIVE, TERMINAL, RunStatus

__all__ = [
    "ACTIVE_STATUSES",
    "Artifact",
    "Dataset",
    "DatasetDetail",
    "DatasetDiff",
    "DatasetModelUse",
    "DatasetPush",
    "DatasetVersion",
    "Experiment",
    "ImageItem",
    "LogLine",
    "MetricSummary",
    "Project",
    "RUN_STATUSES",
    "Run",
    "RunEvent",
    "RunPage",
    "RunNote",
    "Snapshot",
    "TERMINAL_STATUSES",
    "TableItem",
    "Task",
    # the model registry
    "Model",
    "ModelAliasChange",
    "ModelAliasEvent",
    "ModelDetail",
    "ModelVersion",
]

# The status strings, from runyard.records.status (the one definition of run statuses).
RUN_STATUSES = tuple(s.value for s in RunStatus)
ACTIVE_STATUSES = frozenset(s.value for s in ACTIVE)
TERMINAL_STATUSES = frozenset(s.value for s in TERMINAL)


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class Project(_Record):
    id: int
    name: str
    description: str = ""
    visibility: str = "private"
    owner: str | None = None
    created_at: float
    updated_at: float
    n_experiments: int = 0
    n_runs: int = 0
    last_activity_at: float | None = None
    tags: dict[str, str] = Field(default_factory=dict, description="key -> value; an empty value is a plain label")


class Experiment(_Record):
    id: int
    project: str
    name: str
    status: str
    config: dict[str, Any] = Field(default_factory=dict)
    snapshot_id: str | None = None
    backend: str = "local"
    message: str = ""
    created_at: float
    ended_at: float | None = None
    counts: dict[str, int] = Field(default_factory=dict, description="runs per status")
    warnings: list[str] = Field(default_factory=list, description="what went wrong without failing it, e.g. a metric no run logged")


class MetricSummary(_Record):
    last: float | None
    step: int
    min: float | None
    max: float | None
    count: int
    ts: float


class Task(_Record):
    id: int
    role: str
    rank: int
    attempt: int
    status: str
    host: str = ""
    pid: int | None = None
    exit_code: int | None = None
    started_at: float | None = None
    ended_at: float | None = None
    address: str = ""  # host:port of the task's rendezvous endpoint (distributed runs)

    @property
    def label(self) -> str:
        return f"{self.role}-{self.rank}"


class RunEvent(_Record):
    status: str
    attempt: int
    message: str = ""
    ts: float


class Run(_Record):
    id: int
    project: str
    experiment_id: int | None = None
    number: int = 0
    name: str = ""
    status: str
    status_message: str = ""
    attempt: int = 1
    exit_code: int | None = None
    snapshot_id: str | None = None
    backend: str | None = None
    engine_job_id: str | None = None
    created_at: float
    started_at: float | None = None
    ended_at: float | None = None
    heartbeat_at: float | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    metrics: dict[str, MetricSummary] = Field(default_factory=dict)
    tasks: list[Task] = Field(default_factory=list)
    events: list[RunEvent] = Field(default_factory=list)


class RunPage(_Record):
    items: list[Run]
    total: int
    offset: int
    limit: int


class LogLine(_Record):
    offset: int
    task: str
    stream: str
    text: str
    ts: float


class Artifact(_Record):
    path: str
    size: int
    sha256: str
    created_at: float


class ImageItem(_Record):
    """One logged image (``GET /runs/{id}/images``)."""

    key: str
    step: int
    path: str = Field(description="the artifact path of the PNG")
    caption: str | None = None
    width: int
    height: int
    time: float = Field(description="when it was stored, seconds since the epoch")


class TableItem(_Record):
    """One logged table (``GET /runs/{id}/tables``)."""

    key: str
    step: int | None = None
    path: str = Field(description="the artifact path of the file")
    format: str = Field(description="csv or parquet")
    rows: int = Field(description="data rows (the header row not counted); -1 when unknown (Parquet on a server "
                                  "without pyarrow)")
    columns: list[str]


class RunNote(_Record):
    """A run's note (Markdown); empty text and no author when none was written."""

    text: str
    updated_at: str | None = Field(None, description="ISO 8601 time (UTC) of the last change")
    updated_by: str | None = Field(None, description="who changed it last")


class Snapshot(_Record):
    id: str
    files: list[list[Any]] = Field(description="[path, sha256, size, mode] per file")
    n_files: int
    size: int
    git_commit: str | None = None
    git_branch: str | None = None
    git_dirty: bool = False
    git_diff: str = ""
    created_at: float


# ------------------------------------------------------------------ the model registry (store/_registry.py)
class Model(_Record):
    """A registered model (``GET /projects/{project}/models``)."""

    name: str
    project: str
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    n_versions: int = Field(0, description="versions registered, archived ones included")
    latest_version: int | None = Field(None, description="the highest version that is not archived; null if none")
    aliases: dict[str, int] = Field(default_factory=dict, description="alias -> version")
    created_by: str = ""
    created_at: float
    updated_at: float


class ModelVersion(_Record):
    """One version of a registered model: its files are a snapshot, never overwritten."""

    model: str
    project: str
    version: int
    run_id: int | None = Field(None, description="the run it was registered from (null: uploaded directly)")
    source: str = Field("", description="where the files came from: runs:/RUN/PATH, or upload")
    snapshot_id: str
    files: list[list[Any]] = Field(default_factory=list, description="[path, sha256, size, mode] per file")
    n_files: int = 0
    size: int = 0
    flavor: str = "files"
    signature: dict[str, Any] | None = Field(None, description="{inputs: [...], outputs: [...]} where known")
    requirements: list[str] = Field(default_factory=list, description="pip requirement strings")
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    status: str = Field("ready", description="ready or archived")
    aliases: list[str] = Field(default_factory=list, description="the aliases naming this version")
    created_by: str = ""
    created_at: float
    archived_at: float | None = None


class ModelAliasEvent(_Record):
    """One move (or removal) of an alias: the alias's audit trail."""

    alias: str
    from_version: int | None = Field(None, description="the version it named before (null: new alias)")
    to_version: int | None = Field(None, description="the version it names now (null: removed)")
    actor: str = ""
    at: float


class ModelDetail(Model):
    """A model with its versions (oldest first) and its aliases' history (oldest first)."""

    versions: list[ModelVersion] = Field(default_factory=list)
    alias_history: list[ModelAliasEvent] = Field(default_factory=list)


class ModelAliasChange(_Record):
    """The answer to moving or removing an alias."""

    alias: str
    version: int | None = Field(None, description="the version it names now (null: removed)")
    from_version: int | None = Field(None, description="the version it named before (null: new alias)")


# --- Versioned datasets (store/_datasets.py) -----------------------------------------------------------------------

class DatasetModelUse(_Record):
    """A registered model version trained by a run that read a dataset version."""

    project: str
    model: str
    version: int


class DatasetVersion(_Record):
    """One version of a dataset: stored files (a snapshot) and/or files referenced in place."""

    id: int = Field(description="the version's row id (what run_datasets rows point at)")
    dataset: str
    project: str
    version: int
    content_id: str = Field(description="sha256 over the snapshot id and the sorted refs (uri, sha256, size)")
    snapshot_id: str | None = None
    files: list[list[Any]] = Field(default_factory=list, description="[path, sha256, size, mode] per stored file")
    refs: list[list[Any]] = Field(default_factory=list, description="[uri, sha256, size, mtime] per referenced file")
    n_files: int = 0
    size: int = 0
    message: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    created_by: str = ""
    created_at: float
    used_by_models: list[DatasetModelUse] = Field(default_factory=list,
                                                  description="model versions registered from runs that read it")


class Dataset(_Record):
    """A named, versioned set of files in a project; ``n_files`` and ``size`` are those of the latest version."""

    name: str
    project: str
    description: str = ""
    n_versions: int = 0
    latest_version: int | None = None
    n_files: int = 0
    size: int = 0
    created_by: str = ""
    created_at: float
    updated_at: float


class DatasetDetail(Dataset):
    """A dataset with its versions (newest first, without their files and refs)."""

    versions: list[DatasetVersion] = Field(default_factory=list)


class DatasetPush(_Record):
    """What pushing content did: ``created`` false when it equals the latest version's (that version is returned)."""

    created: bool
    version: DatasetVersion


class DatasetDiff(_Record):
    """What changed from version a to b; stored files by path and referenced files by uri."""

    added: list[list[Any]] = Field(default_factory=list, description="[path, size]")
    removed: list[list[Any]] = Field(default_factory=list, description="[path, size]")
    changed: list[list[Any]] = Field(default_factory=list, description="[path, size_a, size_b]")
    unchanged: int = 0

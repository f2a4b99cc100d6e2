"""SQLAlchemy tables. ``Sql*`` rows never leave ``store/``; queries return frozen records.

Ids are integers throughout: narrow keys make the metric tables fast to fill (a wide
composite key of strings, as MLflow's, cuts bulk inserts ~3x). Times are float
seconds since the epoch (UTC).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["Base"]

# Integer primary keys autoincrement as INTEGER PRIMARY KEY (rowid) on SQLite and
# BIGINT identity on PostgreSQL.
BigId = BigInteger().with_variant(Integer, "sqlite")
Double = Float(precision=53)


class Base(DeclarativeBase):
    pass


class SqlUser(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(256), default="")
    password_hash: Mapped[str] = mapped_column(String(256), default="")
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Double)


class SqlProject(Base):
    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    description: Mapped[str] = mapped_column(Text, default="")
    visibility: Mapped[str] = mapped_column(String(16), default="private")
    created_at: Mapped[float] = mapped_column(Double)
    updated_at: Mapped[float] = mapped_column(Double)


class SqlProjectTag(Base):
    """A project's tags (``problem: classification``); an empty value is a plain label. Rules: store/_tags.py."""

    __tablename__ = "project_tags"
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256), default="")
    # The project list's tag filter looks projects up by key (and value).
    __table_args__ = (Index("ix_project_tags_key_value", "key", "value"),)


class SqlExperiment(Base):
    __tablename__ = "experiments"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="running")
    config: Mapped[str] = mapped_column(Text, default="{}")
    snapshot_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    backend: Mapped[str] = mapped_column(String(64), default="local")
    message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[float] = mapped_column(Double)
    ended_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    # Who submitted it (NULL in local mode): disabling that user cancels its queued runs.
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True, index=True)
    warnings: Mapped[str] = mapped_column(Text, server_default="[]")  # JSON list of texts


class SqlRun(Base):
    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    experiment_id: Mapped[int | None] = mapped_column(ForeignKey("experiments.id"), nullable=True)
    number: Mapped[int] = mapped_column(Integer, default=0)
    name: Mapped[str] = mapped_column(String(256), default="")
    status: Mapped[str] = mapped_column(String(16), default="running")
    status_message: Mapped[str] = mapped_column(Text, default="")
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    snapshot_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    backend: Mapped[str | None] = mapped_column(String(64), nullable=True)
    engine_job_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[float] = mapped_column(Double)
    started_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    ended_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    heartbeat_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    __table_args__ = (
        Index("ix_runs_project_status", "project_id", "status"),
        Index("ix_runs_experiment", "experiment_id", "number"),
        Index("ix_runs_status_id", "status", "id"),
        Index("ix_runs_project_id", "project_id", "id"),  # a project's runs, newest first, without a sort
    )


class SqlRunEvent(Base):
    """Status history of a run: one row per transition (the UI's timeline, attempts)."""

    __tablename__ = "run_events"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    message: Mapped[str] = mapped_column(Text, default="")
    ts: Mapped[float] = mapped_column(Double)


class SqlParam(Base):
    __tablename__ = "params"
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)  # JSON text
    num: Mapped[float | None] = mapped_column(Double, nullable=True)  # numeric value, for filters
    __table_args__ = (Index("ix_params_key_num", "key", "num"),)


class SqlTag(Base):
    __tablename__ = "tags"
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text, default="")
    # The runs with (or without) a tag: filters on a key, the MLflow-compatible API's deleted runs.
    __table_args__ = (Index("ix_tags_key", "key"),)


class SqlMetricKey(Base):
    __tablename__ = "metric_keys"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(250), unique=True)


class SqlMetricSummary(Base):
    """Per (run, key): last/min/max/count, kept up to date at ingest so tables never scan points."""

    __tablename__ = "metric_summaries"
    run_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    last: Mapped[float | None] = mapped_column(Double, nullable=True)
    last_step: Mapped[int] = mapped_column(BigInteger)
    last_ts: Mapped[float] = mapped_column(Double)
    min: Mapped[float | None] = mapped_column(Double, nullable=True)
    max: Mapped[float | None] = mapped_column(Double, nullable=True)
    count: Mapped[int] = mapped_column(BigInteger)
    attempt: Mapped[int] = mapped_column(Integer, server_default="1")  # the latest attempt that logged the metric
    __table_args__ = (Index("ix_summaries_key_last", "key_id", "last"),)


class SqlMetricBlock(Base):
    """The points of a run's metric over a block of BLOCK_STEPS consecutive steps.

    ``data`` packs the points themselves (``runyard/store/_points.py``); the columns
    hold their count and extremes, so long histories are downsampled from these
    columns alone: a 1,000,000-point metric reads ~4,000 small rows.
    """

    __tablename__ = "metric_blocks"
    run_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True, server_default="1")  # the run's attempt (1, 2, ...)
    block: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)
    min: Mapped[float | None] = mapped_column(Double, nullable=True)
    min_step: Mapped[int] = mapped_column(BigInteger)
    min_ts: Mapped[float] = mapped_column(Double)
    max: Mapped[float | None] = mapped_column(Double, nullable=True)
    max_step: Mapped[int] = mapped_column(BigInteger)
    max_ts: Mapped[float] = mapped_column(Double)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class SqlMetricBatch(Base):
    """Idempotency keys of ingested batches: a retried batch is stored once."""

    __tablename__ = "metric_batches"
    run_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    n_points: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[float] = mapped_column(Double)


class SqlLogBatch(Base):
    """Idempotency keys of appended log batches: a retried batch is stored once."""

    __tablename__ = "log_batches"
    run_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_offset: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[float] = mapped_column(Double)


class SqlTask(Base):
    __tablename__ = "tasks"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(32), default="main")
    rank: Mapped[int] = mapped_column(Integer, default=0)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    host: Mapped[str] = mapped_column(String(256), default="")
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    started_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    ended_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    heartbeat_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    # "host:port" the task listens on for its framework's rendezvous (distributed runs); "" if none.
    address: Mapped[str] = mapped_column(String(300), default="", server_default="")
    __table_args__ = (UniqueConstraint("run_id", "role", "rank", "attempt", name="uq_task_slot"),)


class SqlLogLine(Base):
    """One line of a task's output. ``id`` is the offset clients read from."""

    __tablename__ = "log_lines"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(BigId)
    task: Mapped[str] = mapped_column(String(64), default="main")
    stream: Mapped[str] = mapped_column(String(8), default="stdout")
    text: Mapped[str] = mapped_column(Text)
    ts: Mapped[float] = mapped_column(Double)
    __table_args__ = (Index("ix_log_lines_run_id", "run_id", "id"),)


class SqlArtifact(Base):
    __tablename__ = "artifacts"
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    path: Mapped[str] = mapped_column(String(1024), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Double)


class SqlMedia(Base):
    """The image and table lists: one row per artifact under ``media/`` that :mod:`runyard.media` reads.

    Written in the artifact's own transaction, after its file is in place, and removed with its
    artifact row (the foreign key): a row never names a file that is not stored.
    """

    __tablename__ = "run_media"
    run_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    path: Mapped[str] = mapped_column(String(1024), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # image | table
    key: Mapped[str] = mapped_column(String(256))
    step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    caption: Mapped[str | None] = mapped_column(Text, nullable=True)
    width: Mapped[int] = mapped_column(Integer, default=0)
    height: Mapped[int] = mapped_column(Integer, default=0)
    format: Mapped[str] = mapped_column(String(8), default="")
    n_rows: Mapped[int] = mapped_column(BigInteger, default=-1)
    columns: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of names
    created_at: Mapped[float] = mapped_column(Double)
    __table_args__ = (
        ForeignKeyConstraint(["run_id", "path"], ["artifacts.run_id", "artifacts.path"], ondelete="CASCADE"),
        Index("ix_run_media_kind_key", "run_id", "kind", "key", "step"),
    )


class SqlRunNote(Base):
    """A run's note (Markdown), one per run; a table of its own so that run listings never read it."""

    __tablename__ = "run_notes"
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[float] = mapped_column(Double)
    updated_by: Mapped[str] = mapped_column(String(128), default="")


class SqlBlob(Base):
    __tablename__ = "blobs"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[float] = mapped_column(Double)


class SqlSnapshot(Base):
    __tablename__ = "snapshots"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the manifest
    manifest: Mapped[str] = mapped_column(Text)  # JSON: [[path, sha256, size, mode], ...]
    n_files: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(BigInteger)
    git_commit: Mapped[str | None] = mapped_column(String(64), nullable=True)
    git_branch: Mapped[str | None] = mapped_column(String(256), nullable=True)
    git_dirty: Mapped[bool] = mapped_column(Boolean, default=False)
    git_diff: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[float] = mapped_column(Double)


class SqlLock(Base):
    """Named leases with an expiry: the scheduler's leader lock, on SQLite and PostgreSQL alike."""

    __tablename__ = "locks"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[float] = mapped_column(Double)


class SqlProjectMember(Base):
    """A user's role in a project shared with them: viewer, editor or owner."""

    __tablename__ = "project_members"
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[float] = mapped_column(Double)


class SqlToken(Base):
    """Personal API tokens, per-run tokens and web sessions; only a sha256 of the secret is stored.

    kind ``personal``: a user's token; ``session``: a signed-in browser (cookie);
    ``run``: minted by the scheduler for one attempt of one run (``user_id`` may be NULL
    in local mode).
    """

    __tablename__ = "tokens"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True, index=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"), nullable=True, index=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[float] = mapped_column(Double)
    expires_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    last_used_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    revoked_at: Mapped[float | None] = mapped_column(Double, nullable=True)


class SqlLoginAttempt(Base):
    """Sign-in attempts per key (``user\naddress`` or ``\naddress``) in the current window.

    Counted with one atomic upsert before the password is checked, so concurrent guesses
    (from any number of server processes sharing the database) cannot exceed the limit.
    """

    __tablename__ = "login_attempts"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[float] = mapped_column(Double)
    count: Mapped[int] = mapped_column(Integer, default=0)


class SqlAuditEvent(Base):
    """Who did what: sign-ins, token changes, sharing, admin actions. Never holds a secret."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ts: Mapped[float] = mapped_column(Double, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(256), default="")
    address: Mapped[str] = mapped_column(String(64), default="")
    success: Mapped[bool] = mapped_column(Boolean, default=True)
    detail: Mapped[str] = mapped_column(Text, default="{}")


class SqlModel(Base):
    """A registered model: a named entry in a project with numbered versions (store/_registry.py)."""

    __tablename__ = "registered_models"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[str] = mapped_column(Text, default="{}")  # JSON object of strings
    created_by: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[float] = mapped_column(Double)
    updated_at: Mapped[float] = mapped_column(Double)
    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_registered_models_project_name"),)


class SqlModelVersion(Base):
    """One version of a registered model: its files are a content-addressed snapshot (never overwritten)."""

    __tablename__ = "model_versions"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"), nullable=True, index=True)
    source: Mapped[str] = mapped_column(Text, default="")  # e.g. "runs:/12/model" or "upload"
    snapshot_id: Mapped[str] = mapped_column(ForeignKey("snapshots.id"))
    flavor: Mapped[str] = mapped_column(String(32), default="files")
    signature: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON {inputs, outputs}
    requirements: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of pip requirement strings
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[str] = mapped_column(Text, default="{}")
    status: Mapped[str] = mapped_column(String(16), default="ready")  # ready | archived
    created_by: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[float] = mapped_column(Double)
    archived_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    __table_args__ = (UniqueConstraint("model_id", "version", name="uq_model_versions_model_version"),)


class SqlModelAlias(Base):
    """An alias (``production``, ``staging``, any name) naming one version of a model."""

    __tablename__ = "model_aliases"
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id", ondelete="CASCADE"), primary_key=True)
    alias: Mapped[str] = mapped_column(String(128), primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    updated_by: Mapped[str] = mapped_column(String(128), default="")
    updated_at: Mapped[float] = mapped_column(Double)


class SqlModelAliasEvent(Base):
    """Who moved (or removed) an alias when, from which version to which: the alias's audit trail."""

    __tablename__ = "model_alias_events"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id", ondelete="CASCADE"))
    alias: Mapped[str] = mapped_column(String(128))
    from_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    to_version: Mapped[int | None] = mapped_column(Integer, nullable=True)  # None: the alias was removed
    actor: Mapped[str] = mapped_column(String(128), default="")
    at: Mapped[float] = mapped_column(Double)
    __table_args__ = (Index("ix_model_alias_events_model", "model_id", "id"),)


class SqlDataset(Base):
    """A named, versioned set of files in a project (store/_datasets.py)."""

    __tablename__ = "datasets"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    last_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # never given twice
    created_by: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[float] = mapped_column(Double)
    updated_at: Mapped[float] = mapped_column(Double)
    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_datasets_project_name"),)


class SqlDatasetVersion(Base):
    """One version of a dataset: stored files (a snapshot of blobs) and/or files referenced in place.

    ``content_id`` is the sha256 of the version's canonical manifest (stored and referenced files
    together): a push whose content_id equals the latest version's makes no new version.
    ``refs`` is a JSON list ``[[uri, sha256, size, mtime], ...]`` of files left where they are
    (``/shared/scans/a.npy`` or ``s3://bucket/key``).
    """

    __tablename__ = "dataset_versions"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    content_id: Mapped[str] = mapped_column(String(64))
    snapshot_id: Mapped[str | None] = mapped_column(ForeignKey("snapshots.id"), nullable=True)
    refs: Mapped[str] = mapped_column(Text, default="[]")
    n_files: Mapped[int] = mapped_column(Integer, default=0)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    message: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[str] = mapped_column(Text, default="{}")
    created_by: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[float] = mapped_column(Double)
    __table_args__ = (UniqueConstraint("dataset_id", "version", name="uq_dataset_versions_dataset_version"),
                      Index("ix_dataset_versions_content", "dataset_id", "content_id"))


class SqlRunDataset(Base):
    """A dataset version a run read, under the name the run gave it (``train``, ``raw``): lineage."""

    __tablename__ = "run_datasets"
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"), index=True)
    recorded_at: Mapped[float] = mapped_column(Double)

"""Helpers of tests/lineage: dataset versions and model versions written straight into the fixed tables.

The dataset and model registries' own writes live in other parts of the store; these tests need only rows
that look like theirs: a dataset version is a snapshot of blobs (uploaded through the API, or recorded in
the store) plus references, a model version points at a run.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, insert, select

from runyard.client import Client
from runyard.store import Store
from runyard.store import _models as m
from runyard.store._engine import write_scope


def manifest(files: Mapping[str, bytes]) -> list[list[Any]]:
    return [[path, hashlib.sha256(data).hexdigest(), len(data), 0o644] for path, data in sorted(files.items())]


def upload_snapshot(client: Client, files: Mapping[str, bytes]) -> str:
    """Upload the files' missing blobs and create their snapshot through the API; its id."""
    entries = manifest(files)
    missing = set(client.missing_blobs([e[1] for e in entries]))
    for data in files.values():
        digest = hashlib.sha256(data).hexdigest()
        if digest in missing:
            client.upload_blob(digest, data)
            missing.discard(digest)
    return client.create_snapshot(entries)["id"]


def store_snapshot(store: Store, files: Mapping[str, bytes]) -> str:
    """A snapshot recorded in the store alone (its blobs' rows, not their bytes): for store tests."""
    entries = manifest(files)
    for e in entries:
        store.record_blob(e[1], e[2])
    snapshot_id = hashlib.sha256(json.dumps(entries).encode()).hexdigest()
    store.create_snapshot(snapshot_id, entries)
    return snapshot_id


def add_dataset_version(store: Store, project: str, name: str, *, snapshot_id: str | None = None,
                        refs: Sequence[Sequence[Any]] = (), n_files: int | None = None, size: int = 0) -> int:
    """A new version of dataset ``name`` in ``project`` (both made if missing); its version number."""
    store.ensure_project(project)
    now = time.time()
    with write_scope(store.engine) as conn:
        pid = conn.execute(select(m.SqlProject.id).where(m.SqlProject.name == project)).scalar_one()
        did = conn.execute(select(m.SqlDataset.id).where(m.SqlDataset.project_id == pid, m.SqlDataset.name == name)).scalar()
        if did is None:
            did = conn.execute(insert(m.SqlDataset).values(project_id=pid, name=name, created_at=now, updated_at=now)
                               .returning(m.SqlDataset.id)).scalar_one()
        v = m.SqlDatasetVersion
        number = conn.execute(select(func.coalesce(func.max(v.version), 0) + 1).where(v.dataset_id == did)).scalar_one()
        content = hashlib.sha256(f"{snapshot_id}{refs}{number}".encode()).hexdigest()
        conn.execute(insert(v).values(dataset_id=did, version=number, content_id=content, snapshot_id=snapshot_id,
                                      refs=json.dumps([list(r) for r in refs]),
                                      n_files=n_files if n_files is not None else len(refs), size=size, created_at=now))
    return int(number)


def add_model_version(store: Store, project: str, name: str, run_id: int | None, snapshot_id: str, *,
                      alias: str | None = None) -> int:
    """A new version of model ``name`` registered from ``run_id`` (the alias moved to it); its version number."""
    store.ensure_project(project)
    now = time.time()
    with write_scope(store.engine) as conn:
        pid = conn.execute(select(m.SqlProject.id).where(m.SqlProject.name == project)).scalar_one()
        mid = conn.execute(select(m.SqlModel.id).where(m.SqlModel.project_id == pid, m.SqlModel.name == name)).scalar()
        if mid is None:
            mid = conn.execute(insert(m.SqlModel).values(project_id=pid, name=name, created_at=now, updated_at=now)
                               .returning(m.SqlModel.id)).scalar_one()
        v = m.SqlModelVersion
        number = conn.execute(select(func.coalesce(func.max(v.version), 0) + 1).where(v.model_id == mid)).scalar_one()
        vid = conn.execute(insert(v).values(model_id=mid, version=number, run_id=run_id, snapshot_id=snapshot_id,
                                            source=f"runs:/{run_id}/model", flavor="files", created_at=now)
                           .returning(v.id)).scalar_one()
        if alias is not None:
            conn.execute(insert(m.SqlModelAlias).values(model_id=mid, alias=alias, version_id=vid, updated_at=now))
    return int(number)

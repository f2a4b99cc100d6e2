"""Files: a run's artifacts, content-addressed blobs and code snapshots."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, insert, or_, select

from runyard.errors import InvalidInput, NotFound
from runyard.media import MediaInfo
from runyard.store import _models as m
from runyard.store._common import StorePart, _now
from runyard.store._engine import read_scope, write_scope
from runyard.store._media import media_row
from runyard.store._records import Artifact, Snapshot


class FilesPart(StorePart):
    """The ``Store``'s artifact, blob and snapshot methods."""

    def record_artifact(self, run_id: int, path: str, size: int, sha256: str, media: MediaInfo | None = None) -> Artifact:
        """Record a stored file (replacing the record of an earlier one at ``path``), with its row in the
        image or table list when ``media`` describes it, in one transaction."""
        now = _now()
        with write_scope(self.engine) as conn:
            self._require_run(conn, run_id)
            conn.execute(delete(m.SqlMedia).where(m.SqlMedia.run_id == run_id, m.SqlMedia.path == path))
            conn.execute(delete(m.SqlArtifact).where(m.SqlArtifact.run_id == run_id, m.SqlArtifact.path == path))
            conn.execute(insert(m.SqlArtifact).values(run_id=run_id, path=path, size=size, sha256=sha256, created_at=now))
            if media is not None:
                conn.execute(insert(m.SqlMedia).values(**media_row(run_id, path, media, now)))
        return Artifact(path=path, size=size, sha256=sha256, created_at=now)

    def list_artifacts(self, run_id: int, prefix: str = "") -> list[Artifact]:
        a = m.SqlArtifact
        with read_scope(self.engine) as conn:
            self._require_run(conn, run_id)
            stmt = select(a.__table__).where(a.run_id == run_id)
            if prefix:
                stmt = stmt.where(or_(a.path == prefix, a.path.startswith(prefix.rstrip("/") + "/")))
            rows = conn.execute(stmt.order_by(a.path)).all()
        return [Artifact(path=r.path, size=r.size, sha256=r.sha256, created_at=r.created_at) for r in rows]

    def experiment_artifacts(self, experiment_id: int, prefix: str) -> list[tuple[int, str, Artifact]]:
        """(run id, run name, artifact) of every artifact under ``prefix`` of the experiment's runs, in one query."""
        a, r = m.SqlArtifact, m.SqlRun
        stem = prefix.rstrip("/") + "/"
        with read_scope(self.engine) as conn:
            rows = conn.execute(select(r.id, r.name, a.path, a.size, a.sha256, a.created_at).join(a, a.run_id == r.id)
                                .where(r.experiment_id == experiment_id, a.path.startswith(stem))
                                .order_by(r.id, a.path)).all()
        return [(row[0], row[1] or "", Artifact(path=row[2], size=row[3], sha256=row[4], created_at=row[5])) for row in rows]

    def find_artifact(self, run_id: int, path: str) -> Artifact | None:
        a = m.SqlArtifact
        with read_scope(self.engine) as conn:
            r = conn.execute(select(a.__table__).where(a.run_id == run_id, a.path == path)).first()
        return None if r is None else Artifact(path=r.path, size=r.size, sha256=r.sha256, created_at=r.created_at)

    def missing_blobs(self, digests: Sequence[str]) -> list[str]:
        have: set[str] = set()
        with read_scope(self.engine) as conn:
            for i in range(0, len(digests), 500):
                chunk = list(digests[i : i + 500])
                have.update(conn.execute(select(m.SqlBlob.sha256).where(m.SqlBlob.sha256.in_(chunk))).scalars())
        return [d for d in dict.fromkeys(digests) if d not in have]

    def record_blob(self, sha256: str, size: int) -> None:
        ph = "?" if self._sqlite else "%s"
        with write_scope(self.engine) as conn:
            conn.exec_driver_sql(
                f"INSERT INTO blobs (sha256, size, created_at) VALUES ({ph}, {ph}, {ph}) ON CONFLICT (sha256) DO NOTHING",
                (sha256, size, _now()),
            )

    def record_blobs(self, items: Sequence[tuple[str, int]]) -> None:
        """Record many stored blobs, ``(sha256, size)`` each, in one transaction (one executemany); blobs
        already recorded are left as they are. Used by POST /blobs/batch once its blobs are in place."""
        if not items:
            return
        ph = "?" if self._sqlite else "%s"
        now = _now()
        with write_scope(self.engine) as conn:
            conn.exec_driver_sql(
                f"INSERT INTO blobs (sha256, size, created_at) VALUES ({ph}, {ph}, {ph}) ON CONFLICT (sha256) DO NOTHING",
                [(sha256, int(size), now) for sha256, size in items],
            )

    def create_snapshot(
        self,
        snapshot_id: str,
        files: list[list[Any]],
        *,
        git_commit: str | None = None,
        git_branch: str | None = None,
        git_dirty: bool = False,
        git_diff: str = "",
    ) -> Snapshot:
        """Store a manifest; every blob it names must be stored already (upload missing ones first)."""
        digests = [f[1] for f in files]
        missing = self.missing_blobs(digests)
        if missing:
            raise InvalidInput(
                f"Snapshot {snapshot_id[:12]} names {len(missing)} blob(s) the server does not have, e.g. {missing[0]}.",
                "Upload them first: POST /api/v1/blobs/missing lists them, PUT /api/v1/blobs/SHA256 stores one.",
            )
        ph = "?" if self._sqlite else "%s"
        with write_scope(self.engine) as conn:
            conn.exec_driver_sql(
                "INSERT INTO snapshots (id, manifest, n_files, size, git_commit, git_branch, git_dirty, git_diff, created_at) "
                f"VALUES ({', '.join([ph] * 9)}) ON CONFLICT (id) DO NOTHING",
                (snapshot_id, json.dumps(files), len(files), sum(int(f[2]) for f in files), git_commit, git_branch, bool(git_dirty),
                 git_diff, _now()),
            )
        return self.get_snapshot(snapshot_id)

    def get_snapshot(self, snapshot_id: str) -> Snapshot:
        with read_scope(self.engine) as conn:
            r = conn.execute(select(m.SqlSnapshot.__table__).where(m.SqlSnapshot.id == snapshot_id)).first()
        if r is None:
            raise NotFound(f"No snapshot {snapshot_id!r}.", "Snapshots are created by `runyard run`.")
        return Snapshot(id=r.id, files=json.loads(r.manifest), n_files=r.n_files, size=r.size, git_commit=r.git_commit,
                        git_branch=r.git_branch, git_dirty=r.git_dirty, git_diff=r.git_diff, created_at=r.created_at)

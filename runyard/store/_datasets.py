"""Versioned datasets: named sets of files in a project whose versions are content-addressed (the ``Store``'s part).

A version holds stored files (a snapshot: manifest of blobs) and/or files referenced in place
(``[uri, sha256, size, mtime]``). Its ``content_id`` (:func:`runyard._manifest.dataset_content_id`) decides
whether a push changed anything: equal to the latest version's, no version is made.

Version numbers are given under a lock on the dataset's row (PostgreSQL ``SELECT ... FOR UPDATE``; SQLite
write transactions are serial, ``BEGIN IMMEDIATE``), so two pushes at once get 1 and 2, or, with the same
content, one version between them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, select, update

import runyard.names as names
from runyard._manifest import dataset_changes, dataset_content_id, dataset_keys
from runyard.errors import Conflict, InvalidInput, NotFound
from runyard.store import _models as m
from runyard.store._common import StorePart, _now
from runyard.store._engine import read_scope, write_scope
from runyard.store._records import Dataset, DatasetDetail, DatasetDiff, DatasetModelUse, DatasetPush, DatasetVersion

__all__ = ["DatasetsPart", "MAX_REFS", "MAX_URI_CHARS"]

MAX_REFS = 1_000_000
"""Referenced files per version."""

MAX_URI_CHARS = 4096
MAX_TAGS = 64
MAX_TAG_VALUE = 1000
_SHA = frozenset("0123456789abcdef")


def _check_sha(digest: Any, where: str) -> str:
    if not isinstance(digest, str) or len(digest) != 64 or not set(digest) <= _SHA:
        raise InvalidInput(f"{where}: {str(digest)[:80]!r} is not a sha256 digest (64 lowercase hex characters).",
                           "Send hashlib.sha256(data).hexdigest().")
    return digest


def check_refs(refs: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """Referenced files as stored: ``[uri, sha256, size, mtime]`` each, uris unique, sorted by uri.

    A uri is an absolute local path (``/shared/scans/a.npy``) or a URL with a scheme (``s3://bucket/key``).

    Raises:
        InvalidInput: an entry is malformed, names a uri twice, or holds text or numbers the store cannot hold.
    """
    if len(refs) > MAX_REFS:
        raise InvalidInput(f"A dataset version references at most {MAX_REFS:,} files, but got {len(refs):,}.",
                           "Split the data into several datasets.")
    out: dict[str, list[Any]] = {}
    for r in refs:
        if (not isinstance(r, (list, tuple)) or len(r) != 4 or not isinstance(r[0], str)
                or isinstance(r[2], bool) or not isinstance(r[2], int)
                or isinstance(r[3], bool) or not isinstance(r[3], (int, float))):
            raise InvalidInput(f"Reference {str(r)[:200]} is not [uri, sha256, size, mtime].",
                               "Build references with `runyard datasets push --reference`.")
        uri, sha, size, mtime = r
        where = f"Reference {uri[:200]!r}"
        problem = names.text_problem(uri)
        if problem:
            raise InvalidInput(f"{where}: the uri {problem}.", "Reference files by their path or s3:// URL.")
        if not uri or len(uri) > MAX_URI_CHARS or not (uri.startswith("/") or "://" in uri):
            raise InvalidInput(f"{where} must be an absolute path or a URL such as s3://bucket/key, of at most "
                               f"{MAX_URI_CHARS} characters.", "Reference files by their absolute path or s3:// URL.")
        if "\n" in uri or "\r" in uri or any(part == ".." for part in uri.split("/")):
            raise InvalidInput(f"{where} holds a line break or a '..' part.", "Give the file's normalised path.")
        _check_sha(sha, where)
        if not 0 <= size <= names.INT64_MAX:
            raise InvalidInput(f"{where}: size {size} is out of range.", "Send the file's size in bytes (0 to 2**63-1).")
        if not math.isfinite(mtime):
            raise InvalidInput(f"{where}: mtime {mtime} is not a finite number.", "Send os.stat(path).st_mtime.")
        if uri in out:
            raise InvalidInput(f"{where} is listed twice.", "Reference each file once.")
        out[uri] = [uri, sha, size, float(mtime)]
    return [out[k] for k in sorted(out)]


def _check_tags(tags: Mapping[str, str]) -> dict[str, str]:
    if len(tags) > MAX_TAGS:
        raise InvalidInput(f"A dataset version has at most {MAX_TAGS} tags, but got {len(tags)}.", "Keep the ones that matter.")
    out = {}
    for k, v in tags.items():
        names.check_key(k, "tag key")
        if not isinstance(v, str):
            raise InvalidInput(f"The value of tag {k!r} must be text, but got {type(v).__name__}.", "Send strings.")
        if len(v) > MAX_TAG_VALUE:
            raise InvalidInput(f"The value of tag {k[:80]!r} is {len(v):,} characters; at most {MAX_TAG_VALUE:,} are allowed.",
                               "Keep tags short; put long text in the version's message.")
        out[k] = names.check_text(v, f"tag {k!r}")
    return out


class DatasetsPart(StorePart):
    """The ``Store``'s dataset methods."""

    # ---- reading ------------------------------------------------------------------------------------------------

    def _dataset_project_id(self, conn: Connection, project: str) -> int:
        pid = conn.execute(select(m.SqlProject.id).where(m.SqlProject.name == project)).scalar()
        if pid is None:
            raise NotFound(f"No project named {project!r}.", "List projects with `runyard projects`.")
        return pid

    def _dataset_row(self, conn: Connection, project: str, name: str, *, lock: bool = False) -> Any:
        pid = self._dataset_project_id(conn, project)
        d = m.SqlDataset
        stmt = select(d.__table__).where(d.project_id == pid, d.name == name)
        row = conn.execute(stmt.with_for_update() if lock and not self._sqlite else stmt).first()
        if row is None:
            raise NotFound(f"Project {project!r} has no dataset {name!r}.",
                           f"List its datasets with `runyard datasets ls -p {project}`.")
        return row

    def list_datasets(self, project: str, q: str | None = None, *, limit: int = 1000) -> list[Dataset]:
        """The project's datasets by name; ``q`` keeps names containing it."""
        d, v = m.SqlDataset, m.SqlDatasetVersion
        with read_scope(self.engine) as conn:
            pid = self._dataset_project_id(conn, project)
            stmt = select(d.__table__).where(d.project_id == pid)
            if q:
                stmt = stmt.where(d.name.contains(q, autoescape=True))
            rows = conn.execute(stmt.order_by(d.name).limit(max(1, min(limit, 10_000)))).all()
            ids = [r.id for r in rows]
            stats: dict[int, tuple[int, int]] = {}
            latest: dict[int, Any] = {}
            if ids:
                top = (select(v.dataset_id, func.count().label("n"), func.max(v.version).label("top"))
                       .where(v.dataset_id.in_(ids)).group_by(v.dataset_id).subquery())
                for r in conn.execute(select(top.c.dataset_id, top.c.n, top.c.top, v.n_files, v.size)
                                      .join(v, (v.dataset_id == top.c.dataset_id) & (v.version == top.c.top))):
                    stats[r.dataset_id] = (r.n, r.top)
                    latest[r.dataset_id] = r
        return [self._dataset(r, project, stats.get(r.id), latest.get(r.id)) for r in rows]

    @staticmethod
    def _dataset(r: Any, project: str, stats: tuple[int, int] | None, latest: Any) -> Dataset:
        return Dataset(name=r.name, project=project, description=r.description, n_versions=stats[0] if stats else 0,
                       latest_version=stats[1] if stats else None, n_files=latest.n_files if latest else 0,
                       size=latest.size if latest else 0, created_by=r.created_by, created_at=r.created_at,
                       updated_at=r.updated_at)

    def get_dataset(self, project: str, name: str) -> DatasetDetail:
        """A dataset with its versions, newest first (without their files and refs; with the models using each)."""
        v = m.SqlDatasetVersion
        with read_scope(self.engine) as conn:
            row = self._dataset_row(conn, project, name)
            rows = conn.execute(select(v.__table__).where(v.dataset_id == row.id).order_by(v.version.desc())).all()
            used = self._models_using(conn, [r.id for r in rows])
        versions = [self._version(r, name, project, with_files=False, used=used.get(r.id)) for r in rows]
        base = self._dataset(row, project, (len(rows), rows[0].version) if rows else None, rows[0] if rows else None)
        return DatasetDetail(**base.model_dump(), versions=versions)

    def _version(self, r: Any, name: str, project: str, *, with_files: bool, files: list[list[Any]] | None = None,
                 used: list[DatasetModelUse] | None = None) -> DatasetVersion:
        return DatasetVersion(
            id=r.id, dataset=name, project=project, version=r.version, content_id=r.content_id, snapshot_id=r.snapshot_id,
            files=files or [], refs=json.loads(r.refs) if with_files else [], n_files=r.n_files, size=r.size,
            message=r.message, tags=json.loads(r.tags), created_by=r.created_by, created_at=r.created_at,
            used_by_models=used or [])

    def _version_row(self, conn: Connection, dataset_id: int, version: int | None, project: str, name: str) -> Any:
        v = m.SqlDatasetVersion
        stmt = select(v.__table__).where(v.dataset_id == dataset_id)
        if version is None:
            stmt = stmt.order_by(v.version.desc()).limit(1)
        else:
            if isinstance(version, bool) or not isinstance(version, int) or not 0 < version <= 2**31 - 1:
                raise InvalidInput(f"A dataset version is a positive number, but got {version!r}.",
                                   f"List the versions with `runyard datasets show {name}`.")
            stmt = stmt.where(v.version == version)
        r = conn.execute(stmt).first()
        if r is None:
            what = "no versions" if version is None else f"no version {version}"
            raise NotFound(f"Dataset {project}/{name} has {what}.", f"List the versions with `runyard datasets show {name} -p {project}`.")
        return r

    def _models_using(self, conn: Connection, version_ids: Sequence[int]) -> dict[int, list[DatasetModelUse]]:
        """Per dataset version id: the model versions registered from runs that read it."""
        rd, mv, rm, p = m.SqlRunDataset, m.SqlModelVersion, m.SqlModel, m.SqlProject
        out: dict[int, list[DatasetModelUse]] = {}
        if not version_ids:
            return out
        rows = conn.execute(
            select(rd.version_id, p.name, rm.name, mv.version).distinct()
            .join(mv, mv.run_id == rd.run_id).join(rm, rm.id == mv.model_id).join(p, p.id == rm.project_id)
            .where(rd.version_id.in_(list(version_ids))).order_by(p.name, rm.name, mv.version)).all()
        for vid, project, model, version in rows:
            out.setdefault(vid, []).append(DatasetModelUse(project=project, model=model, version=version))
        return out

    def get_dataset_version(self, project: str, name: str, version: int | None = None) -> DatasetVersion:
        """Version ``version`` (None: the latest) with its files (the snapshot's manifest), refs and the models using it.

        Raises:
            NotFound: no such project, dataset or version.
        """
        with read_scope(self.engine) as conn:
            row = self._dataset_row(conn, project, name)
            r = self._version_row(conn, row.id, version, project, name)
            files: list[list[Any]] = []
            if r.snapshot_id is not None:
                manifest = conn.execute(select(m.SqlSnapshot.manifest).where(m.SqlSnapshot.id == r.snapshot_id)).scalar()
                files = sorted(json.loads(manifest or "[]"))
            used = self._models_using(conn, [r.id]).get(r.id, [])
        return self._version(r, name, project, with_files=True, files=files, used=used)

    def resolve_dataset_version(self, project: str, name: str, version: int | None = None) -> DatasetVersion:
        """The dataset version a reference names (``digits:3`` → 3, ``digits:latest`` → None): see get_dataset_version."""
        return self.get_dataset_version(project, name, version)

    def diff_dataset_versions(self, project: str, name: str, a: int | None, b: int | None) -> DatasetDiff:
        """What changed from version ``a`` to ``b``: stored files compared by path, referenced ones by uri."""
        va = self.get_dataset_version(project, name, a)
        vb = self.get_dataset_version(project, name, b)
        return DatasetDiff(**dataset_changes(dataset_keys(va.files, va.refs), dataset_keys(vb.files, vb.refs)))

    # ---- writing ------------------------------------------------------------------------------------------------

    def create_dataset_version(
        self,
        project: str,
        name: str,
        *,
        snapshot_id: str | None = None,
        refs: Sequence[Sequence[Any]] = (),
        message: str = "",
        tags: Mapping[str, str] | None = None,
        description: str | None = None,
        created_by: str = "",
    ) -> DatasetPush:
        """Make a new version of dataset ``name`` (creating the dataset) unless its content equals the latest's.

        Args:
            project: the project's name.
            name: the dataset's name (:func:`runyard.names.check_dataset_name`).
            snapshot_id: the stored files, a snapshot whose blobs are all stored (POST /snapshots first).
            refs: files referenced in place, ``[uri, sha256, size, mtime]`` each.
            message, tags: the version's.
            description: sets the dataset's description when given.
            created_by: who pushed it.

        Returns:
            ``created`` false and the latest version when the content is unchanged, else true and the new version.

        Raises:
            InvalidInput: a bad name, ref, tag or message; no content; a snapshot file whose size is not its blob's.
            NotFound: no such project or snapshot.
        """
        names.check_dataset_name(name)
        names.check_text(message, "message")
        if description is not None:
            names.check_text(description, "description")
        tags = _check_tags(tags or {})
        clean_refs = check_refs(refs)
        if snapshot_id is None and not clean_refs:
            raise InvalidInput(f"A version of dataset {name!r} needs files: neither a snapshot nor references were given.",
                               "Push a directory that holds files, or --reference files in place.")
        n_files, size = len(clean_refs), sum(int(r[2]) for r in clean_refs)
        if snapshot_id is not None:
            snap = self.get_snapshot(snapshot_id)
            self._check_blob_sizes(snap.files)
            n_files += snap.n_files
            size += snap.size
        content_id = dataset_content_id(snapshot_id, clean_refs)
        d, v = m.SqlDataset, m.SqlDatasetVersion
        ph = "?" if self._sqlite else "%s"
        now = _now()
        with write_scope(self.engine) as conn:
            pid = self._dataset_project_id(conn, project)
            conn.exec_driver_sql(
                "INSERT INTO datasets (project_id, name, description, created_by, created_at, updated_at) "
                f"VALUES ({ph}, {ph}, {ph}, {ph}, {ph}, {ph}) ON CONFLICT (project_id, name) DO NOTHING",
                (pid, name, description or "", created_by, now, now))
            row = self._dataset_row(conn, project, name, lock=True)
            latest = conn.execute(select(v.__table__).where(v.dataset_id == row.id).order_by(v.version.desc()).limit(1)).first()
            if latest is not None and latest.content_id == content_id:
                if description is not None and description != row.description:
                    conn.execute(update(d).where(d.id == row.id).values(description=description, updated_at=now))
                return DatasetPush(created=False, version=self._pushed(conn, latest.id, name, project))
            # Never a number given before, even if that version was deleted since (``last_version``).
            number = max(int(row.last_version or 0), latest.version if latest is not None else 0) + 1
            res = conn.execute(v.__table__.insert().values(
                dataset_id=row.id, version=number, content_id=content_id, snapshot_id=snapshot_id,
                refs=json.dumps(clean_refs), n_files=n_files, size=size, message=message, tags=json.dumps(tags),
                created_by=created_by, created_at=now))
            values: dict[str, Any] = {"updated_at": now, "last_version": number}
            if description is not None:
                values["description"] = description
            conn.execute(update(d).where(d.id == row.id).values(**values))
            return DatasetPush(created=True, version=self._pushed(conn, res.inserted_primary_key[0], name, project))

    def _pushed(self, conn: Connection, version_id: int, name: str, project: str) -> DatasetVersion:
        v = m.SqlDatasetVersion
        r = conn.execute(select(v.__table__).where(v.id == version_id)).one()
        files: list[list[Any]] = []
        if r.snapshot_id is not None:
            files = sorted(json.loads(conn.execute(select(m.SqlSnapshot.manifest).where(m.SqlSnapshot.id == r.snapshot_id))
                                      .scalar() or "[]"))
        return self._version(r, name, project, with_files=True, files=files,
                             used=self._models_using(conn, [r.id]).get(r.id, []))

    def _check_blob_sizes(self, files: Sequence[Sequence[Any]]) -> None:
        """Each file's size must be its blob's: a manifest may not claim 10 GB for a blob of 10 bytes."""
        sizes: dict[str, int] = {}
        digests = list(dict.fromkeys(str(f[1]) for f in files))
        with read_scope(self.engine) as conn:
            for i in range(0, len(digests), 500):
                sizes.update(conn.execute(select(m.SqlBlob.sha256, m.SqlBlob.size)
                                          .where(m.SqlBlob.sha256.in_(digests[i:i + 500]))).all())
        for f in files:
            have = sizes.get(str(f[1]))
            if have is None:
                raise InvalidInput(f"File {str(f[0])[:200]!r} names blob {f[1]} that the server does not have.",
                                   "Upload it first: PUT /api/v1/blobs/SHA256.")
            if have != int(f[2]):
                raise InvalidInput(f"File {str(f[0])[:200]!r} claims {int(f[2])} bytes but its blob {str(f[1])[:12]} "
                                   f"holds {have}.", "Send each file's true size (os.stat(path).st_size).")

    def delete_dataset_version(self, project: str, name: str, version: int, *, force: bool = False) -> None:
        """Delete one version (its blobs stay: other versions and snapshots may share them).

        Refused while a registered model version was trained by a run that read it (always), and while any run
        read it unless ``force`` (then the runs' records of reading it are deleted with it).

        Raises:
            NotFound: no such project, dataset or version.
            Conflict: naming the model versions, or the number of runs and ``force``.
        """
        rd = m.SqlRunDataset
        with write_scope(self.engine) as conn:
            row = self._dataset_row(conn, project, name, lock=True)
            r = self._version_row(conn, row.id, version, project, name)
            used = self._models_using(conn, [r.id]).get(r.id, [])
            if used:
                listed = ", ".join(f"models:/{u.project}/{u.model}/{u.version}" for u in used[:10])
                more = f" and {len(used) - 10} more" if len(used) > 10 else ""
                raise Conflict(f"Dataset {project}/{name}:{version} cannot be deleted: registered model versions were "
                               f"trained on it ({listed}{more}).",
                               "Delete those model versions first; a model's data must stay to reproduce it.")
            runs = conn.execute(select(rd.run_id).where(rd.version_id == r.id).order_by(rd.run_id)).scalars().all()
            if runs and not force:
                shown = ", ".join(str(i) for i in runs[:10]) + (" ..." if len(runs) > 10 else "")
                raise Conflict(f"Dataset {project}/{name}:{version} was read by {len(runs)} run(s) ({shown}); deleting it "
                               "would break their lineage.",
                               f"A project owner can delete it anyway: `runyard datasets delete {name}:{version} --force`.")
            conn.execute(delete(rd).where(rd.version_id == r.id))
            conn.execute(delete(m.SqlDatasetVersion).where(m.SqlDatasetVersion.id == r.id))
            conn.execute(update(m.SqlDataset).where(m.SqlDataset.id == row.id).values(updated_at=_now()))

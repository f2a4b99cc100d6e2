"""The model registry: models, their numbered versions, aliases and the aliases' audit trail.

Rules the methods keep (the REST API and the CLI only pass them on):

- A version's number is assigned in the transaction that inserts it, under a lock on its
  model's row (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's writers are serial), so two
  concurrent registrations get 1 and 2, never the same number. The unique constraint on
  (model, version) backs this up: a version is never overwritten.
- A version's files are a snapshot (``_files.create_snapshot``): its blobs are stored before
  the version row is written, and the row is one insert, so a registration that stops half-way
  (a killed server) leaves no version; at most blobs nobody names yet.
- Archived versions keep their number and files and are resolved by number, but ``latest`` skips
  them, and no alias may name one: archiving a version an alias names is refused, and so is
  pointing an alias at an archived version.
- Every alias change writes a ``model_alias_events`` row in the same transaction.

Thread safety: as the ``Store``; every method is one transaction (registration from run
artifacts copies blobs first, then writes in one transaction).
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

import runyard.names as names
from runyard import _failpoints
from runyard._manifest import manifest_id
from runyard.errors import Conflict, InvalidInput, InvalidState, NotFound
from runyard.store import _models as m
from runyard.store._common import StorePart, _now
from runyard.store._engine import read_scope, write_scope
from runyard.store._records import Artifact, Model, ModelAliasChange, ModelAliasEvent, ModelDetail, ModelVersion

__all__ = ["FLAVORS", "RegistryPart"]

FLAVORS = ("sklearn", "xgboost", "pytorch", "onnx", "files")
MAX_TAGS = 100
TAG_VALUE_MAX = 5000
MAX_REQUIREMENTS = 500
REQUIREMENT_MAX = 1000
DESCRIPTION_MAX = 10_000
MAX_FILES = 100_000
_FILE_MODE = 0o644

# Copies a run's artifact into the blob store when the database knows no blob of its sha256: (run id, artifact).
# The server passes ArtifactStorage.copy_run_file_to_blob, which checks the bytes' sha256 while copying.
BlobCopier = Callable[[int, Artifact], None]


def check_flavor(flavor: Any) -> str:
    if flavor in FLAVORS:
        return str(flavor)
    raise InvalidInput(f"Unknown model flavor {flavor!r}.", f"Use one of: {', '.join(FLAVORS)}.")


def check_model_tags(tags: Mapping[str, Any], what: str = "A model") -> dict[str, str]:
    """Tags as stored: string keys (the rule of run tag keys) and string values."""
    if len(tags) > MAX_TAGS:
        raise InvalidInput(f"{what} has at most {MAX_TAGS} tags, but got {len(tags)}.", "Keep the ones that matter.")
    out: dict[str, str] = {}
    for key, value in tags.items():
        names.check_key(key, "tag")
        if not isinstance(value, str):
            raise InvalidInput(f"Tag {key!r} must have a text value, but got {type(value).__name__}.",
                               'Send the value as a string, e.g. "0.93".')
        names.check_text(value, f"Tag {key!r}")
        if len(value) > TAG_VALUE_MAX:
            raise InvalidInput(f"Tag {key!r} has a value of {len(value):,} characters; at most {TAG_VALUE_MAX:,} are allowed.",
                               "Put long text in the description.")
        out[key] = value
    return out


def _check_description(text: Any) -> str:
    if not isinstance(text, str):
        raise InvalidInput(f"A description must be text, but got {type(text).__name__}.", "Send a string.")
    names.check_text(text, "The description")
    if len(text) > DESCRIPTION_MAX:
        raise InvalidInput(f"The description has {len(text):,} characters; at most {DESCRIPTION_MAX:,} are allowed.",
                           "Shorten it.")
    return text


def _check_requirements(reqs: Sequence[Any]) -> list[str]:
    if len(reqs) > MAX_REQUIREMENTS:
        raise InvalidInput(f"A model version lists at most {MAX_REQUIREMENTS} requirements, but got {len(reqs)}.",
                           "List the packages the model needs to load, not the whole environment.")
    out = []
    for r in reqs:
        if not isinstance(r, str) or not r.strip() or len(r) > REQUIREMENT_MAX:
            raise InvalidInput(f"A requirement must be a pip requirement string, but got {str(r)[:80]!r}.",
                               "Write them as pip does, e.g. 'scikit-learn==1.5.2'.")
        names.check_text(r, "A requirement")
        out.append(r)
    return out


def _check_signature(signature: Any) -> dict[str, Any] | None:
    if signature is None:
        return None
    if not isinstance(signature, dict):
        raise InvalidInput(f"A signature must be an object {{inputs, outputs}}, but got {type(signature).__name__}.",
                           'Send e.g. {"inputs": [{"name": "x", "dtype": "float64", "shape": [-1, 64]}], "outputs": [...]}.')
    names.check_value(signature, "signature")
    return signature


def _version_number(version: Any) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= names.MODEL_VERSION_MAX:
        raise InvalidInput(f"A model version must be a whole number from 1 to {names.MODEL_VERSION_MAX}, but got {version!r}.",
                           "Versions are numbered 1, 2, 3, ... as they are registered; `runyard models show NAME` lists them.")
    return version


def _tags(text: str) -> dict[str, str]:
    value = json.loads(text or "{}")
    return value if isinstance(value, dict) else {}


def _no_model(project: str, name: str) -> NotFound:
    return NotFound(f"Project {project!r} has no model {name!r}.", f"List its models with `runyard models ls -p {project}`.")


def _no_version(project: str, name: str, version: int) -> NotFound:
    return NotFound(f"Model {name!r} of project {project!r} has no version {version}.",
                    f"List its versions with `runyard models show {name} -p {project}`.")


def relative_files(artifacts: Sequence[Artifact], paths: Sequence[str], directories: set[str]) -> tuple[str, list[list[Any]]]:
    """The snapshot manifest of ``artifacts`` with paths relative to the common directory of ``paths``.

    Each given path counts as a directory when it is one (in ``directories``), else as its file's
    directory; the common directory of those is the prefix. ``model`` (holding ``a``, ``sub/b``)
    gives ``a``, ``sub/b``; ``model/model.skops`` gives ``model.skops``.
    """
    dirs = [p if p in directories else posixpath.dirname(p) for p in paths]
    prefix = dirs[0].split("/") if dirs[0] else []
    for d in dirs[1:]:
        parts = d.split("/") if d else []
        n = 0
        while n < min(len(prefix), len(parts)) and prefix[n] == parts[n]:
            n += 1
        prefix = prefix[:n]
    stem = "/".join(prefix)
    cut = len(stem) + 1 if stem else 0
    return stem, [[a.path[cut:], a.sha256, a.size, _FILE_MODE] for a in artifacts]


class RegistryPart(StorePart):
    """The ``Store``'s model registry methods."""

    # ------------------------------------------------------------------ models
    def create_model(self, project: str, name: str, *, description: str = "", tags: Mapping[str, str] | None = None,
                     created_by: str = "") -> Model:
        """Create model ``name`` in ``project`` (which must exist).

        Raises:
            InvalidInput: a bad name, description or tags.
            NotFound: no such project.
            Conflict: the project has a model of that name.
        """
        names.check_model_name(name)
        description = _check_description(description)
        tag_values = check_model_tags(tags or {})
        now = _now()
        try:
            with write_scope(self.engine) as conn:
                pid = self._project_id(conn, project)
                conn.execute(insert(m.SqlModel).values(project_id=pid, name=name, description=description,
                                                       tags=json.dumps(tag_values), created_by=created_by,
                                                       created_at=now, updated_at=now))
        except IntegrityError as e:
            raise Conflict(f"Project {project!r} already has a model {name!r}.",
                           f"Register a new version of it (`runyard models register RUN PATH --name {name}`), or pick "
                           "another name.") from e
        return self._model(project, name)

    def list_models(self, project: str, q: str | None = None, *, limit: int = 1000) -> list[Model]:
        """The project's models by name; ``q`` keeps names containing it (case-insensitive)."""
        with read_scope(self.engine) as conn:
            pid = self._project_id(conn, project)
            cond = [m.SqlModel.project_id == pid]
            if q:
                cond.append(func.lower(m.SqlModel.name).contains(q.lower(), autoescape=True))
            rows = conn.execute(select(m.SqlModel.__table__).where(*cond).order_by(m.SqlModel.name).limit(limit)).all()
            return self._model_records(conn, project, rows)

    def get_model(self, project: str, name: str) -> ModelDetail:
        """The model with its versions (oldest first, files included) and alias history (oldest first).

        Raises:
            NotFound: no such project or model.
        """
        with read_scope(self.engine) as conn:
            row = self._model_row(conn, project, name)
            model = self._model_records(conn, project, [row])[0]
            versions = self._version_records(conn, project, name, select(m.SqlModelVersion.__table__)
                                             .where(m.SqlModelVersion.model_id == row.id).order_by(m.SqlModelVersion.version))
            e = m.SqlModelAliasEvent
            events = conn.execute(select(e.__table__).where(e.model_id == row.id).order_by(e.id)).all()
        return ModelDetail(**model.model_dump(), versions=versions,
                           alias_history=[ModelAliasEvent(alias=r.alias, from_version=r.from_version, to_version=r.to_version,
                                                          actor=r.actor, at=r.at) for r in events])

    def update_model(self, project: str, name: str, *, description: str | None = None,
                     tags: Mapping[str, str] | None = None) -> Model:
        """Change the description and/or replace the tags (what is None stays)."""
        values: dict[str, Any] = {"updated_at": _now()}
        if description is not None:
            values["description"] = _check_description(description)
        if tags is not None:
            values["tags"] = json.dumps(check_model_tags(tags))
        with write_scope(self.engine) as conn:
            row = self._model_row(conn, project, name)
            conn.execute(update(m.SqlModel).where(m.SqlModel.id == row.id).values(**values))
        return self._model(project, name)

    # ------------------------------------------------------------------ versions
    def create_model_version(
        self,
        project: str,
        name: str,
        *,
        snapshot_id: str,
        run_id: int | None = None,
        source: str = "",
        flavor: str = "files",
        signature: dict[str, Any] | None = None,
        requirements: Sequence[str] = (),
        description: str = "",
        tags: Mapping[str, str] | None = None,
        created_by: str = "",
    ) -> ModelVersion:
        """Register a new version of model ``name`` (created if missing) whose files are snapshot ``snapshot_id``.

        The number is the model's highest plus one, assigned atomically: concurrent callers get
        distinct numbers. Nothing is written if any check fails.

        Raises:
            InvalidInput: a bad name, flavor, signature, requirement, description or tag.
            NotFound: no such project, snapshot or run.
        """
        names.check_model_name(name)
        flavor = check_flavor(flavor)
        signature = _check_signature(signature)
        reqs = _check_requirements(list(requirements))
        description = _check_description(description)
        tag_values = check_model_tags(tags or {}, "A model version")
        names.check_text(source, "The source")
        snap = self.get_snapshot(snapshot_id)
        now = _now()
        ph = "?" if self._sqlite else "%s"
        with write_scope(self.engine) as conn:
            pid = self._project_id(conn, project)
            if run_id is not None:
                self._require_run(conn, run_id)
            # Create the model if missing; a concurrent creator's row wins and is used (no error).
            conn.exec_driver_sql(
                "INSERT INTO registered_models (project_id, name, description, tags, created_by, created_at, updated_at) "
                f"VALUES ({', '.join([ph] * 7)}) ON CONFLICT (project_id, name) DO NOTHING",
                (pid, name, "", "{}", created_by, now, now))
            # The model's row lock serialises registrations of this model (PostgreSQL; SQLite writers are serial):
            # the next number is read and inserted under it.
            model_id = conn.execute(select(m.SqlModel.id).where(m.SqlModel.project_id == pid, m.SqlModel.name == name)
                                    .with_for_update()).scalar_one()
            v = m.SqlModelVersion
            number = (conn.execute(select(func.max(v.version)).where(v.model_id == model_id)).scalar() or 0) + 1
            if number > names.MODEL_VERSION_MAX:
                raise InvalidState(f"Model {name!r} has reached the highest version number.", "Register under a new name.")
            conn.execute(insert(v).values(
                model_id=model_id, version=number, run_id=run_id, source=source, snapshot_id=snap.id, flavor=flavor,
                signature=None if signature is None else json.dumps(signature), requirements=json.dumps(reqs),
                description=description, tags=json.dumps(tag_values), status="ready", created_by=created_by,
                created_at=now, archived_at=None))
            conn.execute(update(m.SqlModel).where(m.SqlModel.id == model_id).values(updated_at=now))
        return self.get_model_version(project, name, number)

    def model_files_from_run(self, run_id: int, paths: Sequence[str]) -> tuple[str, list[Artifact], list[list[Any]]]:
        """The artifacts of run ``run_id`` under ``paths`` (files or directory prefixes, already cleaned) and
        the manifest of a model version made of them: (prefix, artifacts, manifest relative to the prefix).

        Raises:
            InvalidInput: no paths, too many files.
            NotFound: no such run, or a path that names neither an artifact nor a directory of them.
        """
        if not paths:
            raise InvalidInput("Registering from a run needs at least one artifact path.",
                               "Name the model's files or their directory, e.g. `runyard models register 12 model --name digits`.")
        a = m.SqlArtifact
        found: dict[str, Artifact] = {}
        directories: set[str] = set()
        clean = [p.rstrip("/") for p in dict.fromkeys(paths)]
        with read_scope(self.engine) as conn:
            self._require_run(conn, run_id)
            for p in clean:
                rows = conn.execute(select(a.__table__).where(a.run_id == run_id,
                                                              or_(a.path == p, a.path.startswith(p + "/", autoescape=True)))
                                    .order_by(a.path).limit(MAX_FILES + 1)).all()
                if not rows:
                    raise NotFound(f"Run {run_id} has no artifact or directory of artifacts {p!r}.",
                                   f"List its artifacts with `runyard info {run_id}`.")
                if any(r.path != p for r in rows):
                    directories.add(p)
                for r in rows:
                    found[r.path] = Artifact(path=r.path, size=r.size, sha256=r.sha256, created_at=r.created_at)
                if len(found) > MAX_FILES:
                    raise InvalidInput(f"A model version holds at most {MAX_FILES:,} files; these paths of run {run_id} "
                                       f"name more.", "Register the model's own directory, not the whole run.")
        artifacts = [found[k] for k in sorted(found)]
        prefix, files = relative_files(artifacts, clean, directories)
        return prefix, artifacts, files

    def create_model_version_from_run(
        self,
        project: str,
        name: str,
        run_id: int,
        paths: Sequence[str],
        copy_blob: BlobCopier,
        **fields: Any,
    ) -> ModelVersion:
        """Register a version made of run ``run_id``'s artifacts under ``paths`` (see :meth:`model_files_from_run`).

        Each artifact whose bytes the blob store lacks is copied there by ``copy_blob`` (which
        checks the sha256) before anything is written to the database; then the snapshot and the
        version are stored. ``fields`` are :meth:`create_model_version`'s keywords (not
        ``snapshot_id``, ``run_id`` or ``source``).
        """
        names.check_model_name(name)
        prefix, artifacts, files = self.model_files_from_run(run_id, paths)
        missing = set(self.missing_blobs([x.sha256 for x in artifacts]))
        for art in artifacts:
            if art.sha256 in missing:
                copy_blob(run_id, art)
                self.record_blob(art.sha256, art.size)
                missing.discard(art.sha256)
                _failpoints.pause("registry.blob_copied")  # the crash tests' window: some blobs copied, no version
        snap = self.create_snapshot(manifest_id(files), files)
        _failpoints.pause("registry.before_version")  # the crash tests' window: the snapshot stored, no version
        source = f"runs:/{run_id}/{prefix}" if prefix else f"runs:/{run_id}"
        return self.create_model_version(project, name, snapshot_id=snap.id, run_id=run_id, source=source, **fields)

    def get_model_version(self, project: str, name: str, version: int) -> ModelVersion:
        """Version ``version`` of the model, archived or not.

        Raises:
            InvalidInput: a version number out of range.
            NotFound: no such project, model or version.
        """
        _version_number(version)
        with read_scope(self.engine) as conn:
            row = self._model_row(conn, project, name)
            v = m.SqlModelVersion
            found = self._version_records(conn, project, name, select(v.__table__).where(v.model_id == row.id,
                                                                                          v.version == version))
        if not found:
            raise _no_version(project, name, version)
        return found[0]

    def update_model_version(self, project: str, name: str, version: int, *, description: str | None = None,
                             tags: Mapping[str, str] | None = None) -> ModelVersion:
        """Change a version's description and/or replace its tags (its files never change)."""
        values: dict[str, Any] = {}
        if description is not None:
            values["description"] = _check_description(description)
        if tags is not None:
            values["tags"] = json.dumps(check_model_tags(tags, "A model version"))
        if values:
            with write_scope(self.engine) as conn:
                vid = self._version_id(conn, project, name, version)
                conn.execute(update(m.SqlModelVersion).where(m.SqlModelVersion.id == vid).values(**values))
        return self.get_model_version(project, name, version)

    def archive_model_version(self, project: str, name: str, version: int, *, unarchive: bool = False) -> ModelVersion:
        """Archive a version (it keeps its number and files; ``latest`` skips it), or bring it back.

        Idempotent. Raises:
            InvalidState: archiving a version an alias names (move or delete the alias first).
            NotFound: no such project, model or version.
        """
        with write_scope(self.engine) as conn:
            vid = self._version_id(conn, project, name, version, lock=True)
            v = m.SqlModelVersion
            if unarchive:
                conn.execute(update(v).where(v.id == vid, v.status == "archived").values(status="ready", archived_at=None))
            else:
                aliases = sorted(conn.execute(select(m.SqlModelAlias.alias).where(m.SqlModelAlias.version_id == vid)).scalars())
                if aliases:
                    first = aliases[0]
                    raise InvalidState(
                        f"Version {version} of model {name!r} cannot be archived: alias(es) {', '.join(aliases)} name it, "
                        "and an alias cannot point at an archived version.",
                        f"Move the alias first (`runyard models alias {name} {first} OTHER_VERSION`) or delete it "
                        f"(`runyard models alias {name} {first} --delete`).")
                conn.execute(update(v).where(v.id == vid, v.status == "ready").values(status="archived", archived_at=_now()))
        return self.get_model_version(project, name, version)

    # ------------------------------------------------------------------ aliases
    def set_model_alias(self, project: str, name: str, alias: str, version: int, *, actor: str = "") -> ModelAliasChange:
        """Point ``alias`` at ``version`` (moving it from where it was), with an audit event in the same transaction.

        Setting an alias to the version it names already changes nothing and records no event.

        Raises:
            InvalidInput: a bad alias or version number.
            InvalidState: the version is archived.
            NotFound: no such project, model or version.
        """
        names.check_alias(alias)
        _version_number(version)
        now = _now()
        al, v = m.SqlModelAlias, m.SqlModelVersion
        with write_scope(self.engine) as conn:
            row = self._model_row(conn, project, name, lock=True)
            target = conn.execute(select(v.id, v.status).where(v.model_id == row.id, v.version == version)).first()
            if target is None:
                raise _no_version(project, name, version)
            if target.status == "archived":
                raise InvalidState(f"Version {version} of model {name!r} is archived; an alias cannot point at it.",
                                   f"Unarchive it first (`runyard models unarchive {name} {version}`), or pick a ready version.")
            before = conn.execute(select(v.version).join(al, al.version_id == v.id)
                                  .where(al.model_id == row.id, al.alias == alias)).scalar()
            if before == version:
                return ModelAliasChange(alias=alias, version=version, from_version=before)
            if before is None:
                conn.execute(insert(al).values(model_id=row.id, alias=alias, version_id=target.id, updated_by=actor,
                                               updated_at=now))
            else:
                conn.execute(update(al).where(al.model_id == row.id, al.alias == alias)
                             .values(version_id=target.id, updated_by=actor, updated_at=now))
            conn.execute(insert(m.SqlModelAliasEvent).values(model_id=row.id, alias=alias, from_version=before,
                                                             to_version=version, actor=actor, at=now))
            conn.execute(update(m.SqlModel).where(m.SqlModel.id == row.id).values(updated_at=now))
        return ModelAliasChange(alias=alias, version=version, from_version=before)

    def delete_model_alias(self, project: str, name: str, alias: str, *, actor: str = "") -> ModelAliasChange:
        """Remove ``alias``, with an audit event (to_version null) in the same transaction.

        Raises:
            NotFound: no such project, model or alias.
        """
        names.check_alias(alias)
        now = _now()
        al, v = m.SqlModelAlias, m.SqlModelVersion
        with write_scope(self.engine) as conn:
            row = self._model_row(conn, project, name, lock=True)
            before = conn.execute(select(v.version).join(al, al.version_id == v.id)
                                  .where(al.model_id == row.id, al.alias == alias)).scalar()
            if before is None:
                raise NotFound(f"Model {name!r} has no alias {alias!r}.",
                               f"Its aliases are listed by `runyard models show {name} -p {project}`.")
            conn.execute(delete(al).where(al.model_id == row.id, al.alias == alias))
            conn.execute(insert(m.SqlModelAliasEvent).values(model_id=row.id, alias=alias, from_version=before,
                                                             to_version=None, actor=actor, at=now))
            conn.execute(update(m.SqlModel).where(m.SqlModel.id == row.id).values(updated_at=now))
        return ModelAliasChange(alias=alias, version=None, from_version=before)

    # ------------------------------------------------------------------ references
    def resolve_model(self, project: str, ref: names.ModelRef) -> ModelVersion:
        """The version a :class:`~runyard.names.ModelRef` names in ``project`` (the ref's own project wins).

        A number names that version (archived or not), an alias the version it points at, and
        neither the highest version that is not archived.

        Raises:
            NotFound: no such project, model, version or alias, or no ready version for ``latest``.
        """
        project = ref.project or project
        if ref.version is not None:
            return self.get_model_version(project, ref.name, ref.version)
        v, al = m.SqlModelVersion, m.SqlModelAlias
        with read_scope(self.engine) as conn:
            row = self._model_row(conn, project, ref.name)
            if ref.alias is not None:
                number = conn.execute(select(v.version).join(al, al.version_id == v.id)
                                      .where(al.model_id == row.id, al.alias == ref.alias)).scalar()
                if number is None:
                    raise NotFound(f"Model {ref.name!r} of project {project!r} has no alias {ref.alias!r}.",
                                   f"Set it with `runyard models alias {ref.name} {ref.alias} VERSION`, or list the "
                                   f"aliases with `runyard models show {ref.name}`.")
            else:
                number = conn.execute(select(func.max(v.version)).where(v.model_id == row.id, v.status == "ready")).scalar()
                if number is None:
                    raise NotFound(f"Model {ref.name!r} of project {project!r} has no version that is not archived.",
                                   f"Register one, or unarchive one (`runyard models unarchive {ref.name} VERSION`).")
        return self.get_model_version(project, ref.name, number)

    # ------------------------------------------------------------------ helpers
    def _model(self, project: str, name: str) -> Model:
        with read_scope(self.engine) as conn:
            row = self._model_row(conn, project, name)
            return self._model_records(conn, project, [row])[0]

    def _model_row(self, conn, project: str, name: str, *, lock: bool = False):  # noqa: ANN001, ANN202
        names.check_model_name(name)  # a name no model can have is bad input (400), not a missing model
        pid = self._project_id(conn, project)
        stmt = select(m.SqlModel.__table__).where(m.SqlModel.project_id == pid, m.SqlModel.name == name)
        row = conn.execute(stmt.with_for_update() if lock else stmt).first()
        if row is None:
            raise _no_model(project, name)
        return row

    def _version_id(self, conn, project: str, name: str, version: int, *, lock: bool = False) -> int:  # noqa: ANN001
        _version_number(version)
        row = self._model_row(conn, project, name, lock=lock)
        v = m.SqlModelVersion
        vid = conn.execute(select(v.id).where(v.model_id == row.id, v.version == version)).scalar()
        if vid is None:
            raise _no_version(project, name, version)
        return vid

    def _model_records(self, conn, project: str, rows: Sequence[Any]) -> list[Model]:  # noqa: ANN001
        if not rows:
            return []
        ids = [r.id for r in rows]
        v, al = m.SqlModelVersion, m.SqlModelAlias
        counts = dict(conn.execute(select(v.model_id, func.count()).where(v.model_id.in_(ids)).group_by(v.model_id)).all())
        latest = dict(conn.execute(select(v.model_id, func.max(v.version)).where(v.model_id.in_(ids), v.status == "ready")
                                   .group_by(v.model_id)).all())
        aliases: dict[int, dict[str, int]] = {i: {} for i in ids}
        for model_id, alias, number in conn.execute(select(al.model_id, al.alias, v.version).join(v, al.version_id == v.id)
                                                    .where(al.model_id.in_(ids)).order_by(al.alias)):
            aliases[model_id][alias] = number
        return [Model(name=r.name, project=project, description=r.description, tags=_tags(r.tags),
                      n_versions=counts.get(r.id, 0), latest_version=latest.get(r.id), aliases=aliases[r.id],
                      created_by=r.created_by, created_at=r.created_at, updated_at=r.updated_at) for r in rows]

    def _version_records(self, conn, project: str, name: str, stmt) -> list[ModelVersion]:  # noqa: ANN001
        rows = conn.execute(stmt).all()
        if not rows:
            return []
        al, s = m.SqlModelAlias, m.SqlSnapshot
        ids = [r.id for r in rows]
        aliases: dict[int, list[str]] = {i: [] for i in ids}
        for version_id, alias in conn.execute(select(al.version_id, al.alias).where(al.version_id.in_(ids)).order_by(al.alias)):
            aliases[version_id].append(alias)
        snaps = {r.id: r for r in conn.execute(select(s.id, s.manifest, s.n_files, s.size)
                                               .where(s.id.in_({r.snapshot_id for r in rows})))}
        out = []
        for r in rows:
            snap = snaps[r.snapshot_id]
            out.append(ModelVersion(
                model=name, project=project, version=r.version, run_id=r.run_id, source=r.source, snapshot_id=r.snapshot_id,
                files=json.loads(snap.manifest), n_files=snap.n_files, size=snap.size, flavor=r.flavor,
                signature=None if r.signature is None else json.loads(r.signature),
                requirements=json.loads(r.requirements or "[]"), description=r.description, tags=_tags(r.tags),
                status=r.status, aliases=aliases[r.id], created_by=r.created_by, created_at=r.created_at,
                archived_at=r.archived_at))
        return out

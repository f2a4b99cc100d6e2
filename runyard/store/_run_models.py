"""The registered model versions each run used (``run_models``): ``models:`` in runyard.yml and ``runyard.load_model``.

A run uses a model version under a name of its own (``base``, ``teacher``), as it reads dataset
versions (:mod:`runyard.store._lineage`): recorded at submission for every run of an experiment
that declares ``models:`` (:meth:`RunModelsPart.resolve_run_models` pins the URIs, then
``create_queued_runs`` writes the rows), or by the run itself (:meth:`RunModelsPart.record_run_model`,
which ``runyard.load_model`` calls inside a run). Rows name versions, never aliases: an alias moved
after submission does not change what the runs use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import Field
from sqlalchemy import insert, select

import runyard.names as names
from runyard.errors import InvalidInput, NotFound
from runyard.store import _models as m
from runyard.store._common import StorePart, _now
from runyard.store._engine import read_scope, write_scope
from runyard.store._lineage import record_use, run_project_of
from runyard.store._records import _Record

__all__ = ["RunModel", "RunModelsPart", "check_run_model_name", "insert_run_models"]

RUN_MODEL_NAME_MAX = 64  # run_models.name
RUN_MODEL_NAME_RULE = "1-64 letters, digits, '_', '.' or '-', starting with a letter or '_'"
MAX_RUN_MODELS = 100  # models one run may use


class RunModel(_Record):
    """A registered model version a run used, under the name the run gave it."""

    name: str = Field(description="the run's name for it (the key in runyard.yml's models:)")
    project: str = Field(description="the model's project")
    model: str
    version: int
    uri: str = Field(description="models:/PROJECT/NAME/VERSION: the version, pinned")
    snapshot_id: str = Field(description="the version's files (a snapshot)")
    flavor: str = "files"
    status: str = Field("ready", description="the version's status now: ready or archived")
    n_files: int = 0
    size: int = 0
    recorded_at: float | None = None


def _show(value: Any) -> str:  # noqa: ANN401
    text = ascii(value)
    return text if len(text) <= 80 else text[:76] + " ..."


def check_run_model_name(name: Any) -> str:  # noqa: ANN401
    """A run's name for a model it uses (``base``): a directory name and the tail of ``RUNYARD_MODEL_<NAME>``."""
    if (isinstance(name, str) and 0 < len(name) <= RUN_MODEL_NAME_MAX and name.isascii()
            and (name[0].isalpha() or name[0] == "_") and all(c.isalnum() or c in "_.-" for c in name)):
        return name
    raise InvalidInput(f"A run's model name must be {RUN_MODEL_NAME_RULE}, but got {_show(name)}.",
                       "Name it like a variable, e.g. base or teacher.")


def _version_row(conn: Any, project: str, ref: names.ModelRef, uri: str) -> Any:  # noqa: ANN401
    """The model_versions row (with project and model names) ``ref`` names in ``project`` (the ref's own wins).

    Raises:
        NotFound: no such project or model, or no such version/alias, naming the versions and aliases there are.
    """
    rm, mv, ma, p = m.SqlModel, m.SqlModelVersion, m.SqlModelAlias, m.SqlProject
    where = ref.project or project
    model_id = conn.execute(select(rm.id).join(p, p.id == rm.project_id)
                            .where(p.name == where, rm.name == ref.name)).scalar()
    if model_id is None:
        raise NotFound(f"Project {where!r} has no model {ref.name!r} (from {uri!r}).",
                       f"List its models with `runyard models ls -p {where}`, or register one with runyard.log_model().")
    s = m.SqlSnapshot
    cols = (mv.id, mv.version, mv.snapshot_id, mv.flavor, mv.status, s.n_files, s.size,
            p.name.label("project"), rm.name.label("model"))
    base = (select(*cols).join(rm, rm.id == mv.model_id).join(p, p.id == rm.project_id)
            .outerjoin(s, s.id == mv.snapshot_id).where(mv.model_id == model_id))
    if ref.version is not None:
        row = conn.execute(base.where(mv.version == ref.version)).first()
    elif ref.alias is not None:
        row = conn.execute(base.join(ma, ma.version_id == mv.id).where(ma.alias == ref.alias)).first()
    else:
        row = conn.execute(base.where(mv.status == "ready").order_by(mv.version.desc()).limit(1)).first()
    if row is not None:
        return row
    have = list(conn.execute(select(mv.version, mv.status).where(mv.model_id == model_id).order_by(mv.version)).all())
    aliases = conn.execute(select(ma.alias, mv.version).join(mv, mv.id == ma.version_id)
                           .where(ma.model_id == model_id).order_by(ma.alias)).all()
    listed = ", ".join(f"{v}{' (archived)' if s == 'archived' else ''}" for v, s in have[-20:]) or "none"
    more = f" (the last 20 of {len(have)})" if len(have) > 20 else ""
    alias_text = ", ".join(f"{a} -> {v}" for a, v in aliases[:20]) or "none"
    what = (f"no version {ref.version}" if ref.version is not None else
            f"no alias {ref.alias!r}" if ref.alias is not None else "no version that is not archived")
    ready = [v for v, s in have if s == "ready"]
    example = f"models:/{where}/{ref.name}/{ready[-1]}" if ready else None
    raise NotFound(f"Model {where}/{ref.name} has {what} (from {uri!r}); its versions are: {listed}{more}; "
                   f"its aliases: {alias_text}.",
                   f"Use one of them, e.g. {example}." if example else
                   f"Register a version first (runyard.log_model(..., name={ref.name!r})).")


def _pin(conn: Any, project: str, name: str, uri: str) -> Any:  # noqa: ANN401
    """The row ``uri`` names for the run's ``name``; an archived version is refused."""
    ref = names.parse_model_uri(uri)
    row = _version_row(conn, project, ref, uri)
    if row.status == "archived":
        raise InvalidInput(f"models.{name} is {uri!r}, which is version {row.version} of {row.project}/{row.model}: "
                           "that version is archived.",
                           f"Unarchive it (`runyard models unarchive {row.model} {row.version} -p {row.project}`), "
                           "or name another version.")
    return row


def _run_model(name: str, row: Any, recorded_at: float | None) -> RunModel:  # noqa: ANN401
    return RunModel(name=name, project=row.project, model=row.model, version=row.version,
                    uri=f"models:/{row.project}/{row.model}/{row.version}", snapshot_id=row.snapshot_id,
                    flavor=row.flavor, status=row.status, n_files=row.n_files or 0, size=row.size or 0,
                    recorded_at=recorded_at)


class RunModelsPart(StorePart):
    """The ``Store``'s run-model methods."""

    def resolve_run_models(self, project: str, uris: Mapping[str, str]) -> dict[str, RunModel]:
        """Each of an experiment's ``models:`` (name → ``models:/`` URI) resolved to one version, at submission.

        Raises:
            InvalidInput: a malformed name or URI, or an archived version.
            NotFound: no such model, version or alias (naming the versions and aliases there are).
        """
        out: dict[str, RunModel] = {}
        with read_scope(self.engine) as conn:
            for name, uri in uris.items():
                check_run_model_name(name)
                out[name] = _run_model(name, _pin(conn, project, name, uri), None)
        return out

    def record_run_model(self, run_id: int, name: str, uri: str) -> RunModel:
        """Record that run ``run_id`` uses the version ``uri`` names under ``name`` (unqualified: the run's project).

        The same version under the same name again changes nothing. An archived version may be
        recorded when named by its number (the run loads it anyway); aliases and ``latest`` never
        name one.

        Raises:
            NotFound: no such run, model, version or alias.
            Conflict: the run already uses another version under ``name``.
        """
        check_run_model_name(name)
        ref = names.parse_model_uri(uri)
        rmod = m.SqlRunModel
        with write_scope(self.engine) as conn:
            row = _version_row(conn, run_project_of(conn, run_id), ref, uri)
            recorded = record_use(
                conn, rmod.__table__, "model_version_id", run_id, name, row.id, verb="uses",
                label=f"models:/{row.project}/{row.model}/{row.version}",
                other_label=lambda version_id: self._model_version_label(conn, version_id),
                rename_hint="Give this model another name, e.g. load_model(uri, name='other').",
                limit=MAX_RUN_MODELS, kinds="models", fewer_hint="Use fewer models in one run.")
        return _run_model(name, row, recorded)

    def _model_version_label(self, conn: Any, version_id: int) -> str:  # noqa: ANN401
        rm, mv, p = m.SqlModel, m.SqlModelVersion, m.SqlProject
        r = conn.execute(select(p.name, rm.name, mv.version).join(rm, rm.id == mv.model_id).join(p, p.id == rm.project_id)
                         .where(mv.id == version_id)).first()
        return f"models:/{r[0]}/{r[1]}/{r[2]}" if r else f"model version #{version_id}"

    def add_experiment_models(self, run_id: int, project: str, uris: Mapping[str, str]) -> None:
        """Record an experiment's pinned ``models:`` for a run added to it by hand (``POST /runs`` with its id)."""
        with write_scope(self.engine) as conn:
            insert_run_models(conn, project, [run_id], uris)

    def run_models(self, run_id: int) -> list[RunModel]:
        """The model versions run ``run_id`` used, by name."""
        rmod, rm, mv, p, s = m.SqlRunModel, m.SqlModel, m.SqlModelVersion, m.SqlProject, m.SqlSnapshot
        with read_scope(self.engine) as conn:
            self._require_run(conn, run_id)
            rows = conn.execute(
                select(rmod.name, rmod.recorded_at, mv.id, mv.version, mv.snapshot_id, mv.flavor, mv.status, s.n_files,
                       s.size, p.name.label("project"), rm.name.label("model"))
                .join(mv, mv.id == rmod.model_version_id).join(rm, rm.id == mv.model_id).join(p, p.id == rm.project_id)
                .outerjoin(s, s.id == mv.snapshot_id).where(rmod.run_id == run_id).order_by(rmod.name)).all()
        return [_run_model(r.name, r, r.recorded_at) for r in rows]

    def run_model_snapshot_ids(self, run_id: int) -> list[str]:
        """The snapshots of the model versions recorded for a run (what its token may read besides its code)."""
        rmod, mv = m.SqlRunModel, m.SqlModelVersion
        with read_scope(self.engine) as conn:
            return sorted(set(conn.execute(select(mv.snapshot_id).join(rmod, rmod.model_version_id == mv.id)
                                           .where(rmod.run_id == run_id)).scalars()))


def _pinned_model_ids(conn: Any, project: str, uris: Mapping[str, str]) -> dict[str, int]:  # noqa: ANN401
    """name → model_versions.id of an experiment's pinned ``models:`` (``models:/PROJECT/NAME/V`` after submission)."""
    out: dict[str, int] = {}
    for name, uri in uris.items():
        ref = names.parse_model_uri(uri)
        if ref.version is None:
            raise InvalidInput(f"models.{name} is {uri!r}, which names no version; the experiment's models are "
                               "pinned to versions at submission.", "Submit the experiment through the server's API.")
        out[name] = _version_row(conn, project, ref, uri).id
    return out


def insert_run_models(conn: Any, project: str, run_ids: Sequence[int], uris: Mapping[str, str]) -> None:  # noqa: ANN401
    """In the caller's transaction: the run_models rows of new runs of an experiment with pinned ``models:``."""
    if not uris or not run_ids:
        return
    ids = _pinned_model_ids(conn, project, uris)
    now = _now()
    conn.execute(insert(m.SqlRunModel), [{"run_id": rid, "name": name, "model_version_id": vid, "recorded_at": now}
                                         for rid in run_ids for name, vid in ids.items()])

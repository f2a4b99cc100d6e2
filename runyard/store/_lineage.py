"""Lineage: the dataset versions each run read (``run_datasets``) and the graph from models back to data and code.

A run reads a dataset version under a name of its own (``train``, ``raw``): recorded at
submission for every run of an experiment that declares ``datasets:`` in ``runyard.yml``
(:meth:`LineagePart.resolve_datasets`, then ``create_queued_runs``), or by the run itself through
``runyard.use_dataset`` (:meth:`LineagePart.record_run_dataset`). The graph
(:meth:`LineagePart.lineage`) starts at a model version, a run or a dataset version and follows:

- model_version ``trained_from`` run (upstream: the run that produced it);
- run ``read`` dataset_version, run ``code`` snapshot, run ``image`` image, run ``part_of`` experiment;
- run ``registered_as`` model_version (downstream: from a run or a dataset version, the models made from it);
- run ``used_model`` model_version (``run_models``: the registered model versions a run used; from a model
  version, the runs that used it are listed downstream).

Access is left to the caller: each node carries its ``project``, and the server redacts the ones
the caller may not read (``runyard.server.routers.lineage``).
"""

from __future__ import annotations

import collections
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import Field
from sqlalchemy import Connection, Table, func, insert, select

import runyard.names as names
from runyard.errors import Conflict, InvalidInput, NotFound
from runyard.store import _models as m
from runyard.store._common import StorePart, _json_value, _now
from runyard.store._engine import read_scope, write_scope
from runyard.store._records import _Record

__all__ = ["LineageEdge", "LineageGraph", "LineageNode", "LineagePart", "RunDataset",
           "check_run_dataset_name", "insert_run_datasets", "parse_lineage_uri"]

RUN_DATASET_NAME_MAX = 64  # run_datasets.name
RUN_DATASET_NAME_RULE = "1-64 letters, digits, '_', '.' or '-', starting with a letter or '_'"
MAX_RUN_DATASETS = 100  # datasets one run may declare
MAX_GRAPH_RUNS = 500  # runs listed as readers of one dataset version


_DIGESTS: collections.OrderedDict[str, frozenset[str]] = collections.OrderedDict()
_DIGESTS_LOCK = threading.Lock()
_DIGESTS_MAX = 16


class RunDataset(_Record):
    """A dataset version a run read, under the name the run gave it."""

    name: str = Field(description="the run's name for it (the key in runyard.yml's datasets:)")
    project: str = Field(description="the dataset's project")
    dataset: str
    version: int
    content_id: str
    snapshot_id: str | None = Field(None, description="the stored files (a snapshot); null: references only")
    n_files: int
    size: int
    refs: list[list[Any]] = Field(default_factory=list, description="[uri, sha256, size, mtime] of files read in place")
    recorded_at: float | None = None


class LineageNode(_Record):
    id: str
    kind: str = Field(description="model_version, run, dataset_version, snapshot, image or experiment")
    label: str
    project: str | None = Field(None, description="the project it belongs to (null: snapshots and images)")
    data: dict[str, Any] = Field(default_factory=dict)


class LineageEdge(_Record):
    source: str
    target: str
    kind: str = Field(description="trained_from, read, code, image, registered_as, used_model or part_of")
    data: dict[str, Any] = Field(default_factory=dict)


class LineageGraph(_Record):
    root: str
    nodes: list[LineageNode]
    edges: list[LineageEdge]
    truncated: bool = Field(False, description="more runs read the dataset version (or used the model version) than "
                            "are listed")


def _show(value: Any) -> str:  # noqa: ANN401
    """``value`` for a message: ASCII-escaped (NUL and lone surrogates visible), at most 80 characters."""
    text = ascii(value)
    return text if len(text) <= 80 else text[:76] + " ..."


def check_run_dataset_name(name: Any) -> str:
    """A run's name for a dataset it reads (``train``): a directory name and the tail of a variable name."""
    if (isinstance(name, str) and 0 < len(name) <= RUN_DATASET_NAME_MAX and name.isascii()
            and (name[0].isalpha() or name[0] == "_") and all(c.isalnum() or c in "_.-" for c in name)):
        return name
    raise InvalidInput(f"A run's dataset name must be {RUN_DATASET_NAME_RULE}, but got {_show(name)}.",
                       "Name it like a variable, e.g. train or raw_scans.")


def parse_lineage_uri(uri: Any) -> tuple[str, Any]:
    """``("run", id)``, ``("dataset", DatasetRef)`` or ``("model", ModelRef)`` (:func:`runyard.names.parse_model_uri`).

    Raises:
        InvalidInput: not one of ``runs:/ID``, ``datasets:/[PROJECT/]NAME[:V]``, ``models:/[PROJECT/]NAME[/V|@ALIAS|/latest]``.
    """
    hint = "Write runs:/12, datasets:/PROJECT/NAME:3 or models:/PROJECT/NAME@production."
    if not isinstance(uri, str) or not uri or len(uri) > 600 or "\x00" in uri or not uri.isprintable():
        raise InvalidInput(f"A lineage URI must be printable text of at most 600 characters, but got {_show(uri)}.",
                           hint)
    scheme, sep, rest = uri.partition(":/")
    if not sep:
        raise InvalidInput(f"The lineage URI {uri!r} has no scheme.", hint)
    if scheme == "runs":
        if not (rest.isascii() and rest.isdigit() and len(rest) <= 18):
            raise InvalidInput(f"The run id in {uri!r} must be a number, but got {rest!r}.", hint)
        return "run", int(rest)
    if scheme == "datasets":
        return "dataset", names.parse_dataset_ref(rest)
    if scheme == "models":
        return "model", names.parse_model_uri(uri)
    raise InvalidInput(f"The lineage URI {uri!r} has the scheme {scheme!r}; known are runs, datasets and models.", hint)


class LineagePart(StorePart):
    """The ``Store``'s run-dataset and lineage methods."""

    # ------------------------------------------------------------------ resolving
    def resolve_dataset(self, ref: str, project: str) -> RunDataset:
        """The dataset version ``ref`` names (``digits:3``, ``digits``/``digits:latest``, ``other/digits:3``);
        an unqualified name is looked up in ``project``. The record's ``name`` is empty.

        Raises:
            InvalidInput: a malformed reference.
            NotFound: no such dataset (naming the project), or no such version (naming the versions that exist).
        """
        parsed = names.parse_dataset_ref(ref)
        with read_scope(self.engine) as conn:
            row = _resolve_row(conn, parsed.project or project, parsed.name, parsed.version, ref)
        return _run_dataset("", row, None)

    def resolve_datasets(self, project: str, refs: Mapping[str, str]) -> dict[str, RunDataset]:
        """Each of an experiment's ``datasets:`` (name → reference) resolved to one version, at submission."""
        out: dict[str, RunDataset] = {}
        with read_scope(self.engine) as conn:
            for name, ref in refs.items():
                check_run_dataset_name(name)
                parsed = names.parse_dataset_ref(ref)
                row = _resolve_row(conn, parsed.project or project, parsed.name, parsed.version, ref)
                out[name] = _run_dataset(name, row, None)
        return out

    # ------------------------------------------------------------------ run datasets
    def record_run_dataset(self, run_id: int, name: str, ref: str, project: str | None = None) -> RunDataset:
        """Record that run ``run_id`` reads the version ``ref`` names under ``name`` (unqualified: in the run's project).

        Recording the same version under the same name again changes nothing.

        Raises:
            NotFound: no such run, dataset or version.
            Conflict: the run already reads another version under ``name``.
        """
        check_run_dataset_name(name)
        parsed = names.parse_dataset_ref(ref)
        rd = m.SqlRunDataset
        with write_scope(self.engine) as conn:
            run_project = run_project_of(conn, run_id)
            row = _resolve_row(conn, parsed.project or project or run_project, parsed.name, parsed.version, ref)
            recorded = record_use(
                conn, rd.__table__, "version_id", run_id, name, row.id, verb="reads",
                label=f"{row.project}/{row.dataset}:{row.version}",
                other_label=lambda version_id: self._version_label(conn, version_id),
                rename_hint="Give this dataset another name, e.g. use_dataset(ref, name='other').",
                limit=MAX_RUN_DATASETS, kinds="datasets", fewer_hint="Combine datasets into fewer versions.")
        return _run_dataset(name, row, recorded)

    def _version_label(self, conn: Any, version_id: int) -> str:  # noqa: ANN401
        d, v, p = m.SqlDataset, m.SqlDatasetVersion, m.SqlProject
        r = conn.execute(select(p.name, d.name, v.version).join(d, d.id == v.dataset_id).join(p, p.id == d.project_id)
                         .where(v.id == version_id)).first()
        return f"{r[0]}/{r[1]}:{r[2]}" if r else f"dataset version #{version_id}"

    def add_experiment_datasets(self, run_id: int, project: str, refs: Mapping[str, str]) -> None:
        """Record an experiment's pinned ``datasets:`` for a run added to it by hand (``POST /runs`` with its id)."""
        with write_scope(self.engine) as conn:
            insert_run_datasets(conn, project, [run_id], refs)

    def run_datasets(self, run_id: int) -> list[RunDataset]:
        """The dataset versions run ``run_id`` read, by name."""
        rd, d, v, p = m.SqlRunDataset, m.SqlDataset, m.SqlDatasetVersion, m.SqlProject
        with read_scope(self.engine) as conn:
            self._require_run(conn, run_id)
            rows = conn.execute(
                select(rd.name, rd.recorded_at, v.id, v.version, v.content_id, v.snapshot_id, v.refs, v.n_files, v.size,
                       p.name.label("project"), d.name.label("dataset"))
                .join(v, v.id == rd.version_id).join(d, d.id == v.dataset_id).join(p, p.id == d.project_id)
                .where(rd.run_id == run_id).order_by(rd.name)).all()
        return [_run_dataset(r.name, r, r.recorded_at) for r in rows]

    def run_dataset_snapshot_ids(self, run_id: int) -> list[str]:
        """The snapshots of the dataset versions recorded for a run (what its token may read besides its code)."""
        rd, v = m.SqlRunDataset, m.SqlDatasetVersion
        with read_scope(self.engine) as conn:
            return [s for s in conn.execute(select(v.snapshot_id).join(rd, rd.version_id == v.id)
                                            .where(rd.run_id == run_id, v.snapshot_id.is_not(None)).distinct()).scalars()]

    def snapshot_digests(self, snapshot_id: str) -> frozenset[str]:
        """The blob digests a snapshot names; remembered for the last few snapshots (a snapshot never changes, and a
        run fetching a 10,000-file dataset asks once per blob)."""
        with _DIGESTS_LOCK:
            found = _DIGESTS.get(snapshot_id)
            if found is not None:
                _DIGESTS.move_to_end(snapshot_id)
                return found
        with read_scope(self.engine) as conn:
            manifest = conn.execute(select(m.SqlSnapshot.manifest).where(m.SqlSnapshot.id == snapshot_id)).scalar()
        digests = frozenset(str(f[1]) for f in json.loads(manifest or "[]") if len(f) > 1)
        if manifest is not None:
            with _DIGESTS_LOCK:
                _DIGESTS[snapshot_id] = digests
                while len(_DIGESTS) > _DIGESTS_MAX:
                    _DIGESTS.popitem(last=False)
        return digests

    # ------------------------------------------------------------------ the graph
    def lineage(self, uri: str, *, project: str | None = None) -> LineageGraph:
        """The lineage graph of ``runs:/ID``, ``datasets:/[P/]NAME[:V]`` or ``models:/[P/]NAME/V|@ALIAS|/latest``.

        ``project`` is the project of unqualified dataset and model names.

        Raises:
            InvalidInput: a malformed URI, or an unqualified name without ``project``.
            NotFound: what the URI names does not exist.
        """
        kind, target = parse_lineage_uri(uri)
        g = _Graph()
        with read_scope(self.engine) as conn:
            if kind == "run":
                root = self._run_node(conn, g, target)
                if root is None:
                    raise NotFound(f"No run with id {target}.", "List runs with `runyard ls`.")
                self._expand_run(conn, g, target, upstream=True)
                self._models_of_runs(conn, g, [target])
            elif kind == "dataset":
                qualified = target.project or project
                if qualified is None:
                    raise InvalidInput(f"The dataset in {uri!r} has no project.", "Write datasets:/PROJECT/NAME:V, or pass --project.")
                row = _resolve_row(conn, qualified, target.name, target.version, uri)
                root = self._dataset_node(conn, g, row.id)
                rd = m.SqlRunDataset
                readers = conn.execute(select(rd.run_id, rd.name).where(rd.version_id == row.id).order_by(rd.run_id.desc())
                                       .limit(MAX_GRAPH_RUNS + 1)).all()
                if len(readers) > MAX_GRAPH_RUNS:
                    g.truncated = True
                    readers = readers[:MAX_GRAPH_RUNS]
                run_ids = [r[0] for r in readers]
                for rid, name in readers:
                    node = self._run_node(conn, g, rid)
                    if node is not None:
                        g.edge(node, root, "read", {"name": name})
                self._models_of_runs(conn, g, run_ids)
            else:
                qualified = target.project or project
                if qualified is None:
                    raise InvalidInput(f"The model in {uri!r} has no project.", "Write models:/PROJECT/NAME/V, or pass --project.")
                found = self.resolve_model(qualified, target)  # RegistryPart's: the one models:/ resolver
                mv, rm, p = m.SqlModelVersion, m.SqlModel, m.SqlProject
                vid, run_id = conn.execute(select(mv.id, mv.run_id).join(rm, rm.id == mv.model_id).join(p, p.id == rm.project_id)
                                           .where(p.name == found.project, rm.name == found.model,
                                                  mv.version == found.version)).one()
                root = self._model_node(conn, g, vid)
                if run_id is not None:
                    node = self._run_node(conn, g, run_id)
                    if node is not None:
                        g.edge(root, node, "trained_from")
                        self._expand_run(conn, g, run_id, upstream=True)
                self._users_of_model(conn, g, vid, root)
        return LineageGraph(root=root, nodes=list(g.nodes.values()), edges=g.edges, truncated=g.truncated)

    def _model_node(self, conn: Any, g: _Graph, version_id: int) -> str:  # noqa: ANN401
        node_id = f"model_version:{version_id}"
        if node_id in g.nodes:
            return node_id
        rm, mv, ma, p = m.SqlModel, m.SqlModelVersion, m.SqlModelAlias, m.SqlProject
        r = conn.execute(select(mv.version, mv.flavor, mv.status, mv.source, mv.created_at, mv.created_by, mv.run_id,
                                mv.snapshot_id, rm.name, p.name.label("project"))
                         .join(rm, rm.id == mv.model_id).join(p, p.id == rm.project_id).where(mv.id == version_id)).one()
        aliases = sorted(conn.execute(select(ma.alias).where(ma.version_id == version_id)).scalars())
        g.add(LineageNode(id=node_id, kind="model_version", label=f"models:/{r.project}/{r.name}/{r.version}", project=r.project,
                          data={"project": r.project, "model": r.name, "version": r.version, "flavor": r.flavor,
                                "status": r.status, "source": r.source, "aliases": aliases, "run_id": r.run_id,
                                "snapshot_id": r.snapshot_id, "created_by": r.created_by, "created_at": r.created_at}))
        return node_id

    def _run_node(self, conn: Any, g: _Graph, run_id: int) -> str | None:  # noqa: ANN401
        node_id = f"run:{run_id}"
        if node_id in g.nodes:
            return node_id
        r, p, e = m.SqlRun, m.SqlProject, m.SqlExperiment
        row = conn.execute(select(r.id, r.name, r.status, r.attempt, r.backend, r.created_at, r.started_at, r.ended_at,
                                  r.experiment_id, r.snapshot_id, e.snapshot_id.label("exp_snapshot"), e.name.label("exp_name"),
                                  p.name.label("project"))
                           .join(p, p.id == r.project_id).outerjoin(e, e.id == r.experiment_id).where(r.id == run_id)).first()
        if row is None:
            return None
        params = {k: _json_value(v) for k, v in conn.execute(select(m.SqlParam.key, m.SqlParam.value)
                                                             .where(m.SqlParam.run_id == run_id).order_by(m.SqlParam.key))}
        g.add(LineageNode(id=node_id, kind="run", label=f"run {row.id} ({row.name})", project=row.project,
                          data={"id": row.id, "project": row.project, "name": row.name, "status": row.status,
                                "attempt": row.attempt, "backend": row.backend, "params": params,
                                "experiment_id": row.experiment_id, "experiment": row.exp_name,
                                "snapshot_id": row.snapshot_id or row.exp_snapshot, "created_at": row.created_at,
                                "started_at": row.started_at, "ended_at": row.ended_at}))
        return node_id

    def _dataset_node(self, conn: Any, g: _Graph, version_id: int) -> str:  # noqa: ANN401
        node_id = f"dataset_version:{version_id}"
        if node_id in g.nodes:
            return node_id
        d, v, p = m.SqlDataset, m.SqlDatasetVersion, m.SqlProject
        r = conn.execute(select(v.version, v.content_id, v.snapshot_id, v.refs, v.n_files, v.size, v.message, v.created_at,
                                v.created_by, d.name, p.name.label("project"))
                         .join(d, d.id == v.dataset_id).join(p, p.id == d.project_id).where(v.id == version_id)).one()
        g.add(LineageNode(id=node_id, kind="dataset_version", label=f"{r.project}/{r.name}:{r.version}", project=r.project,
                          data={"project": r.project, "dataset": r.name, "version": r.version, "content_id": r.content_id,
                                "snapshot_id": r.snapshot_id, "n_refs": len(json.loads(r.refs or "[]")), "n_files": r.n_files,
                                "size": r.size, "message": r.message, "created_by": r.created_by, "created_at": r.created_at}))
        return node_id

    def _expand_run(self, conn: Any, g: _Graph, run_id: int, *, upstream: bool) -> None:  # noqa: ANN401
        """The run's experiment, code snapshot, image and the dataset versions it read."""
        run_node = f"run:{run_id}"
        data = g.nodes[run_node].data
        if data.get("experiment_id") is not None:
            exp_id = f"experiment:{data['experiment_id']}"
            if exp_id not in g.nodes:
                e = m.SqlExperiment
                row = conn.execute(select(e.id, e.name, e.status, e.backend, e.created_at).where(e.id == data["experiment_id"])).one()
                g.add(LineageNode(id=exp_id, kind="experiment", label=f"experiment {row.id} ({row.name})",
                                  project=data["project"], data={"id": row.id, "project": data["project"], "name": row.name,
                                                                 "status": row.status, "backend": row.backend,
                                                                 "created_at": row.created_at}))
            g.edge(run_node, exp_id, "part_of")
        snap_id = data.get("snapshot_id")
        if snap_id:
            node_id = f"snapshot:{snap_id}"
            if node_id not in g.nodes:
                s = m.SqlSnapshot
                row = conn.execute(select(s.n_files, s.size, s.git_commit, s.git_branch, s.git_dirty, s.created_at)
                                   .where(s.id == snap_id)).first()
                info: dict[str, Any] = {"id": snap_id}
                label = f"snapshot {snap_id[:12]}"
                if row is not None:
                    info.update(n_files=row.n_files, size=row.size, git_commit=row.git_commit, git_branch=row.git_branch,
                                git_dirty=bool(row.git_dirty), created_at=row.created_at)
                    if row.git_commit:
                        label += f" (git {row.git_commit[:12]}{' dirty' if row.git_dirty else ''})"
                g.add(LineageNode(id=node_id, kind="snapshot", label=label, data=info))
            g.edge(run_node, node_id, "code")
        t = m.SqlTag
        tags = dict(conn.execute(select(t.key, t.value).where(t.run_id == run_id, t.key.startswith("runyard.image"))).all())
        if tags.get("runyard.image"):
            ref = tags["runyard.image"]
            node_id = f"image:{ref}"
            if node_id not in g.nodes:
                g.add(LineageNode(id=node_id, kind="image", label=ref,
                                  data={"image": ref, "id": tags.get("runyard.image.id"),
                                        "runtime": tags.get("runyard.image.runtime"),
                                        "build_key": tags.get("runyard.image.build")}))
            g.edge(run_node, node_id, "image")
        rd = m.SqlRunDataset
        for name, vid in conn.execute(select(rd.name, rd.version_id).where(rd.run_id == run_id).order_by(rd.name)).all():
            g.edge(run_node, self._dataset_node(conn, g, vid), "read", {"name": name})
        # --- run models: the registered model versions the run used ---
        rmod = m.SqlRunModel
        for name, vid in conn.execute(select(rmod.name, rmod.model_version_id).where(rmod.run_id == run_id)
                                      .order_by(rmod.name)).all():
            g.edge(run_node, self._model_node(conn, g, vid), "used_model", {"name": name})

    def _users_of_model(self, conn: Any, g: _Graph, version_id: int, root: str) -> None:  # noqa: ANN401
        """Downstream of a model version: the runs that used it (``used_model``) and the models registered from them."""
        rmod = m.SqlRunModel
        users = conn.execute(select(rmod.run_id, rmod.name).where(rmod.model_version_id == version_id)
                             .order_by(rmod.run_id.desc()).limit(MAX_GRAPH_RUNS + 1)).all()
        if len(users) > MAX_GRAPH_RUNS:
            g.truncated = True
            users = users[:MAX_GRAPH_RUNS]
        for rid, name in users:
            node = self._run_node(conn, g, rid)
            if node is not None:
                g.edge(node, root, "used_model", {"name": name})
        self._models_of_runs(conn, g, [rid for rid, _ in users])

    def _models_of_runs(self, conn: Any, g: _Graph, run_ids: Sequence[int]) -> None:  # noqa: ANN401
        """Edges run ``registered_as`` model_version for the model versions registered from these runs."""
        mv = m.SqlModelVersion
        for i in range(0, len(run_ids), 500):
            chunk = list(run_ids[i:i + 500])
            for vid, rid in conn.execute(select(mv.id, mv.run_id).where(mv.run_id.in_(chunk)).order_by(mv.id)).all():
                g.edge(f"run:{rid}", self._model_node(conn, g, vid), "registered_as")


def _resolve_row(conn: Any, project: str, dataset: str, version: int | None, ref: str) -> Any:  # noqa: ANN401
    """The dataset_versions row (with project and dataset names) ``ref`` names; NotFound listing the versions."""
    d, v, p = m.SqlDataset, m.SqlDatasetVersion, m.SqlProject
    found = conn.execute(select(d.id).join(p, p.id == d.project_id).where(p.name == project, d.name == dataset)).scalar()
    if found is None:
        raise NotFound(f"No dataset {dataset!r} in project {project!r} (from the reference {ref!r}).",
                       f"Push it with `runyard datasets push DIR --name {dataset} --project {project}`, or list "
                       f"the datasets with `runyard datasets ls --project {project}`.")
    stmt = (select(v.id, v.version, v.content_id, v.snapshot_id, v.refs, v.n_files, v.size, p.name.label("project"),
                   d.name.label("dataset"))
            .join(d, d.id == v.dataset_id).join(p, p.id == d.project_id).where(v.dataset_id == found))
    stmt = stmt.where(v.version == version) if version is not None else stmt.order_by(v.version.desc()).limit(1)
    row = conn.execute(stmt).first()
    if row is None:
        have = list(conn.execute(select(v.version).where(v.dataset_id == found).order_by(v.version)).scalars())
        listed = ", ".join(str(n) for n in have[-20:]) or "none"
        more = f" (the last 20 of {len(have)})" if len(have) > 20 else ""
        what = f"no version {version}" if version is not None else "no version yet"
        raise NotFound(f"Dataset {project}/{dataset} has {what}; its versions are: {listed}{more}.",
                       f"Use one of them, e.g. {dataset}:{have[-1]}, or {dataset}:latest." if have else
                       f"Push a version with `runyard datasets push DIR --name {dataset} --project {project}`.")
    return row


def _pinned_version_ids(conn: Any, project: str, refs: Mapping[str, str]) -> dict[str, int]:  # noqa: ANN401
    """name → dataset_versions.id of an experiment's pinned ``datasets:`` (``PROJECT/NAME:V`` after submission)."""
    out: dict[str, int] = {}
    for name, ref in refs.items():
        parsed = names.parse_dataset_ref(ref)
        if parsed.version is None:
            raise InvalidInput(f"datasets.{name} is {ref!r}, which names no version; the experiment's datasets are "
                               "pinned to versions at submission.", "Submit the experiment through the server's API.")
        out[name] = _resolve_row(conn, parsed.project or project, parsed.name, parsed.version, ref).id
    return out

def insert_run_datasets(conn: Any, project: str, run_ids: Sequence[int], refs: Mapping[str, str]) -> None:  # noqa: ANN401
    """In the caller's transaction: the run_datasets rows of new runs of an experiment with pinned ``datasets:``."""
    if not refs or not run_ids:
        return
    ids = _pinned_version_ids(conn, project, refs)
    now = _now()
    conn.execute(insert(m.SqlRunDataset), [{"run_id": rid, "name": name, "version_id": vid, "recorded_at": now}
                                           for rid in run_ids for name, vid in ids.items()])


class _Graph:
    def __init__(self) -> None:
        self.nodes: dict[str, LineageNode] = {}
        self.edges: list[LineageEdge] = []
        self._seen: set[tuple[str, str, str]] = set()
        self.truncated = False

    def add(self, node: LineageNode) -> None:
        self.nodes[node.id] = node

    def edge(self, source: str, target: str, kind: str, data: dict[str, Any] | None = None) -> None:
        key = (source, target, kind)
        if key not in self._seen:
            self._seen.add(key)
            self.edges.append(LineageEdge(source=source, target=target, kind=kind, data=data or {}))


def _run_dataset(name: str, row: Any, recorded_at: float | None) -> RunDataset:  # noqa: ANN401
    return RunDataset(name=name, project=row.project, dataset=row.dataset, version=row.version, content_id=row.content_id,
                      snapshot_id=row.snapshot_id, n_files=row.n_files, size=row.size, refs=json.loads(row.refs or "[]"),
                      recorded_at=recorded_at)


def run_project_of(conn: Connection, run_id: int) -> str:
    """The project of run ``run_id``.

    Raises:
        NotFound: no such run.
    """
    run_project = conn.execute(select(m.SqlProject.name).join(m.SqlRun, m.SqlRun.project_id == m.SqlProject.id)
                               .where(m.SqlRun.id == run_id)).scalar()
    if run_project is None:
        raise NotFound(f"No run with id {run_id}.", "List runs with `runyard ls`.")
    return str(run_project)


def record_use(conn: Connection, table: Table, column: str, run_id: int, name: str, version_id: int, *, verb: str,
               label: str, other_label: Callable[[int], str], rename_hint: str, limit: int, kinds: str,
               fewer_hint: str) -> float:
    """Record in ``table`` (``run_datasets`` or ``run_models``) that run ``run_id`` uses ``version_id`` (``column``)
    under ``name``; the same version under the same name again changes nothing. Returns when it was recorded.

    Raises:
        Conflict: the run already uses another version under ``name`` (``verb``: "reads", "uses").
        InvalidInput: the run already records ``limit`` of them.
    """
    have = conn.execute(select(table.c[column], table.c.recorded_at)
                        .where(table.c.run_id == run_id, table.c.name == name)).first()
    if have is not None and have[0] != version_id:
        raise Conflict(f"Run {run_id} already {verb} {other_label(have[0])} under the name {name!r}, not {label}.",
                       rename_hint)
    if have is not None:
        return float(have[1])
    n = conn.execute(select(func.count()).select_from(table).where(table.c.run_id == run_id)).scalar() or 0
    if n >= limit:
        raise InvalidInput(f"Run {run_id} already {verb} {n} {kinds}, the most one run may record.", fewer_hint)
    recorded = _now()
    conn.execute(insert(table).values(run_id=run_id, name=name, recorded_at=recorded, **{column: version_id}))
    return recorded

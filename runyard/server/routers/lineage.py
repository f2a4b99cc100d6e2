"""Lineage: the dataset versions a run read (``/runs/{id}/datasets``) and the graph from models back to data and code
(``/lineage``).

A run's own token may list and record its run's datasets (``runyard.use_dataset``); it may record a dataset of
its run's project or of a public project. The graph shows only what the caller may read: a node in a project the
caller cannot read is a redacted node ("not visible to you"), and nothing is followed through it.
"""

from __future__ import annotations

from collections import deque

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

import runyard.names as names
from runyard.errors import Forbidden, NotFound
from runyard.records.fields import SafeStr
from runyard.server._auth import (
    principal,
    project_role,
    require_project,
    require_run,
    run_reader,
    run_token_route,
    run_writer,
)
from runyard.server._deps import get_store
from runyard.store import LineageGraph, LineageNode, RunDataset, Store, parse_lineage_uri

router = APIRouter(tags=["lineage"])

REDACTED = "not visible to you"


class RunDatasetList(BaseModel):
    items: list[RunDataset]


class RunDatasetCreate(BaseModel):
    name: SafeStr = Field(max_length=64, description="the run's name for it: 1-64 letters, digits, '_', '.' or '-', "
                          "starting with a letter or '_' (RUNYARD_DATASET_<NAME>)")
    ref: SafeStr = Field(max_length=600, description="a dataset reference: NAME, NAME:3, NAME:latest, PROJECT/NAME:3 "
                         "(unqualified: the run's project)")


@router.get("/runs/{run_id}/datasets", response_model=RunDatasetList, dependencies=[Depends(run_reader)])
@run_token_route
def run_datasets(run_id: int, store: Store = Depends(get_store)) -> RunDatasetList:
    """The dataset versions the run read, by the run's names for them."""
    return RunDatasetList(items=store.run_datasets(run_id))


@router.post("/runs/{run_id}/datasets", response_model=RunDataset, dependencies=[Depends(run_writer)])
@run_token_route
def record_run_dataset(run_id: int, body: RunDatasetCreate, request: Request, store: Store = Depends(get_store)) -> RunDataset:
    """Record that the run reads a dataset version (resolved now: ``latest`` becomes a number) and return it.

    The same version under the same name again changes nothing; another version under a name the run
    already uses is refused (409). The caller must be able to read the dataset's project.
    """
    from runyard.store import check_run_dataset_name

    check_run_dataset_name(body.name)
    ref = names.parse_dataset_ref(body.ref)
    if ref.project is not None:
        access = request.app.state.auth.store
        run_info = access.run_access(run_id)
        if run_info is None:
            raise NotFound(f"No run with id {run_id}.", "List runs with `runyard ls`.")
        if ref.project != run_info.project:
            p = principal(request)
            if p.kind == "run":
                info = access.project_access(ref.project)
                if info is None or info.visibility != "public":
                    raise Forbidden(f"Run {run_id}'s token may record datasets of project {run_info.project!r} or of "
                                    f"public projects, not of {ref.project!r}.",
                                    "Push the dataset into the run's project, or make its project public.")
            else:
                require_project(request, ref.project, "viewer")
    return store.record_run_dataset(run_id, body.name, body.ref)


@router.get("/lineage", response_model=LineageGraph)
def lineage(request: Request, uri: str = Query(max_length=600, description="models:/[PROJECT/]NAME/V|@ALIAS|/latest, "
                                                                             "runs:/ID or datasets:/[PROJECT/]NAME[:V]"),
            project: str | None = Query(None, max_length=64, description="the project of unqualified names"),
            store: Store = Depends(get_store)) -> LineageGraph:
    """The lineage graph of a model version, a run or a dataset version (see docs/lineage.md).

    Nodes in projects the caller cannot read are redacted ("not visible to you") and not followed.
    """
    kind, target = parse_lineage_uri(uri)
    if kind == "run":
        require_run(request, target, "viewer")
    else:
        owner = target.project or project
        if owner is not None:
            require_project(request, owner, "viewer")
    graph = store.lineage(uri, project=project)
    return redact(request, graph)


def redact(request: Request, graph: LineageGraph) -> LineageGraph:
    """The graph as the caller may see it: nodes of projects they cannot read redacted, and what is reached only
    through a redacted node left out."""
    visible: dict[str, bool] = {}

    def may_read(node: LineageNode) -> bool:
        if node.project is None:
            return True
        if node.project not in visible:
            info = request.app.state.auth.store.project_access(node.project)
            visible[node.project] = info is not None and project_role(request, info) is not None
        return visible[node.project]

    nodes: dict[str, LineageNode] = {}
    for node in graph.nodes:
        nodes[node.id] = node if may_read(node) else LineageNode(id=node.id, kind=node.kind, label=REDACTED,
                                                                 data={"redacted": True})
    if graph.root not in nodes or nodes[graph.root].data.get("redacted"):
        raise NotFound("Nothing at that lineage URI that you can read.", "Check the URI and your access to its project.")
    # Walk from the root along edges either way, stepping onto redacted nodes but never through them.
    around: dict[str, list[str]] = {}
    for e in graph.edges:
        around.setdefault(e.source, []).append(e.target)
        around.setdefault(e.target, []).append(e.source)
    reached = {graph.root}
    todo = deque([graph.root])
    while todo:
        here = todo.popleft()
        if nodes[here].data.get("redacted"):
            continue
        for there in around.get(here, []):
            if there not in reached:
                reached.add(there)
                todo.append(there)
    edges = [e for e in graph.edges if e.source in reached and e.target in reached
             and not (nodes[e.source].data.get("redacted") and nodes[e.target].data.get("redacted"))]
    return LineageGraph(root=graph.root, nodes=[n for i, n in nodes.items() if i in reached], edges=edges,
                        truncated=graph.truncated)

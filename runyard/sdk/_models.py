"""Models from training code: ``log_model``, ``register_model`` and ``load_model`` (docs/models.md).

``log_model`` saves a model with its flavor (:mod:`runyard.flavors`) into a temporary directory,
uploads it as the active run's artifacts under ``models/<name>/`` and registers a new version of
the model ``name`` in the run's project. ``load_model`` resolves a ``models:/`` URI on the server,
writes the version's files into ``$RUNYARD_HOME/cache/models/<snapshot id>/`` through the blob
cache that snapshots use (``$RUNYARD_HOME/cache/blobs``: a file is downloaded once, whatever model
or snapshot holds it, and re-hashed before reuse), and loads them with the flavor.

Unlike metric logging, these calls raise: a model that was not stored must not look stored.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard import _failpoints
from runyard.errors import InvalidInput, InvalidState, RunyardError

if TYPE_CHECKING:
    from runyard.client import Client
    from runyard.sdk._run import Run

__all__ = ["load_model", "log_model", "register_model"]

MODELS_URI = "models:/"
_DEFAULT_NAME = "model"
_META_MAX_BYTES = 1024 * 1024
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:/")  # runs:/, s3://, models:// ...: URIs load_model does not take


def _client_of(run: Run) -> tuple[Client, int]:
    """The run's own HTTP client and id; a run without them (not created on the server, or spooling) cannot store models."""
    from runyard.client import Client

    client = run._client
    if run.id is None or not isinstance(client, Client):
        what = f"run {run.local_id}" if run.local_id else "this process's run"
        raise InvalidState(f"Cannot store a model: {what} is not on the server (it was not created, the server is away, "
                           "or this task writes to a spool because its node cannot reach the server).",
                           "Log the model when the server is reachable, or save it with runyard.flavors.save() and "
                           "register it later with runyard.register_model().")
    return client, run.id


def _run_project(client: Client, run_id: int) -> str:
    project: str = client.get_run(run_id)["project"]
    return project


def log_model(model: Any, name: str | None = None, *, flavor: str | None = None, input_example: Any = None,
              signature: dict[str, Any] | None = None, requirements: Iterable[str] | None = None,
              artifact_path: str | None = None, register: bool = True, description: str = "",
              format: str | None = None) -> dict[str, Any]:  # noqa: A002  (the flavor's word for it)
    """Save ``model`` with its flavor, store it in the active run, and register it as a new model version.

    Args:
        model: a scikit-learn estimator, an XGBoost model, a PyTorch module (or state dict), an ONNX
            model (or ``.onnx`` path), or a path to a file or directory (``files``).
        name: the registered model's name (1–128 characters ``[A-Za-z0-9._-]``); default ``model``.
        flavor: ``sklearn``, ``xgboost``, ``pytorch``, ``onnx`` or ``files``; default detected from ``model``.
        input_example: a small batch of inputs (numpy array, pandas DataFrame, torch tensor): the
            signature is inferred from it (and from the model's output on it); PyTorch traces or
            exports with it.
        signature: ``{"inputs": [{"name", "type", "shape"}], "outputs": [...]}``, instead of the inferred one.
        requirements: pip requirements added to the flavor's pinned ones.
        artifact_path: where in the run's artifacts; default ``models/<name>``.
        register: False stores the files in the run only (register them later with :func:`register_model`).
        description: the new version's description.
        format: PyTorch only: ``torchscript`` (default), ``export`` (``torch.export``, needs
            ``input_example``) or ``state_dict`` (load it with ``load_model(uri, model=Net())``).

    Returns:
        The new model version (``{"model", "project", "version", "flavor", "signature", ...}``); with
        ``register=False``, ``{"run_id", "artifact_path", "paths", "flavor", "signature", "requirements"}``.

    Raises:
        runyard.errors.InvalidInput: a bad name, flavor, signature or requirement, or a model the flavor cannot save.
        runyard.flavors.MissingLibrary: the flavor's library is not installed (the hint names the pip install).
        runyard.errors.InvalidState: the run is not on the server.
        runyard.errors.RunyardError: an upload or the registration failed.

    Example:
        >>> from sklearn.linear_model import LinearRegression
        >>> model = LinearRegression().fit([[0.0], [1.0], [2.0]], [0.0, 2.0, 4.0])
        >>> version = runyard.log_model(model, "doubler", input_example=[[3.0]])
        >>> version["model"], version["flavor"], version["signature"]["inputs"]
        ('doubler', 'sklearn', [{'name': None, 'type': 'float64', 'shape': [-1, 1]}])
        >>> runyard.finish()
    """
    from runyard import flavors, names
    from runyard.flavors._common import check_options
    from runyard.sdk._api import _auto

    model_name = names.check_model_name(_DEFAULT_NAME if name is None else name)
    options = {} if format is None else {"format": format}
    # An unknown flavor, an option it does not take or a bad signature fail before a run is started.
    check_options(flavor if flavor is not None else flavors.detect(model), options)
    flavors.check_signature(signature)
    flavors.check_requirements(requirements)
    target = f"models/{model_name}" if artifact_path is None else _check_artifact_path(artifact_path)
    run = _auto()
    client, run_id = _client_of(run)
    with tempfile.TemporaryDirectory(prefix="runyard-model-") as tmp:
        meta = flavors.save(model, Path(tmp) / "model", flavor=flavor, input_example=input_example, signature=signature,
                            requirements=requirements, **options)
        expected = sorted(f"{target}/{f}" for f in (*meta.files, flavors.META_FILE))
        uploaded = run.log_artifact(Path(tmp) / "model", target)
    if sorted(uploaded) != expected:
        missing = sorted(set(expected) - set(uploaded))
        raise RunyardError(f"Could not store model {model_name!r} in run {run_id}: {len(missing)} of its {len(expected)} "
                           f"files were not uploaded ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}).",
                           "See the error printed above; call log_model again when the server takes uploads.")
    _failpoints.pause("sdk.log_model.before_register")  # a crash here leaves the files in the run, no version
    if not register:
        return {"run_id": run_id, "artifact_path": target, "paths": uploaded, "flavor": meta.flavor,
                "signature": meta.signature, "requirements": list(meta.requirements)}
    return client.create_model_version(_run_project(client, run_id), model_name, run_id=run_id, paths=[target],
                                       flavor=meta.flavor, signature=meta.signature,
                                       requirements=list(meta.requirements), description=description)


def _check_artifact_path(path: Any) -> str:
    if not isinstance(path, str):
        raise InvalidInput(f"artifact_path must be a string, but got {type(path).__name__}.", "Pass e.g. artifact_path='models/clf'.")
    clean = path.strip("/")
    parts = clean.split("/")
    if not clean or "\x00" in clean or "\\" in clean or any(p in ("", ".", "..") for p in parts):
        raise InvalidInput(f"artifact_path {path!r:.80} is not a relative path inside the run.", "Pass e.g. artifact_path='models/clf'.")
    return clean


def _meta_of_artifacts(client: Client, run_id: int, paths: Sequence[str]) -> dict[str, Any] | None:
    """The ``runyard-model.json`` a single directory of the run's artifacts holds (as log_model wrote it), or None."""
    from runyard import flavors

    if len(paths) != 1:
        return None
    prefix = paths[0].strip("/")
    wanted = f"{prefix}/{flavors.META_FILE}"
    if not any(a.get("path") == wanted for a in client.list_artifacts(run_id, prefix=prefix + "/")):
        return None
    with tempfile.TemporaryDirectory(prefix="runyard-meta-") as tmp:
        dest = Path(tmp) / flavors.META_FILE
        client.download_artifact(run_id, wanted, dest)
        if dest.stat().st_size > _META_MAX_BYTES:
            return None
        try:
            data = json.loads(dest.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None
    if not isinstance(data, dict) or data.get("flavor") not in flavors.FLAVORS:
        return None
    return {"flavor": data["flavor"], "signature": flavors.check_signature(data.get("signature")),
            "requirements": flavors.check_requirements(data.get("requirements") or [])}


def register_model(run: Run | int | None, paths: str | Sequence[str], name: str, flavor: str | None = None, *,
                   signature: dict[str, Any] | None = None, requirements: Iterable[str] | None = None,
                   description: str = "") -> dict[str, Any]:
    """Register files a run already stored (its artifacts) as a new version of the model ``name``.

    Args:
        run: the run (a :class:`runyard.Run` or a run id); None for the active run.
        paths: artifact paths or directory prefixes of that run; the version's files are relative to
            their common directory.
        name: the model's name; the model is created in the run's project if missing.
        flavor: default: the flavor in ``runyard-model.json`` when ``paths`` is one directory that
            :func:`log_model` (``register=False``) wrote, else ``files``.
        signature: the version's signature (default: from ``runyard-model.json``, if any).
        requirements: pip requirements (default: from ``runyard-model.json``, if any).
        description: the version's description.

    Returns:
        The new model version.

    Raises:
        runyard.errors.InvalidInput: bad name, flavor or paths; paths that match no artifact of the run.
        runyard.errors.NotFound: no such run.

    Example:
        >>> run = runyard.init(project="demo")
        >>> _ = Path("weights.txt").write_text("0.1 0.2")
        >>> run.log_artifact("weights.txt", name="ckpt/weights.txt")
        ['ckpt/weights.txt']
        >>> runyard.register_model(run, ["ckpt"], "baseline")["files"]
        [['weights.txt', '...', 7, 420]]
        >>> runyard.finish()
    """
    from runyard import flavors, names
    from runyard.client import Client
    from runyard.sdk._api import active_run
    from runyard.sdk._run import Run

    model_name = names.check_model_name(name)
    if flavor is not None:
        flavors.flavor_module(flavor)
    wanted = [paths] if isinstance(paths, str) else list(paths)
    if not wanted or not all(isinstance(p, str) for p in wanted):
        raise InvalidInput("register_model() paths must be an artifact path or a non-empty list of them.",
                           "Pass e.g. paths=['models/clf'] (what log_artifact or log_model returned).")
    owned: Client | None = None
    if run is None:
        run = active_run()
        if run is None:
            raise InvalidState("register_model(None, ...) needs an active run.", "Pass the run or its id.")
    if isinstance(run, Run):
        client, run_id = _client_of(run)
    elif isinstance(run, int) and not isinstance(run, bool):
        env = Client.from_env()
        if not isinstance(env, Client):
            env.close()
            raise InvalidState("register_model() cannot reach the server from a task that spools.",
                               "Register the model after the run, e.g. with `runyard models register`.")
        client = owned = env
        run_id = run
    else:
        raise TypeError(f"register_model() run= takes a runyard.Run or a run id, not {type(run).__name__}.")
    try:
        found = _meta_of_artifacts(client, run_id, wanted) if flavor is None or signature is None or requirements is None else None
        found = found or {}
        return client.create_model_version(
            _run_project(client, run_id), model_name, run_id=run_id, paths=wanted,
            flavor=flavor or found.get("flavor", "files"),
            signature=flavors.check_signature(signature) if signature is not None else found.get("signature"),
            requirements=flavors.check_requirements(requirements) if requirements is not None else found.get("requirements", []),
            description=description)
    finally:
        if owned is not None:
            owned.close()


def model_cache_dir() -> Path:
    """Where :func:`load_model` keeps versions' files: ``$RUNYARD_HOME/cache/models``, one directory per snapshot."""
    from runyard import config

    return config.home() / "cache" / "models"


def _current_project(client: Client) -> str | None:
    """The project unqualified ``models:/`` URIs resolve in: RUNYARD_PROJECT, else the active run's project."""
    from runyard.sdk._api import active_run

    env = os.environ.get("RUNYARD_PROJECT")
    if env:
        return env
    run = active_run()
    if run is not None and run.id is not None:
        return _run_project(client, run.id)
    return None


def load_model(uri_or_path: str | os.PathLike[str], *, model: Any = None, project: str | None = None,
               name: str | None = None) -> Any:
    """Load a registered model version (``models:/NAME/3``, ``models:/NAME@production``, ``models:/NAME/latest``,
    ``models:/PROJECT/NAME@alias``) or a directory saved by :func:`runyard.flavors.save`.

    The version's files are written into ``$RUNYARD_HOME/cache/models/<snapshot id>/`` (a file
    already in the blob cache is not downloaded again) and loaded with the version's flavor: a
    scikit-learn estimator, an XGBoost model, a TorchScript module / exported program's module /
    state dict, an ``onnxruntime.InferenceSession``, or the directory's ``Path`` for ``files``.

    Inside a run (the active run, or the run launched by Runyard, whose token may read the models of
    its project and of public projects) the version is recorded as used by the run
    (``POST /runs/{id}/models``) under ``name`` (default: the model's name), which its lineage shows.
    A ``models:`` entry of runyard.yml is already in the run's directory: load it by its path,
    ``runyard.load_model(os.environ["RUNYARD_MODEL_BASE"])``.

    Args:
        uri_or_path: a ``models:/`` URI or a local directory.
        model: for a PyTorch state dict, the module to load it into.
        project: the project of an unqualified URI; default ``RUNYARD_PROJECT``, else the active run's.
        name: the run's name for the model when recording its use (default: the model's name).

    Raises:
        runyard.errors.InvalidInput: a malformed URI; files that do not load (damaged, refused types).
        runyard.errors.NotFound: no such model, version or alias.
        runyard.flavors.MissingLibrary: the flavor's library is not installed.

    Example:
        >>> from sklearn.linear_model import LinearRegression
        >>> with runyard.init(project="demo"):
        ...     _ = runyard.log_model(LinearRegression().fit([[0.0], [1.0]], [0.0, 2.0]), "twice")
        >>> runyard.load_model("models:/demo/twice/latest").predict([[4.0]]).round(6).tolist()
        [8.0]
    """
    from runyard import flavors

    options = {} if model is None else {"model": model}
    if isinstance(uri_or_path, str) and uri_or_path.startswith(MODELS_URI):
        directory, version = _fetch(uri_or_path, project, name)
        if not (directory / flavors.META_FILE).is_file():
            if version.get("flavor") == "files" and model is None:
                return directory
            raise InvalidInput(f"{uri_or_path} (version {version.get('version')} of {version.get('model')!r}) has no "
                               f"{flavors.META_FILE}, so its {version.get('flavor')} files cannot be loaded by runyard.",
                               f"Its files are in {directory}; load them yourself, or register the model with runyard.log_model().")
        return flavors.load(directory, **options)
    if isinstance(uri_or_path, str) and _SCHEME.match(uri_or_path) and not Path(uri_or_path).exists():
        raise InvalidInput(f"load_model() takes a models:/ URI or a directory, not {uri_or_path!r:.80}.",
                           "Write e.g. models:/digits@production or models:/digits/3.")
    return flavors.load(uri_or_path, **options)


def _run_id_here() -> int | None:
    """The current run: the active one, else the one Runyard launched this process for (RUNYARD_RUN_ID)."""
    from runyard.sdk._api import active_run

    run = active_run()
    if run is not None and run.id is not None:
        return int(run.id)
    env = os.environ.get("RUNYARD_RUN_ID", "")
    return int(env) if env.isascii() and env.isdigit() and len(env) <= 18 else None


def _use_name(model: str) -> str:
    """The run's default name for a model it uses: the model's name, made a valid one (``2024-bert`` → ``_2024-bert``)."""
    label = "".join(c if c.isascii() and (c.isalnum() or c in "_.-") else "_" for c in model)[:64]
    return label if label[:1].isalpha() or label[:1] == "_" else ("_" + label)[:64]


def _record_use(client: Client, version: dict[str, Any], name: str | None) -> None:
    """Inside a run: record that it uses ``version`` (pinned by number) under ``name``."""
    run_id = _run_id_here()
    if run_id is None:
        return
    from runyard.errors import Conflict

    pinned = f"models:/{version['project']}/{version['model']}/{version['version']}"
    label = name if name is not None else _use_name(str(version["model"]))
    try:
        client.record_run_model(run_id, label, pinned)
    except Conflict:
        if name is not None:
            raise
        # The run uses another version of this model under its name already: this one under NAME-vV.
        client.record_run_model(run_id, f"{label[:56]}-v{version['version']}", pinned)


def _fetch(uri: str, project: str | None, name: str | None = None) -> tuple[Path, dict[str, Any]]:
    """Resolve ``uri`` and write its version's files into the model cache; (directory, ModelVersion)."""
    from runyard.client import Client
    from runyard.snapshot import materialize

    client = Client.from_env()
    try:
        if not isinstance(client, Client):
            raise InvalidState("load_model() cannot reach the server from a task that spools (RUNYARD_SPOOL_DIR is set).",
                               "Load the model where the server is reachable.")
        from runyard.names import parse_model_uri

        where = project or (None if parse_model_uri(uri).project else _current_project(client))
        if where is None and parse_model_uri(uri).project is None:
            raise InvalidInput(f"{uri!r} names no project, and none is set.",
                               "Pass load_model(..., project='NAME'), set RUNYARD_PROJECT, or qualify the URI: "
                               "models:/PROJECT/NAME@alias.")
        version = client.resolve_model(uri, project=where)
        _record_use(client, version, name)  # inside a run: its lineage, and its token may then read the files
        snapshot_id = str(version["snapshot_id"])
        if not snapshot_id.isalnum() or len(snapshot_id) > 128:
            raise InvalidInput(f"The server named the snapshot {snapshot_id!r:.80} for {uri}.", "Check the server.")
        directory = model_cache_dir() / snapshot_id
        # Idempotent: files already in place are checked against the verified blob cache and kept;
        # a load killed half-way is completed by the next one.
        materialize(client, snapshot_id, directory)
        return directory, version
    finally:
        client.close()

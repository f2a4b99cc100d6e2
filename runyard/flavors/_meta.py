"""``runyard-model.json``: what a saved model directory holds, written and read back with its checks.

The file is the directory's table of contents::

    {"runyard_model": 1, "flavor": "sklearn", "format": "skops", "files": ["model.skops"],
     "library": "scikit-learn", "library_version": "1.9.1", "python_version": "3.11.7",
     "requirements": ["scikit-learn==1.9.1", "skops==0.16.0", ...],
     "signature": {"inputs": [{"name": "x", "type": "float64", "shape": [-1]}], "outputs": [...]},
     "details": {"class": "sklearn.linear_model._logistic.LogisticRegression"}}

A directory may come from anyone (a registry snapshot, a colleague's download), so reading
checks every field: a known flavor, file names inside the directory that exist, bounded
sizes. Loading code trusts nothing else in the file.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

from runyard.errors import InvalidInput, RunyardError

__all__ = ["FLAVORS", "META_FILE", "SCHEMA_VERSION", "MissingLibrary", "ModelMeta", "check_requirements", "check_signature",
           "describe", "infer_signature", "pinned", "read_meta", "require", "write_meta"]

META_FILE = "runyard-model.json"
SCHEMA_VERSION = 1
FLAVORS = ("sklearn", "xgboost", "pytorch", "onnx", "files")
_META_MAX_BYTES = 1024 * 1024
_MAX_FILES = 100_000
_MAX_FIELDS = 10_000  # signature inputs/outputs, requirements
_MAX_TEXT = 1000
_REQUIREMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-\[\],]*(\s*(==|>=|<=|~=|!=|<|>|===)\s*[A-Za-z0-9.*+!_\-]+)*"
                          r"(\s*,\s*(==|>=|<=|~=|!=|<|>)\s*[A-Za-z0-9.*+!_\-]+)*(\s*;\s*[^\n\r\x00]+)?")


class MissingLibrary(RunyardError, ImportError):
    """A flavor's library is not installed; the hint names the pip extra that installs it."""

    code = "missing_framework"


def require(module: str, flavor: str, install: str) -> ModuleType:
    """Import ``module`` for ``flavor``, or raise :class:`MissingLibrary` whose hint is ``pip install {install}``.

    Only a missing ``module`` itself becomes MissingLibrary; an installed library that fails
    to import raises its own error.
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        top = module.partition(".")[0]
        if e.name is not None and e.name not in (module, top) and not module.startswith(e.name + "."):
            raise
        raise MissingLibrary(f"The {flavor} flavor needs the Python package {top!r}, which is not installed here ({e}).",
                             f"pip install {install}") from e


def pinned(*dists: str) -> list[str]:
    """``name==version`` for each installed distribution in ``dists`` (the ones not installed are left out)."""
    out = []
    for dist in dists:
        try:
            out.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    return out


def _text(value: Any, what: str, max_len: int = _MAX_TEXT) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string, but got {type(value).__name__}.", "Save the model again with runyard.")
    if len(value) > max_len or "\x00" in value or re.search("[\ud800-\udfff]", value):
        raise InvalidInput(f"{what} {value[:60]!r} is longer than {max_len} characters or holds a NUL or an unpaired surrogate.",
                           "Use plain text.")
    return value


def check_requirements(requirements: Iterable[Any] | None, what: str = "requirements") -> list[str]:
    """Pip requirement strings, checked one by one (``name``, ``name==1.2``, ``name>=1,<2``, ``; markers``)."""
    if requirements is None:
        return []
    if isinstance(requirements, (str, bytes)) or not isinstance(requirements, Iterable):
        raise InvalidInput(f"{what} must be a list of pip requirement strings such as 'numpy==2.1.0', "
                           f"but got {type(requirements).__name__}.", "Pass e.g. requirements=['numpy==2.1.0'].")
    out: list[str] = []
    for req in requirements:
        text = _text(req, "The requirement", 500).strip()
        if not _REQUIREMENT.fullmatch(text):
            raise InvalidInput(f"{what}: {text[:80]!r} is not a pip requirement such as 'numpy==2.1.0'.",
                               "Write one requirement per list item: a package name, optionally with a version.")
        if text not in out:
            out.append(text)
        if len(out) > _MAX_FIELDS:
            raise InvalidInput(f"{what} lists more than {_MAX_FIELDS} requirements.", "List the packages the model needs.")
    return out


def _check_spec(item: Any, where: str) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        raise InvalidInput(f"signature {where} must be an object {{name, type, shape}}, but got {type(item).__name__}.",
                           "Write e.g. {'name': 'x', 'type': 'float32', 'shape': [-1, 3]}.")
    unknown = set(item) - {"name", "type", "shape"}
    if unknown:
        raise InvalidInput(f"signature {where} has unknown keys {sorted(map(str, unknown))}; the keys are name, type and shape.",
                           "Remove them.")
    name = item.get("name")
    if name is not None:
        _text(name, f"signature {where}.name", 256)
    type_ = _text(item.get("type", "any"), f"signature {where}.type", 64)
    shape = item.get("shape")
    if shape is not None:
        if not isinstance(shape, Sequence) or isinstance(shape, (str, bytes)) or len(shape) > 64:
            raise InvalidInput(f"signature {where}.shape must be a list of at most 64 integers (-1 for any size), but got {shape!r:.80}.",
                               "Write e.g. 'shape': [-1, 3].")
        for dim in shape:
            if isinstance(dim, bool) or not isinstance(dim, int) or not -1 <= dim < 2**53:
                raise InvalidInput(f"signature {where}.shape holds {dim!r:.40}; dimensions are integers ≥ -1 (-1 for any size).",
                                   "Write e.g. 'shape': [-1, 3].")
        shape = list(shape)
    return {"name": name, "type": type_, "shape": shape}


def check_signature(signature: Any) -> dict[str, list[dict[str, Any]]] | None:
    """A signature ``{inputs: [{name, type, shape}], outputs: [...]}`` in its canonical form, or None.

    Raises:
        InvalidInput: it is not of that shape (the message names the entry).
    """
    if signature is None:
        return None
    if not isinstance(signature, Mapping):
        raise InvalidInput(f"A signature is an object {{inputs: [...], outputs: [...]}}, but got {type(signature).__name__}.",
                           "Pass e.g. signature={'inputs': [{'name': 'x', 'type': 'float32', 'shape': [-1, 3]}], 'outputs': []}.")
    unknown = set(signature) - {"inputs", "outputs"}
    if unknown:
        raise InvalidInput(f"signature has unknown keys {sorted(map(str, unknown))}; the keys are inputs and outputs.",
                           "Remove them.")
    out: dict[str, list[dict[str, Any]]] = {}
    for key in ("inputs", "outputs"):
        items = signature.get(key) or []
        if not isinstance(items, Sequence) or isinstance(items, (str, bytes)) or len(items) > _MAX_FIELDS:
            raise InvalidInput(f"signature {key} must be a list of at most {_MAX_FIELDS} entries.",
                               "Write e.g. 'inputs': [{'name': 'x', 'type': 'float32', 'shape': [-1, 3]}].")
        out[key] = [_check_spec(item, f"{key}[{i}]") for i, item in enumerate(items)]
    return out


def _spec(name: str | None, type_: str, shape: Sequence[int] | None) -> dict[str, Any]:
    return {"name": name, "type": type_, "shape": None if shape is None else [int(d) for d in shape]}


def _batch(shape: Sequence[int]) -> list[int]:
    """A shape with its first (batch) dimension made -1: the example's batch size says nothing about the model."""
    return [-1, *shape[1:]] if shape else []


def describe(value: Any, name: str | None = None) -> list[dict[str, Any]]:
    """Signature entries for one value: a numpy array, a pandas DataFrame or Series, a torch tensor, a dict or tuple
    of those, or a Python scalar/list (as a numpy array). [] when it is of no kind this knows."""
    module = type(value).__module__.partition(".")[0]
    if module == "pandas":
        if hasattr(value, "columns"):
            return [_spec(str(c), str(t), [-1]) for c, t in zip(value.columns, value.dtypes, strict=True)]
        if hasattr(value, "dtype"):
            return [_spec(str(value.name) if value.name is not None else name, str(value.dtype), [-1])]
    if module == "torch" and hasattr(value, "dtype") and hasattr(value, "shape"):
        return [_spec(name, str(value.dtype).removeprefix("torch."), _batch(tuple(value.shape)))]
    if module == "numpy" and hasattr(value, "dtype"):
        return [_spec(name, str(value.dtype), _batch(tuple(getattr(value, "shape", ()))))]
    if isinstance(value, Mapping):
        return [entry for k, v in value.items() for entry in describe(v, str(k))]
    if isinstance(value, (tuple, list)) and value and all(type(v).__module__.partition(".")[0] in ("numpy", "torch", "pandas")
                                                           for v in value):
        stem = name or "input"
        return [entry for i, v in enumerate(value) for entry in describe(v, f"{stem}_{i}")]
    if isinstance(value, (tuple, list)) and value:  # plain rows of numbers, as scikit-learn takes them
        try:
            import numpy as np

            array = np.asarray(value)
        except (ImportError, ValueError, TypeError):
            return []
        return [] if array.dtype == object else describe(array, name)
    return []


def infer_signature(input_example: Any, output: Any = None, *, input_name: str | None = None,
                    output_name: str | None = None) -> dict[str, list[dict[str, Any]]] | None:
    """The signature of an input example (and of the model's output on it, when given); None for an unknown kind."""
    inputs = describe(input_example, input_name) if input_example is not None else []
    outputs = describe(output, output_name) if output is not None else []
    if not inputs and not outputs:
        return None
    return {"inputs": inputs, "outputs": outputs}


@dataclass(frozen=True)
class ModelMeta:
    """The content of ``runyard-model.json``: what :func:`runyard.flavors.save` wrote, and what ``load`` reads.

    Attributes:
        flavor: one of :data:`FLAVORS`.
        format: the flavor's file format (``skops``, ``json``, ``torchscript``, ``export``, ``state_dict``,
            ``onnx``, ``files``).
        files: the directory's files (relative POSIX paths), ``runyard-model.json`` not included.
        library: the pip distribution that reads the files ("" for ``files``).
        library_version: its version when saved.
        python_version: the saving Python's version.
        requirements: pinned pip requirement strings the model needs to load.
        signature: ``{inputs: [{name, type, shape}], outputs: [...]}``, or None.
        details: flavor-specific facts, e.g. ``{"class": "xgboost.sklearn.XGBClassifier"}``.
    """

    flavor: str
    format: str
    files: tuple[str, ...]
    library: str = ""
    library_version: str = ""
    python_version: str = field(default_factory=platform.python_version)
    requirements: tuple[str, ...] = ()
    signature: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"runyard_model": SCHEMA_VERSION, "flavor": self.flavor, "format": self.format, "files": list(self.files),
                "library": self.library, "library_version": self.library_version, "python_version": self.python_version,
                "requirements": list(self.requirements), "signature": self.signature, "details": dict(self.details)}


def _check_file_name(name: Any) -> str:
    text = _text(name, "A file name in runyard-model.json", 1024)
    parts = text.split("/")
    if (not text or text.startswith("/") or "\\" in text or any(p in ("", ".", "..") for p in parts)
            or posixpath.normpath(text) != text or text == META_FILE):
        raise InvalidInput(f"runyard-model.json names the file {text[:80]!r}, which is not a plain path inside the model's directory.",
                           "The file was not written by runyard; save the model again with runyard.flavors.save.")
    return text


def read_meta(directory: str | os.PathLike[str]) -> ModelMeta:
    """Read and check ``directory/runyard-model.json``.

    Raises:
        InvalidInput: the directory or its runyard-model.json is missing, not JSON, not of the known
            shape, names an unknown flavor or a file that is not there.
    """
    root = Path(directory)
    path = root / META_FILE
    if not root.is_dir():
        raise InvalidInput(f"{str(root)!r} is not a directory holding a saved model.",
                           "Pass the directory runyard.flavors.save wrote (it holds runyard-model.json), or a models:/ URI.")
    if not path.is_file():
        raise InvalidInput(f"{str(root)!r} holds no {META_FILE}, so it is not a model saved by runyard.",
                           "Pass the directory runyard.flavors.save wrote, or load its files yourself.")
    if path.stat().st_size > _META_MAX_BYTES:
        raise InvalidInput(f"{path} is larger than {_META_MAX_BYTES} bytes; runyard writes a few kilobytes.",
                           "The file was not written by runyard; save the model again.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidInput(f"{path} is not valid JSON ({e}).", "Save the model again; the file may be truncated.") from e
    if not isinstance(data, dict):
        raise InvalidInput(f"{path} must hold a JSON object, but holds {type(data).__name__}.", "Save the model again.")
    version = data.get("runyard_model")
    if version != SCHEMA_VERSION:
        raise InvalidInput(f"{path} has runyard_model={version!r:.40}; this runyard reads version {SCHEMA_VERSION}.",
                           "Load it with the runyard version that saved it, or save the model again.")
    flavor = data.get("flavor")
    if flavor not in FLAVORS:
        raise InvalidInput(f"{path} names the flavor {flavor!r:.60}, which runyard does not know. Known flavors: {', '.join(FLAVORS)}.",
                           "Upgrade runyard if a newer one saved it, or load the files yourself.")
    files = data.get("files")
    if not isinstance(files, list) or not files or len(files) > _MAX_FILES:
        raise InvalidInput(f"{path}: 'files' must be a non-empty list of at most {_MAX_FILES} file names.", "Save the model again.")
    names = tuple(_check_file_name(f) for f in files)
    for name in names:
        if not (root / name).is_file():
            raise InvalidInput(f"{path} lists {name!r}, which is not a file in {str(root)!r}.",
                               "The directory is incomplete; download or save the model again.")
    details = data.get("details") or {}
    if not isinstance(details, dict):
        raise InvalidInput(f"{path}: 'details' must be an object.", "Save the model again.")
    return ModelMeta(
        flavor=flavor,
        format=_text(data.get("format", ""), "format", 64),
        files=names,
        library=_text(data.get("library", ""), "library", 256),
        library_version=_text(data.get("library_version", ""), "library_version", 256),
        python_version=_text(data.get("python_version", ""), "python_version", 64),
        requirements=tuple(check_requirements(data.get("requirements") or [])),
        signature=check_signature(data.get("signature")),
        details=details,
    )


def write_meta(directory: Path, meta: ModelMeta) -> None:
    """Write ``runyard-model.json`` (last, so a directory that has it is complete)."""
    tmp = directory / f".{META_FILE}.tmp"
    tmp.write_text(json.dumps(meta.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(directory / META_FILE)

"""The flavor interface and its dispatch: ``save``, ``load`` and ``detect`` over the flavor modules.

A flavor module (``runyard.flavors.sklearn``, ``.xgboost``, ``.pytorch``, ``.onnx``, ``.files``) provides:

- ``NAME``: the flavor's word (``sklearn``...), as stored in ``runyard-model.json`` and the registry;
- ``matches(model) -> bool``: whether ``model`` is this flavor's kind of object, decided from its type's
  module names alone, so that detection imports no library;
- ``save(model, directory, *, input_example=None, signature=None, requirements=None, ...) -> ModelMeta``:
  writes the model's files and then ``runyard-model.json`` (last: a directory that has it is complete);
- ``load(directory, ...)``: the native model, after checking the files against ``runyard-model.json``.

Libraries are imported when a model is saved or loaded, never at ``import runyard.flavors``; a missing
one raises :class:`MissingLibrary` whose hint names the pip install that fixes it.
"""

from __future__ import annotations

import importlib
import inspect
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

from runyard.errors import InvalidInput
from runyard.flavors._meta import FLAVORS, META_FILE, ModelMeta, check_requirements, check_signature, read_meta, write_meta

__all__ = ["check_options", "detect", "flavor_module", "load", "save"]

# Detection order matters: XGBoost's scikit-learn wrappers are scikit-learn estimators too.
_DETECT_ORDER = ("xgboost", "pytorch", "onnx", "sklearn", "files")


def flavor_module(flavor: str) -> ModuleType:
    """The module of a flavor by its name.

    Raises:
        InvalidInput: an unknown flavor (the message lists the known ones).
    """
    if not isinstance(flavor, str) or flavor not in FLAVORS:
        raise InvalidInput(f"Unknown model flavor {flavor!r:.60}. Known flavors: {', '.join(FLAVORS)}.",
                           "Pass one of them as flavor=, or leave it out to detect it from the model.")
    return importlib.import_module(f"runyard.flavors.{flavor}")


def type_modules(obj: Any) -> set[str]:
    """The top-level package of every class in ``type(obj)``'s MRO (``{"sklearn", "builtins"}``...)."""
    return {cls.__module__.partition(".")[0] for cls in type(obj).__mro__}


def detect(model: Any) -> str:
    """The flavor that saves ``model``: ``xgboost``, ``pytorch``, ``onnx``, ``sklearn``, or ``files`` for a path.

    Raises:
        InvalidInput: no flavor knows this kind of object (the message names its type and the flavors).
    """
    for flavor in _DETECT_ORDER:
        if flavor_module(flavor).matches(model):
            return flavor
    cls = type(model)
    raise InvalidInput(f"No model flavor knows a {cls.__module__}.{cls.__qualname__}. Known flavors: {', '.join(FLAVORS)}.",
                       "Save it yourself into a directory and log that with flavor='files', or pass flavor= explicitly.")


def prepare_directory(directory: str | os.PathLike[str]) -> Path:
    """The directory to save into: created if missing; an existing one must be empty (files are never mixed)."""
    root = Path(directory).expanduser()
    if root.exists():
        if not root.is_dir():
            raise InvalidInput(f"Cannot save a model into {str(root)!r}: it is a file.", "Pass a new or empty directory.")
        if any(root.iterdir()):
            raise InvalidInput(f"Cannot save a model into {str(root)!r}: the directory is not empty.",
                               "Pass a new or empty directory; saving never overwrites files.")
    root.mkdir(parents=True, exist_ok=True)
    return root


def finish(directory: Path, meta: ModelMeta, *, signature: Any = None, requirements: Iterable[str] | None = None) -> ModelMeta:
    """Complete ``meta`` with the caller's signature (it wins over the inferred one) and requirements, and write it."""
    given = check_signature(signature)
    extra = [r for r in check_requirements(requirements) if r not in meta.requirements]
    done = ModelMeta(flavor=meta.flavor, format=meta.format, files=meta.files, library=meta.library,
                     library_version=meta.library_version, python_version=meta.python_version,
                     requirements=(*meta.requirements, *extra), signature=given if given is not None else meta.signature,
                     details=meta.details)
    write_meta(directory, done)
    return done


def check_options(flavor: str, options: dict[str, Any]) -> ModuleType:
    """The flavor's module, once ``options`` are known to be arguments its ``save`` takes.

    Raises:
        InvalidInput: an unknown flavor, or an option it does not take.
    """
    module = flavor_module(flavor)
    takes = inspect.signature(module.save).parameters
    unknown = sorted(k for k in options if k not in takes or k in ("model", "directory"))
    if unknown:
        raise InvalidInput(f"The {flavor} flavor takes no {', '.join(f'{k}=' for k in unknown)} option.",
                           "Leave it out (format= is a pytorch option: torchscript, export or state_dict).")
    return module


def save(model: Any, directory: str | os.PathLike[str], *, flavor: str | None = None, input_example: Any = None,
         signature: Any = None, requirements: Iterable[str] | None = None, **options: Any) -> ModelMeta:
    """Save ``model`` into ``directory`` with its flavor's own format, and write ``runyard-model.json``.

    Args:
        model: the model (or, for ``files`` and ``onnx``, a path).
        directory: a new or empty directory.
        flavor: one of ``sklearn``, ``xgboost``, ``pytorch``, ``onnx``, ``files``; default :func:`detect`.
        input_example: a batch of inputs (numpy array, pandas DataFrame, torch tensor); its types and
            shapes become the signature's inputs, and the model's output on it the outputs.
        signature: ``{inputs: [{name, type, shape}], outputs: [...]}``, instead of the inferred one.
        requirements: pip requirements added to the flavor's own pinned ones.
        options: flavor options, e.g. ``format="export"`` for PyTorch.

    Returns:
        What ``runyard-model.json`` now says.

    Raises:
        InvalidInput: unknown flavor, a model the flavor cannot save, a non-empty directory, a bad signature.
        MissingLibrary: the flavor's library is not installed.
    """
    name = flavor if flavor is not None else detect(model)
    module = check_options(name, options)
    check_signature(signature)
    check_requirements(requirements)
    root = Path(directory).expanduser()
    created = not root.exists()
    was_empty = root.is_dir() and not any(root.iterdir())
    try:
        result: ModelMeta = module.save(model, directory, input_example=input_example, signature=signature,
                                        requirements=requirements, **options)
    except BaseException:
        # A save that failed half-way leaves nothing behind: not its partial files, nor a directory it made.
        if (created or was_empty) and root.is_dir():
            if created:
                shutil.rmtree(root, ignore_errors=True)
            else:
                for child in root.iterdir():
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child, ignore_errors=True)
                    else:
                        child.unlink(missing_ok=True)
        raise
    return result


def load(directory: str | os.PathLike[str], **options: Any) -> Any:
    """The native model saved in ``directory`` (which holds ``runyard-model.json``), loaded by its flavor.

    Args:
        directory: a directory written by :func:`save`.
        options: flavor options, e.g. ``model=`` for a PyTorch state dict.

    Raises:
        InvalidInput: no or a malformed ``runyard-model.json``, an unknown flavor, damaged files, or
            (scikit-learn) a file holding types outside the allow-list.
        MissingLibrary: the flavor's library is not installed.
    """
    meta = read_meta(directory)
    return flavor_module(meta.flavor).load(directory, meta=meta, **options)


def check_meta(directory: str | os.PathLike[str], meta: ModelMeta | None, flavor: str) -> ModelMeta:
    """``meta`` (or the directory's, read now), checked to be of ``flavor``."""
    got = meta if meta is not None else read_meta(directory)
    if got.flavor != flavor:
        raise InvalidInput(f"{Path(directory) / META_FILE} says flavor {got.flavor!r}, not {flavor!r}.",
                           f"Load it with runyard.flavors.load() or runyard.flavors.{got.flavor}.load().")
    return got

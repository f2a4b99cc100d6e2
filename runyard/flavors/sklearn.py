"""The scikit-learn flavor: skops files, loaded only when every type in them is on an allow-list.

A skops file describes objects as data (class names and their state) instead of pickle's
instructions, so reading it runs no code by itself. Loading lists the types the file would
create that skops does not trust by default (``skops.io.get_untrusted_types``) and allows them
only when they come from scikit-learn, NumPy or SciPy (minus modules that read or write files
or run code). Anything else, such as a custom class or ``os.system`` hidden in a
``FunctionTransformer``, is refused, and the error names it. Pass ``trusted=[...]`` to
:func:`load` to accept named types of your own, after reading the code behind them.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from runyard.errors import InvalidInput
from runyard.flavors._common import check_meta, finish, prepare_directory, type_modules
from runyard.flavors._meta import ModelMeta, infer_signature, pinned, require

__all__ = ["ALLOWED_PACKAGES", "NAME", "load", "matches", "refused_types", "save"]

NAME = "sklearn"
FILE = "model.skops"
INSTALL = "'runyard[models]' scikit-learn"
ALLOWED_PACKAGES = ("sklearn", "numpy", "scipy")
# Parts of those packages that touch files or run code: never what a fitted estimator holds.
_DENIED_PARTS = frozenset({"f2py", "distutils", "testing", "ctypeslib", "load", "loads", "loadtxt", "save", "savez",
                           "savez_compressed", "savetxt", "fromfile", "tofile", "memmap", "genfromtxt", "fromregex",
                           "npyio", "_npyio_impl", "_datasource", "DataSource", "exec_command", "system", "popen",
                           "_lib", "weave", "io", "externals", "_testing", "datasets"})


def matches(model: Any) -> bool:
    return "sklearn" in type_modules(model)


def _allowed(type_name: str) -> bool:
    parts = type_name.split(".")
    return parts[0] in ALLOWED_PACKAGES and len(parts) > 1 and not any(p in _DENIED_PARTS for p in parts[1:])


def refused_types(untrusted: Iterable[str], trusted: Sequence[str] = ()) -> list[str]:
    """The types of ``untrusted`` neither on the allow-list nor in ``trusted``."""
    return sorted({t for t in untrusted if not _allowed(t) and t not in trusted})


def _untrusted(sio: Any, path: Path) -> list[str]:
    try:
        return list(sio.get_untrusted_types(file=path))
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, EOFError, OSError) as e:
        raise InvalidInput(f"{path} is not a readable skops file ({type(e).__name__}: {e}).",
                           "The file is damaged or truncated; download or save the model again.") from e


def save(model: Any, directory: str | os.PathLike[str], *, input_example: Any = None, signature: Any = None,
         requirements: Iterable[str] | None = None) -> ModelMeta:
    """Save a scikit-learn estimator (or pipeline) as ``model.skops``.

    The types of the written file are checked as :func:`load` will check them, so a model that
    could not be loaded back fails here, not on another machine later.

    Raises:
        InvalidInput: not a scikit-learn object, or one holding types outside the allow-list.
        MissingLibrary: skops or scikit-learn is not installed.
    """
    sio = require("skops.io", NAME, INSTALL)
    sklearn = require("sklearn", NAME, INSTALL)
    if not matches(model):
        raise InvalidInput(f"The sklearn flavor saves scikit-learn estimators, not a {type(model).__module__}.{type(model).__qualname__}.",
                           "Leave flavor= out to detect the flavor, or pass the one that matches the model.")
    root = prepare_directory(directory)
    path = root / FILE
    sio.dump(model, path)
    refused = refused_types(_untrusted(sio, path))
    if refused:
        path.unlink()
        raise InvalidInput(f"The model holds types that loading will refuse (outside {', '.join(ALLOWED_PACKAGES)}): {', '.join(refused)}.",
                           "Use scikit-learn's own transformers and estimators, or save the model with flavor='files' "
                           "and load it knowingly.")
    output = None
    if input_example is not None and hasattr(model, "predict"):
        try:
            output = model.predict(input_example)
        except (ValueError, TypeError, AttributeError, sklearn.exceptions.NotFittedError):
            output = None  # the example does not fit the model: the signature keeps the inputs only
    meta = ModelMeta(flavor=NAME, format="skops", files=(FILE,), library="scikit-learn", library_version=sklearn.__version__,
                     requirements=tuple(pinned("scikit-learn", "skops", "numpy", "scipy")),
                     signature=infer_signature(input_example, output, output_name="prediction"),
                     details={"class": f"{type(model).__module__}.{type(model).__qualname__}"})
    return finish(root, meta, signature=signature, requirements=requirements)


def load(directory: str | os.PathLike[str], *, meta: ModelMeta | None = None, trusted: Sequence[str] = ()) -> Any:
    """Load the estimator of ``directory/model.skops``, refusing types outside the allow-list.

    Args:
        directory: a directory saved by :func:`save`.
        meta: its ``runyard-model.json`` already read (else read here).
        trusted: more type names to accept (``"mypackage.MyTransformer"``), beyond scikit-learn, NumPy, SciPy.

    Raises:
        InvalidInput: the file holds types neither allowed nor ``trusted`` (named in the message), or is damaged.
        MissingLibrary: skops or scikit-learn is not installed.
    """
    meta = check_meta(directory, meta, NAME)
    sio = require("skops.io", NAME, INSTALL)
    require("sklearn", NAME, INSTALL)
    path = Path(directory) / meta.files[0]
    untrusted = _untrusted(sio, path)
    refused = refused_types(untrusted, trusted)
    if refused:
        raise InvalidInput(f"{path} holds types runyard does not load (allowed: {', '.join(ALLOWED_PACKAGES)} types): "
                           f"{', '.join(refused)}.",
                           "If you know and trust the code behind them, pass runyard.flavors.sklearn.load(directory, "
                           "trusted=[...]) with those names.")
    try:
        return sio.load(path, trusted=untrusted)
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, EOFError, AttributeError, ImportError) as e:
        raise InvalidInput(f"{path} could not be loaded by skops ({type(e).__name__}: {e}).",
                           "The file is damaged, or was saved with other versions of scikit-learn/skops: "
                           f"install {', '.join(meta.requirements) or 'the versions that saved it'}.") from e

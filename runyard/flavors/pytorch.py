"""The PyTorch flavor: TorchScript by default, ``torch.export`` programs, or a state dict.

Formats (``format=``):

- ``torchscript`` (default for a module): ``torch.jit.script(model)``; a module scripting
  cannot compile is traced with ``input_example`` instead (tracing records one path through
  the code: data-dependent branches are fixed). Loads with ``torch.jit.load``, no Python class needed.
- ``export``: ``torch.export.export(model, input_example)`` saved as ``model.pt2``; loads as the
  exported program's module (needs ``input_example``; the default for an ``ExportedProgram``).
- ``state_dict``: the tensors only, ``torch.save(model.state_dict())``; loads with
  ``torch.load(weights_only=True)`` (no pickled code runs) as the state dict, or into the
  module passed as ``model=`` (the default for a dict of tensors).

The signature's outputs come from running the model on ``input_example`` under
``torch.no_grad()`` only when the module is in eval mode: in training mode a forward pass
would update batch-norm statistics.
"""

from __future__ import annotations

import os
import pickle
import warnings
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from runyard.errors import InvalidInput
from runyard.flavors._common import check_meta, finish, prepare_directory, type_modules
from runyard.flavors._meta import ModelMeta, infer_signature, pinned, require

__all__ = ["FORMATS", "NAME", "load", "matches", "save"]

NAME = "pytorch"
INSTALL = "torch  (CPU only: pip install torch --index-url https://download.pytorch.org/whl/cpu)"
FORMATS = {"torchscript": "model.pt", "export": "model.pt2", "state_dict": "state_dict.pt"}


def matches(model: Any) -> bool:
    if "torch" in type_modules(model):
        return True
    # a state dict: a mapping whose values are all tensors
    return (isinstance(model, Mapping) and bool(model)
            and all(type(v).__module__.partition(".")[0] == "torch" for v in model.values()))


def _args(example: Any) -> tuple[Any, ...]:
    return tuple(example) if isinstance(example, (tuple, list)) else (example,)


def _jit(torch: Any, fn: Any, *args: Any) -> Any:
    """A ``torch.jit`` call without its deprecation warning: TorchScript is still what loads without the model's code."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=DeprecationWarning)
        return fn(*args)


def _torchscript(torch: Any, model: Any, input_example: Any) -> Any:
    if isinstance(model, torch.jit.ScriptModule):
        return model
    try:
        return _jit(torch, torch.jit.script, model)
    except Exception as e:  # noqa: BLE001  (scripting fails in many ways; each is answered below)
        if input_example is None:
            raise InvalidInput(f"torch.jit.script cannot compile the model ({type(e).__name__}: {str(e).strip()[:300]}).",
                               "Pass input_example= to trace it instead, or save it with format='export' or "
                               "format='state_dict'.") from e
        failure = e
    try:
        return _jit(torch, torch.jit.trace, model, _args(input_example))
    except (RuntimeError, TypeError, ValueError) as e:
        raise InvalidInput(f"The model can neither be scripted ({type(failure).__name__}) nor traced with the input example "
                           f"({type(e).__name__}: {str(e).strip()[:300]}).",
                           "Save it with format='export' or format='state_dict'.") from e


def save(model: Any, directory: str | os.PathLike[str], *, input_example: Any = None, signature: Any = None,
         requirements: Iterable[str] | None = None, format: str | None = None) -> ModelMeta:  # noqa: A002
    """Save a ``torch.nn.Module`` (TorchScript by default), an ``ExportedProgram``, or a state dict.

    Args:
        model: a module, a ``torch.jit.ScriptModule``, a ``torch.export.ExportedProgram`` or a state dict.
        directory: a new or empty directory.
        input_example: a tensor or a tuple of tensors, the model's positional inputs.
        signature: instead of the inferred one.
        requirements: added to ``torch==<version>``.
        format: ``torchscript``, ``export`` or ``state_dict`` (see the module's docstring).

    Raises:
        InvalidInput: an unknown format, a model the format cannot save (the hint names another format).
        MissingLibrary: torch is not installed.
    """
    torch = require("torch", NAME, INSTALL)
    is_program = isinstance(model, torch.export.ExportedProgram)
    is_module = isinstance(model, torch.nn.Module)
    is_state = isinstance(model, Mapping)
    if not (is_program or is_module or is_state):
        raise InvalidInput(f"The pytorch flavor saves modules, exported programs and state dicts, not a "
                           f"{type(model).__module__}.{type(model).__qualname__}.", "Pass the torch.nn.Module.")
    fmt = format if format is not None else ("export" if is_program else "state_dict" if is_state else "torchscript")
    if fmt not in FORMATS:
        raise InvalidInput(f"Unknown pytorch format {fmt!r:.40}. Known formats: {', '.join(FORMATS)}.", "Pass one of them as format=.")
    if is_state and fmt != "state_dict":
        raise InvalidInput(f"A state dict is saved only with format='state_dict', not {fmt!r}.", "Pass the module itself.")
    if is_program and fmt != "export":
        raise InvalidInput(f"An ExportedProgram is saved only with format='export', not {fmt!r}.", "Pass the module itself.")
    if fmt == "export" and not is_program and input_example is None:
        raise InvalidInput("format='export' needs input_example= (torch.export traces the model with it).",
                           "Pass input_example=a batch of inputs, e.g. torch.randn(1, 3).")
    root = prepare_directory(directory)
    path = root / FORMATS[fmt]
    runnable: Any = None
    if fmt == "torchscript":
        scripted = _torchscript(torch, model, input_example)
        _jit(torch, scripted.save, str(path))
        runnable = scripted
    elif fmt == "export":
        try:
            program = model if is_program else torch.export.export(model, _args(input_example))
        except Exception as e:  # noqa: BLE001  (export fails in many ways; each is answered here)
            raise InvalidInput(f"torch.export cannot export the model ({type(e).__name__}: {str(e).strip()[:300]}).",
                               "Save it with format='torchscript' or format='state_dict'.") from e
        torch.export.save(program, str(path))
        runnable = program.module()
    else:
        state = model.state_dict() if is_module else dict(model)
        torch.save(state, str(path))
        runnable = model if is_module else None
    output = None
    if input_example is not None and runnable is not None and not (is_module and model.training):
        try:
            with torch.no_grad():
                output = runnable(*_args(input_example))
        except (RuntimeError, TypeError, ValueError):
            output = None  # the example does not fit the model: the signature keeps the inputs only
    details: dict[str, Any] = {}
    if is_module:
        details["class"] = f"{type(model).__module__}.{type(model).__qualname__}"
    meta = ModelMeta(flavor=NAME, format=fmt, files=(FORMATS[fmt],), library="torch", library_version=torch.__version__,
                     requirements=tuple(pinned("torch")), details=details,
                     signature=infer_signature(input_example, output, input_name="input", output_name="output"))
    return finish(root, meta, signature=signature, requirements=requirements)


def load(directory: str | os.PathLike[str], *, meta: ModelMeta | None = None, model: Any = None) -> Any:
    """The saved model: a ``ScriptModule`` (torchscript), the exported program's module (export), or the state
    dict (state_dict), loaded into ``model`` when one is given (and ``model`` returned).

    Tensors are loaded onto the CPU.

    Raises:
        InvalidInput: a damaged file, ``model=`` with another format, a state dict that does not fit ``model``.
        MissingLibrary: torch is not installed.
    """
    meta = check_meta(directory, meta, NAME)
    torch = require("torch", NAME, INSTALL)
    if meta.format not in FORMATS:
        raise InvalidInput(f"{Path(directory) / 'runyard-model.json'} names the pytorch format {meta.format!r:.40}. "
                           f"Known formats: {', '.join(FORMATS)}.", "Upgrade runyard, or save the model again.")
    if model is not None and meta.format != "state_dict":
        raise InvalidInput(f"model= is for state dicts; this model was saved as {meta.format} and loads by itself.",
                           "Leave model= out.")
    path = Path(directory) / meta.files[0]
    try:
        if meta.format == "torchscript":
            return _jit(torch, torch.jit.load, str(path), "cpu")
        if meta.format == "export":
            return torch.export.load(str(path)).module()
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except (RuntimeError, zipfile.BadZipFile, pickle.UnpicklingError, EOFError, ValueError, KeyError) as e:
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
        raise InvalidInput(f"{path} could not be loaded by torch {torch.__version__} ({type(e).__name__}: {first}).",
                           "The file is damaged or truncated, holds more than tensors, or was saved by another torch: "
                           f"install {', '.join(meta.requirements) or 'the version that saved it'}.") from e
    if model is None:
        return state
    if not isinstance(model, torch.nn.Module):
        raise InvalidInput(f"model= takes the torch.nn.Module to load the state dict into, not a {type(model).__name__}.",
                           "Pass an instance of the model's class, e.g. model=Net().")
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise InvalidInput(f"The saved state dict does not fit the {type(model).__qualname__} given: {str(e).strip()[:500]}",
                           "Pass an instance of the class the model was saved from "
                           f"({meta.details.get('class', 'see runyard-model.json')}).") from e
    return model

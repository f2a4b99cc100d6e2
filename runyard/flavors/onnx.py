"""The ONNX flavor: the model's bytes kept as they are, loaded as an ``onnxruntime.InferenceSession``.

The model is an ``onnx.ModelProto`` or the path of a ``.onnx`` file. Saving parses it with
``onnx`` (so a file that is not ONNX fails at once) and takes the signature from the graph's
inputs and outputs (symbolic dimensions become -1). Models with external data files are not
supported: save them with ``onnx.save_model(..., save_as_external_data=False)`` first, or log
the directory with the ``files`` flavor.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from runyard.errors import InvalidInput
from runyard.flavors._common import check_meta, finish, prepare_directory, type_modules
from runyard.flavors._meta import ModelMeta, pinned, require

__all__ = ["NAME", "load", "matches", "save"]

NAME = "onnx"
FILE = "model.onnx"
INSTALL = "'runyard[models]'"


def matches(model: Any) -> bool:
    if isinstance(model, (str, os.PathLike)):
        return Path(model).suffix.lower() == ".onnx"
    return "onnx" in type_modules(model)


def _io(onnx: Any, values: Any) -> list[dict[str, Any]]:
    out = []
    for value in values:
        tensor = value.type.tensor_type
        type_ = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name if tensor.elem_type else "any"
        shape = ([d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
                 if tensor.HasField("shape") else None)
        out.append({"name": value.name, "type": type_, "shape": shape})
    return out


def save(model: Any, directory: str | os.PathLike[str], *, input_example: Any = None, signature: Any = None,
         requirements: Iterable[str] | None = None) -> ModelMeta:
    """Save an ONNX model (``onnx.ModelProto``, or the path of a ``.onnx`` file) as ``model.onnx``, bytes unchanged.

    ``input_example`` is not needed: the graph declares its inputs and outputs.

    Raises:
        InvalidInput: not ONNX (or a file that does not parse), a missing file.
        MissingLibrary: onnx is not installed.
    """
    onnx = require("onnx", NAME, INSTALL)
    require("onnxruntime", NAME, INSTALL)
    if isinstance(model, (str, os.PathLike)):
        src = Path(model)
        if not src.is_file():
            raise InvalidInput(f"The ONNX model file {str(src)!r} does not exist.", "Pass the path of a .onnx file or an onnx.ModelProto.")
        try:
            proto = onnx.load_model(str(src), load_external_data=False)
        except Exception as e:  # noqa: BLE001  (protobuf's DecodeError and onnx's own errors)
            raise InvalidInput(f"{src} is not an ONNX model ({type(e).__name__}: {str(e).strip()[:200]}).",
                               "Pass a .onnx file written by onnx.save or an exporter.") from e
    elif isinstance(model, onnx.ModelProto):
        proto, src = model, None
    else:
        raise InvalidInput(f"The onnx flavor saves an onnx.ModelProto or a .onnx file, not a "
                           f"{type(model).__module__}.{type(model).__qualname__}.", "Export the model to ONNX first.")
    if any(init.data_location == onnx.TensorProto.EXTERNAL for init in proto.graph.initializer):
        raise InvalidInput("The ONNX model keeps tensors in external data files, which the onnx flavor does not carry.",
                           "Save it as one file (onnx.save_model(model, path, save_as_external_data=False)), "
                           "or log its directory with flavor='files'.")
    root = prepare_directory(directory)
    if src is not None:
        shutil.copyfile(src, root / FILE)
    else:
        (root / FILE).write_bytes(proto.SerializeToString())
    inits = {i.name for i in proto.graph.initializer}
    inferred = {"inputs": _io(onnx, [v for v in proto.graph.input if v.name not in inits]), "outputs": _io(onnx, proto.graph.output)}
    meta = ModelMeta(flavor=NAME, format="onnx", files=(FILE,), library="onnx", library_version=onnx.__version__,
                     requirements=tuple(pinned("onnx", "onnxruntime", "numpy")), signature=inferred,
                     details={"ir_version": int(proto.ir_version),
                              "opsets": {o.domain or "ai.onnx": int(o.version) for o in proto.opset_import},
                              "producer": f"{proto.producer_name} {proto.producer_version}".strip()})
    return finish(root, meta, signature=signature, requirements=requirements)


def load(directory: str | os.PathLike[str], *, meta: ModelMeta | None = None, providers: list[str] | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` on ``directory/model.onnx`` (CPU unless ``providers`` says otherwise).

    Raises:
        InvalidInput: the file is not a model onnxruntime can run (damaged, truncated, unknown operators).
        MissingLibrary: onnxruntime is not installed.
    """
    meta = check_meta(directory, meta, NAME)
    ort = require("onnxruntime", NAME, INSTALL)
    path = Path(directory) / meta.files[0]
    try:
        return ort.InferenceSession(str(path), providers=providers or ["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001  (onnxruntime's errors derive from Exception only: InvalidProtobuf, Fail, ...)
        raise InvalidInput(f"{path} could not be loaded by onnxruntime {ort.__version__} "
                           f"({type(e).__name__}: {str(e).strip()[:300]}).",
                           "The file is damaged or truncated, or needs a newer onnxruntime: "
                           f"install {', '.join(meta.requirements) or 'the versions that saved it'}.") from e

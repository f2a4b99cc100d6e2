"""The onnx flavor with the real onnx and onnxruntime: bytes kept as they are, a session back, damaged files refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from runyard import flavors
from runyard.errors import InvalidInput


def tiny_model() -> onnx.ModelProto:
    """Y = X * W + B for X of shape [N, 3] (N symbolic), W and B initialisers."""
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 3])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 3])
    w = numpy_helper.from_array(np.array([1.0, 2.0, 3.0], np.float32), "W")
    b = numpy_helper.from_array(np.full(3, 0.5, np.float32), "B")
    graph = helper.make_graph([helper.make_node("Mul", ["X", "W"], ["XW"]), helper.make_node("Add", ["XW", "B"], ["Y"])],
                              "tiny", [x], [y], initializer=[w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="runyard-tests")
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


def test_a_model_proto_is_stored_byte_for_byte_and_runs(tmp_path: Path) -> None:
    model = tiny_model()
    meta = flavors.save(model, tmp_path / "m")
    assert flavors.detect(model) == "onnx"
    assert (meta.format, meta.files) == ("onnx", ("model.onnx",))
    assert (tmp_path / "m" / "model.onnx").read_bytes() == model.SerializeToString()
    assert meta.signature == {"inputs": [{"name": "X", "type": "float32", "shape": [-1, 3]}],
                              "outputs": [{"name": "Y", "type": "float32", "shape": [-1, 3]}]}
    assert meta.details["opsets"] == {"ai.onnx": 17} and meta.details["producer"] == "runyard-tests"
    assert {r.split("==")[0] for r in meta.requirements} >= {"onnx", "onnxruntime"}
    session = flavors.load(tmp_path / "m")
    (out,) = session.run(None, {"X": np.ones((2, 3), np.float32)})
    np.testing.assert_array_equal(out, np.array([[1.5, 2.5, 3.5]] * 2, np.float32))


def test_a_file_path_is_copied_as_is(tmp_path: Path) -> None:
    src = tmp_path / "exported.onnx"
    onnx.save_model(tiny_model(), src)
    assert flavors.detect(src) == "onnx" and flavors.detect(str(src)) == "onnx"
    flavors.save(src, tmp_path / "m")
    assert (tmp_path / "m" / "model.onnx").read_bytes() == src.read_bytes()


def test_a_file_that_is_not_onnx_is_refused_at_save(tmp_path: Path) -> None:
    src = tmp_path / "bad.onnx"
    src.write_bytes(b"\x08\x01garbage" * 20)
    with pytest.raises(InvalidInput, match="is not an ONNX model"):
        flavors.save(src, tmp_path / "m")
    with pytest.raises(InvalidInput, match="does not exist"):
        flavors.save(tmp_path / "missing.onnx", tmp_path / "n")


def test_a_truncated_model_is_refused_clearly(tmp_path: Path) -> None:
    flavors.save(tiny_model(), tmp_path / "m")
    f = tmp_path / "m" / "model.onnx"
    f.write_bytes(f.read_bytes()[:40])
    with pytest.raises(InvalidInput, match="could not be loaded by onnxruntime") as e:
        flavors.load(tmp_path / "m")
    assert "truncated" in e.value.hint


def test_external_data_is_refused(tmp_path: Path) -> None:
    model = tiny_model()
    onnx.save_model(model, tmp_path / "ext.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    with pytest.raises(InvalidInput, match="external data"):
        flavors.save(tmp_path / "ext.onnx", tmp_path / "m")

"""The pytorch flavor with the real torch (CPU): TorchScript, torch.export and state dicts, and damaged files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from runyard import flavors
from runyard.errors import InvalidInput
from runyard.flavors import pytorch as pt_flavor


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(4, 8)
        self.b = torch.nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x)))


class Untypable(torch.nn.Module):
    """A forward TorchScript cannot compile (a Python dict of mixed values), which tracing handles."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 2)

    def forward(self, x):  # no annotation: scripting takes Tensor, then fails on the dict below
        extra = {"scale": 2.0, "name": "s"}
        return self.lin(x) * extra["scale"]


@pytest.fixture
def net() -> Net:
    torch.manual_seed(0)
    return Net().eval()


def test_torchscript_is_the_default_and_loads_without_the_class(net: Net, tmp_path: Path) -> None:
    x = torch.randn(5, 4)
    meta = flavors.save(net, tmp_path / "m", input_example=x)
    assert flavors.detect(net) == "pytorch"
    assert (meta.format, meta.files) == ("torchscript", ("model.pt",))
    assert meta.signature == {"inputs": [{"name": "input", "type": "float32", "shape": [-1, 4]}],
                              "outputs": [{"name": "output", "type": "float32", "shape": [-1, 2]}]}
    assert meta.requirements == (f"torch=={torch.__version__}",)
    # a fresh process without the Net class: TorchScript carries the code
    code = ("import sys, torch; from runyard import flavors; m = flavors.load(sys.argv[1]); "
            "torch.manual_seed(1); print(m(torch.ones(2, 4)).tolist())")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m")], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}).stdout
    torch.testing.assert_close(torch.tensor(json.loads(out)), net(torch.ones(2, 4)).detach())


def test_a_module_scripting_cannot_compile_is_traced_with_the_example(tmp_path: Path) -> None:
    model = Untypable().eval()
    x = torch.randn(3, 4)
    with pytest.raises(InvalidInput, match="cannot compile") as e:
        flavors.save(model, tmp_path / "a")
    assert "input_example" in e.value.hint
    assert not (tmp_path / "a").exists()  # a failed save leaves nothing behind
    flavors.save(model, tmp_path / "b", input_example=x)
    torch.testing.assert_close(flavors.load(tmp_path / "b")(x), model(x))


def test_export_writes_a_pt2_program(net: Net, tmp_path: Path) -> None:
    x = torch.randn(3, 4)
    meta = flavors.save(net, tmp_path / "m", input_example=x, format="export")
    assert (meta.format, meta.files) == ("export", ("model.pt2",))
    torch.testing.assert_close(flavors.load(tmp_path / "m")(x), net(x))
    with pytest.raises(InvalidInput, match="needs input_example"):
        flavors.save(net, tmp_path / "n", format="export")
    program = torch.export.export(net, (x,))
    assert flavors.save(program, tmp_path / "p").format == "export"  # an ExportedProgram is saved as it is


def test_a_state_dict_loads_as_a_dict_or_into_a_given_module(net: Net, tmp_path: Path) -> None:
    x = torch.randn(3, 4)
    meta = flavors.save(net, tmp_path / "m", format="state_dict", input_example=x)
    assert meta.details["class"].endswith("Net") and meta.files == ("state_dict.pt",)
    state = flavors.load(tmp_path / "m")
    assert set(state) == {"a.weight", "a.bias", "b.weight", "b.bias"}
    fresh = Net().eval()
    assert flavors.load(tmp_path / "m", model=fresh) is fresh
    torch.testing.assert_close(fresh(x), net(x))
    flavors.save(net.state_dict(), tmp_path / "sd")  # a bare state dict: format state_dict by itself
    assert flavors.read_meta(tmp_path / "sd").format == "state_dict"
    with pytest.raises(InvalidInput, match="does not fit"):
        flavors.load(tmp_path / "m", model=torch.nn.Linear(4, 2))
    with pytest.raises(InvalidInput, match="model= is for state dicts"):
        flavors.load(flavors.save(net, tmp_path / "ts") and tmp_path / "ts", model=Net())


def test_a_training_mode_module_is_not_run_for_its_outputs(tmp_path: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4)).train()
    before = model[1].running_mean.clone()
    meta = flavors.save(model, tmp_path / "m", input_example=torch.randn(8, 4), format="state_dict")
    assert meta.signature["outputs"] == []
    torch.testing.assert_close(model[1].running_mean, before)  # the batch-norm statistics did not move


class Evil:
    def __reduce__(self) -> tuple:
        return (os.system, ("echo pwned",))


def test_a_state_dict_holding_pickled_code_is_refused(net: Net, tmp_path: Path) -> None:
    flavors.save(net, tmp_path / "m", format="state_dict")
    torch.save({"a.weight": Evil()}, tmp_path / "m" / "state_dict.pt")
    with pytest.raises(InvalidInput, match="could not be loaded by torch"):
        flavors.load(tmp_path / "m")


@pytest.mark.parametrize("fmt", ["torchscript", "export", "state_dict"])
def test_a_truncated_file_is_refused_clearly(fmt: str, net: Net, tmp_path: Path) -> None:
    meta = flavors.save(net, tmp_path / "m", input_example=torch.randn(2, 4), format=fmt)
    f = tmp_path / "m" / meta.files[0]
    f.write_bytes(f.read_bytes()[:300])
    with pytest.raises(InvalidInput, match="could not be loaded by torch") as e:
        flavors.load(tmp_path / "m")
    assert "truncated" in e.value.hint


def test_bad_formats_and_objects_are_refused(net: Net, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="Unknown pytorch format 'onnx'. Known formats: torchscript, export, state_dict"):
        flavors.save(net, tmp_path / "m", format="onnx")
    with pytest.raises(InvalidInput, match="saves modules"):
        pt_flavor.save([1, 2], tmp_path / "n")

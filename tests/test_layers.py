"""Imports go one way, down the layer table of runyard/testing/layers.py (docs/architecture.md)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

from runyard.testing.layers import LAYERS, check_source, check_tree, unlayered_modules

REPO = Path(__file__).resolve().parent.parent


def test_no_import_goes_up_or_across_the_layers() -> None:
    violations = check_tree(REPO)
    assert not violations, (
        f"{len(violations)} import(s) against the layer table (docs/architecture.md; a module imports only its own "
        "package and lower layers):\n" + "\n".join(map(str, violations)))


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in {"runyard/__init__.py": "", **files}.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return tmp_path


def test_the_checker_catches_imports_up_across_and_inside_functions(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "runyard/errors.py": "",
        "runyard/config.py": "",
        "runyard/_http.py": "",
        "runyard/client.py": "",
        "runyard/_local.py": "",
        "runyard/spec.py": "",
        "runyard/store/__init__.py": "from . import _store\n",
        "runyard/store/_store.py": """\
            from runyard import config
            from runyard.errors import NotFound
            from ._engine import x
            def f():
                from ..server import app
        """,
        "runyard/store/_engine.py": "",
        "runyard/server/__init__.py": "",
        "runyard/runner/_agent.py": "import runyard\nfrom runyard import __version__\n",
        "runyard/snapshot.py": "from runyard import __version__\n",
    })
    found = [str(v) for v in check_tree(root)]
    assert found == [
        "runyard/snapshot.py:1: runyard.snapshot (layer 5) imports runyard (layer 6)",
        "runyard/store/_store.py:5: runyard.store._store (layer 3) imports runyard.server (layer 10)",
    ]
    across = check_source("import runyard.spec\n", "runyard/client.py", root)
    assert [str(v) for v in across] == [
        "runyard/client.py:1: runyard.client (layer 4) imports runyard.spec (layer 4)"]
    unknown = check_source("from runyard.nowhere import x\n", "runyard/errors.py", root)
    assert [str(v) for v in unknown] == [
        "runyard/errors.py:1: runyard.errors (layer 0) imports runyard.nowhere (no layer)"]
    typing_only = check_source("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from runyard.cli import app\n",
                               "runyard/_http.py", root)
    assert [v.imported for v in typing_only] == ["runyard.cli"]


def test_every_module_has_a_layer() -> None:
    missing = unlayered_modules(REPO)
    assert not missing, (f"modules under runyard/ with no layer: {missing}. Add their package to LAYERS in "
                         "runyard/testing/layers.py and to the table of docs/architecture.md.")


def test_a_new_package_has_no_layer_until_it_is_added(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"runyard/errors.py": "", "runyard/widgets/__init__.py": "", "runyard/widgets/_x.py": ""})
    assert unlayered_modules(root) == ["runyard.widgets", "runyard.widgets._x"]


def test_the_docs_table_is_the_checkers_table() -> None:
    text = (REPO / "docs" / "architecture.md").read_text()
    rows = re.findall(r"^\|\s*(\d+)\s*\|([^|]*)\|", text, flags=re.MULTILINE)
    documented = {int(layer): tuple(re.findall(r"`([\w.]+)`", cell)) for layer, cell in rows}
    assert documented == LAYERS, (
        "docs/architecture.md's layer table differs from LAYERS in runyard/testing/layers.py: "
        f"docs {documented}, data {LAYERS}")

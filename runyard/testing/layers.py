"""The layer table of runyard's packages as data, and a checker that every import goes down it.

A module may import from its own package and from packages in lower layers; packages in the
same layer do not import each other. Every import counts: at module level, inside functions,
under ``if TYPE_CHECKING:``. Relative imports are resolved against the importing module.

The package root (``runyard/__init__.py``) is the SDK's lazy facade: it belongs with
``runyard.sdk`` (layer 6), so ``import runyard`` or ``from runyard import init`` is an import of
the SDK. ``from runyard import config`` imports the submodule ``runyard.config`` (Python imports a
submodule named there; the facade's lazy names are not touched), so it counts as ``runyard.config``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LAYERS", "ROOT", "ROOT_UNIT", "Violation", "check_source", "check_tree", "iter_modules", "layer_of",
           "module_name", "unit_of", "unlayered_modules"]

ROOT = "runyard"
ROOT_UNIT = "runyard.sdk"  # the package root is the SDK's facade

LAYERS: dict[int, tuple[str, ...]] = {
    0: ("runyard.errors", "runyard.config", "runyard._version", "runyard._manifest", "runyard._proc",
        "runyard._sysmetrics", "runyard._failpoints"),
    1: ("runyard.names", "runyard.configfile", "runyard._http", "runyard._git"),
    2: ("runyard.records", "runyard.media"),
    3: ("runyard.store", "runyard.search", "runyard.launch", "runyard.spool", "runyard.artifacts", "runyard._local",
        "runyard.containers", "runyard.flavors"),
    4: ("runyard.client", "runyard.spec"),
    5: ("runyard.snapshot",),
    6: ("runyard.sdk",),  # above snapshot: runyard.use_dataset materialises through its blob cache
    7: ("runyard.runner", "runyard.notebook", "runyard.integrations"),
    8: ("runyard.backends",),
    9: ("runyard.scheduler",),
    10: ("runyard.server",),
    11: ("runyard.cli",),
    12: ("runyard.testing",),
}

_LAYER_OF_UNIT = {unit: layer for layer, units in LAYERS.items() for unit in units}


def unit_of(module: str) -> str | None:
    """The table entry ``module`` belongs to (the longest entry equal to it or a package above it), or None."""
    if module == ROOT:
        return ROOT_UNIT
    parts = module.split(".")
    for n in range(len(parts), 1, -1):
        candidate = ".".join(parts[:n])
        if candidate in _LAYER_OF_UNIT:
            return candidate
    return None


def layer_of(module: str) -> int | None:
    """The layer of a dotted module name under ``runyard``, or None when the table has no entry for it."""
    unit = unit_of(module)
    return None if unit is None else _LAYER_OF_UNIT[unit]


@dataclass(frozen=True)
class Violation:
    """One import against the table: ``path:line: importer (layer N) imports imported (layer M)``."""

    path: str
    line: int
    importer: str
    importer_layer: int | None
    imported: str
    imported_layer: int | None

    def __str__(self) -> str:
        def layer(n: int | None) -> str:
            return "no layer" if n is None else f"layer {n}"

        return (f"{self.path}:{self.line}: {self.importer} ({layer(self.importer_layer)}) imports "
                f"{self.imported} ({layer(self.imported_layer)})")


def module_name(path: Path, root: Path) -> str:
    """``runyard/store/_store.py`` under ``root`` -> ``runyard.store._store`` (an ``__init__`` is its package)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def iter_modules(root: Path) -> Iterator[Path]:
    """Every ``.py`` file of the ``runyard`` package under ``root``, migrations included, in a stable order."""
    yield from sorted((root / ROOT).rglob("*.py"))


def _is_module(root: Path, dotted: str) -> bool:
    base = root.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _imported_modules(tree: ast.AST, module: str, is_package: bool, root: Path) -> Iterator[tuple[int, str]]:
    """(line, dotted module) for every import in ``tree`` that names a module under ``runyard``."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base_parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names = [a.name for a in node.names if a.name != "*"]
            submodules = [f"{base}.{name}" for name in names if _is_module(root, f"{base}.{name}")]
            if len(submodules) < len(node.names):  # some names are attributes of ``base`` itself
                yield node.lineno, base
            for sub in submodules:
                yield node.lineno, sub


def check_source(source: str, path: str, root: Path) -> list[Violation]:
    """The violations in one file's ``source``; ``path`` is its path relative to ``root`` (the repository)."""
    rel = Path(path)
    module = module_name(root / rel, root)
    importer_unit = unit_of(module)
    importer_layer = None if importer_unit is None else _LAYER_OF_UNIT[importer_unit]
    tree = ast.parse(source, filename=path)
    found: list[Violation] = []
    for line, imported in _imported_modules(tree, module, rel.name == "__init__.py", root):
        if imported != ROOT and not imported.startswith(ROOT + "."):
            continue
        imported_unit = unit_of(imported)
        if imported_unit is not None and imported_unit == importer_unit:
            continue
        imported_layer = None if imported_unit is None else _LAYER_OF_UNIT[imported_unit]
        if importer_layer is None or imported_layer is None or imported_layer >= importer_layer:
            found.append(Violation(rel.as_posix(), line, module, importer_layer, imported, imported_layer))
    return sorted(found, key=lambda v: (v.line, v.imported))


def check_tree(root: Path) -> list[Violation]:
    """Every import against the table in ``root/runyard/**/*.py`` (``root``: the repository's directory)."""
    found: list[Violation] = []
    for path in iter_modules(root):
        found.extend(check_source(path.read_text(encoding="utf-8"), path.relative_to(root).as_posix(), root))
    return found


def unlayered_modules(root: Path) -> list[str]:
    """Modules under ``root/runyard`` (other than the root itself) that no table entry covers."""
    names = (module_name(p, root) for p in iter_modules(root))
    return [n for n in names if n != ROOT and unit_of(n) is None]

"""The generic flavor: a file or a directory kept as is; loading gives the directory's path.

For anything the other flavors do not know (a tokenizer directory, a checkpoint of a framework
runyard has no flavor for, a config file). A directory's files are copied into the model's
directory with their relative paths; a single file keeps its name. Symlinked files are copied
as their content; symlinked directories are not followed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from runyard.errors import InvalidInput
from runyard.flavors._common import check_meta, finish, prepare_directory
from runyard.flavors._meta import META_FILE, ModelMeta

__all__ = ["NAME", "load", "matches", "save"]

NAME = "files"


def matches(model: Any) -> bool:
    return isinstance(model, (str, os.PathLike))


def _walk(src: Path) -> list[str]:
    """Relative POSIX paths of the regular files (and symlinked files) under ``src``; symlinked directories skipped."""
    out = []
    for dirpath, dirnames, filenames in os.walk(src):  # followlinks=False: a linked directory is listed, not walked
        base = Path(dirpath)
        dirnames.sort()
        for name in sorted(filenames):
            path = base / name
            if path.is_file():
                out.append(path.relative_to(src).as_posix())
    return out


def save(model: Any, directory: str | os.PathLike[str], *, input_example: Any = None, signature: Any = None,
         requirements: Iterable[str] | None = None) -> ModelMeta:
    """Copy a file or a directory's files into ``directory``.

    Raises:
        InvalidInput: the path does not exist, holds no files, or holds a ``runyard-model.json`` of its own.
    """
    if not matches(model):
        raise InvalidInput(f"The files flavor saves a path (a file or a directory), not a {type(model).__name__}.",
                           "Write the model to disk first and pass its path.")
    src = Path(model).expanduser()
    if not src.exists():
        raise InvalidInput(f"{str(src)!r} does not exist.", "Pass the path of a file or directory.")
    files = [src.name] if src.is_file() else _walk(src)
    if not files:
        raise InvalidInput(f"{str(src)!r} holds no files.", "Pass a directory with the model's files in it.")
    if META_FILE in files:
        raise InvalidInput(f"{str(src)!r} already holds a {META_FILE}: it is a saved model.",
                           "Load it with runyard.flavors.load(), or log it with runyard.log_model(runyard.flavors.load(path)).")
    root = prepare_directory(directory)
    if src.is_file():
        shutil.copyfile(src, root / src.name)
    else:
        for rel in files:
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / rel, target)
            if os.access(src / rel, os.X_OK):
                target.chmod(0o755)
    meta = ModelMeta(flavor=NAME, format="files", files=tuple(files),
                     details={"source": "file" if src.is_file() else "directory"})
    return finish(root, meta, signature=signature, requirements=requirements)


def load(directory: str | os.PathLike[str], *, meta: ModelMeta | None = None) -> Path:
    """The model's directory (its files checked against ``runyard-model.json``)."""
    check_meta(directory, meta, NAME)
    return Path(directory)

"""Building a run's image: ``build:`` of runyard.yml, the Containerfile it stands for, its cache key.

A build is keyed by what can change the image: the Containerfile's text, the runtime and build
options, and the content of the files its ``COPY``/``ADD`` lines take from the build context. Only
those files count, so editing ``train.py`` (which reaches the task through the snapshot, not the
image) does not rebuild, while editing a ``requirements.txt`` that is copied in does. Files the
context's ``.containerignore``/``.dockerignore`` leaves out still count: such an edit rebuilds once
for nothing, which is safe, where missing one would run a stale image.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import glob
import hashlib
import json
import os
import re
import stat
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from runyard.containers._image import check_image, is_image_id, is_path_image

__all__ = ["BUILD_KEY_VERSION", "BuildSpec", "build_key", "built_image_ref", "containerfile_text", "copy_sources",
           "project_path_problem", "step_problem"]

BUILD_KEY_VERSION = "runyard-build-1"
"""Part of every build key: bump it when the key's recipe changes, so old keys stop matching."""

BUILT_REPOSITORY = "localhost/runyard-build"
STEP_MAX = 4096


def project_path_problem(value: object, what: str = "a file path",
                         example: str = "e.g. Containerfile or docker/train.Containerfile") -> str | None:
    """None for a relative path inside the project, else the problem (rule, value, fix) as a sentence body."""
    if not isinstance(value, str) or not value:
        return f"must be {what} relative to the project directory, but got {value!r:.60}. Write {example}."
    bad = next((ch for ch in value if ch == "\x00" or "\ud800" <= ch <= "\udfff" or ch in "\n\r"
                or ord(ch) < 0x20 or ord(ch) == 0x7F), None)
    if bad is not None:
        return f"must be {what} without control characters, but got {value!r:.60}. Remove {bad!r}."
    if value.startswith("-"):
        return (f"must not start with '-', but got {value!r:.60}: a builder would read it as an option. "
                f"Rename it, {example}.")
    if value.startswith("/") or value.startswith("~"):
        return (f"must be {what} relative to the project directory, but got the absolute path {value!r:.60}. "
                f"Build only from files in the project (its snapshot is what the builder sees), {example}.")
    if ".." in value.replace("\\", "/").split("/"):
        return (f"must stay inside the project directory, but got {value!r:.60}, which climbs out with '..'. "
                f"Keep it in the project, {example}.")
    if len(value) > 1024:
        return f"must be at most 1024 characters, but got {len(value)}. Use a shorter path."
    return None


def step_problem(value: object) -> str | None:
    """None for a build step (one non-empty shell line), else the problem as a sentence body."""
    if not isinstance(value, str):
        return (f"must be a shell command, but got {value!r:.60}. Quote it, e.g. "
                "`- pip install -r requirements.txt`.")
    if not value.strip():
        return "must be a non-empty shell command, but it is empty. Remove the item or write the command."
    if "\x00" in value:
        return "must not hold a NUL character. Remove it: a shell line cannot carry one."
    if "\n" in value.strip() or "\r" in value:
        return (f"must be one line, but got {value!r:.60}, which has a line break. Write each command as its own "
                "list item (each becomes one RUN line), or join them with &&.")
    if len(value) > STEP_MAX:
        return f"must be at most {STEP_MAX} characters, but got {len(value)}. Put long scripts in a file the " \
               "Containerfile copies and runs."
    return None


@dataclasses.dataclass(frozen=True)
class BuildSpec:
    """``build:`` of runyard.yml: a project Containerfile, or shell steps on top of ``image:``.

    ``containerfile`` and ``steps`` exclude each other; ``context`` (the directory the
    Containerfile's COPY/ADD read from) goes with a Containerfile only. Paths are relative to the
    project directory, without ``..``.

    Raises:
        ValueError: on construction, naming the field, the problem and the fix.
    """

    containerfile: str | None = None
    steps: tuple[str, ...] = ()
    context: str = "."

    def __post_init__(self) -> None:
        if not isinstance(self.steps, tuple):
            object.__setattr__(self, "steps", tuple(self.steps))
        if self.containerfile is None and not self.steps:
            raise ValueError("build needs a containerfile or steps, but got neither. Write e.g. "
                             "`build: Containerfile` or `build: {steps: [pip install -r requirements.txt]}`.")
        if self.containerfile is not None and self.steps:
            raise ValueError("build takes a containerfile or steps, not both. Move the steps into the "
                             "Containerfile as RUN lines, or remove containerfile.")
        if self.containerfile is not None and (problem := project_path_problem(self.containerfile, "a file path")):
            raise ValueError(f"build.containerfile {problem}")
        if (problem := project_path_problem(self.context, "a directory", "e.g. . or docker")) and self.context != ".":
            raise ValueError(f"build.context {problem}")
        if self.steps and self.context != ".":
            raise ValueError("build.context goes with a containerfile only; steps build without a context. "
                             "Remove context, or use a Containerfile that COPYs from it.")
        for i, step in enumerate(self.steps):
            if problem := step_problem(step):
                raise ValueError(f"build.steps[{i}] {problem}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored in an experiment's config: ``{containerfile, context}`` or ``{steps}``."""
        if self.containerfile is not None:
            return {"containerfile": self.containerfile, "context": self.context}
        return {"steps": list(self.steps)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | str) -> BuildSpec:
        """From :meth:`to_dict`'s form, or a string (a Containerfile path).

        Raises:
            ValueError: unknown keys, or what the constructor refuses.
        """
        if isinstance(d, str):
            return cls(containerfile=d)
        if not isinstance(d, Mapping):
            raise ValueError(f"build must be a Containerfile path or a mapping, but got {d!r:.60}. "
                             "Write e.g. `build: Containerfile`.")
        unknown = sorted(set(d) - {"containerfile", "steps", "context"})
        if unknown:
            raise ValueError(f"build has unknown keys {', '.join(map(str, unknown))}. Valid keys: containerfile, "
                             "context, steps.")
        steps = d.get("steps") or ()
        if isinstance(steps, str):
            steps = (steps,)
        return cls(containerfile=d.get("containerfile"), steps=tuple(steps), context=d.get("context") or ".")


def containerfile_text(build: BuildSpec, base: str | None, project_dir: Path) -> str:
    """The Containerfile to build: the project's file as it is, or ``FROM base`` and one RUN per step.

    Raises:
        ValueError: steps without a base, a base that is a file or an id, a Containerfile together
            with a base, or a Containerfile that is missing, outside the project or not UTF-8.
    """
    if build.containerfile is not None:
        if base is not None:
            raise ValueError("image is set together with build.containerfile, but the Containerfile's FROM names "
                             "the base; remove image:.")
        root = Path(project_dir).resolve()
        path = (root / build.containerfile).resolve()
        if root != path and root not in path.parents:
            raise ValueError(f"build.containerfile {build.containerfile!r} leads outside the project (through a "
                             "symbolic link). Put the Containerfile itself in the project.")
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ValueError(f"build.containerfile {build.containerfile!r} does not exist in the project "
                             f"directory {str(root)!r}. Create it, or fix the path in runyard.yml.") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"build.containerfile {build.containerfile!r} cannot be read: {e}. Save it as UTF-8 "
                             "text readable by you.") from e
    if base is None:
        raise ValueError("build.steps need image: as the base they run on. Add e.g. `image: python:3.11-slim`.")
    check_image(base)
    if is_path_image(base) or is_image_id(base):
        raise ValueError(f"build.steps run on image: {base!r}, but steps build with podman or docker, which need "
                         "a reference such as python:3.11-slim as the base. Name the base by reference.")
    return f"FROM {base}\n" + "".join(f"RUN {step.strip()}\n" for step in build.steps)


# --- what a Containerfile takes from its context ---------------------------------------------

_DIRECTIVE_RE = re.compile(r"^#\s*escape\s*=\s*(\S)\s*$", re.IGNORECASE)
_URL_RE = re.compile(r"^(?:https?|git)://|^git@", re.IGNORECASE)


def _logical_lines(text: str) -> Iterator[str]:
    """Instructions of a Containerfile: comments dropped, continued lines joined (``# escape=`` honoured)."""
    lines = text.splitlines()
    escape = "\\"
    for line in lines:  # parser directives come first, before any instruction or other comment
        m = _DIRECTIVE_RE.match(line.strip())
        if m:
            escape = m.group(1)
            continue
        break
    current: list[str] = []
    for raw in lines:
        stripped = raw.strip()
        if stripped.startswith("#"):
            continue  # a comment (parser directives too), also between continued lines
        if not stripped and not current:
            continue
        if stripped.endswith(escape):
            current.append(stripped[: -len(escape)])
            continue
        current.append(stripped)
        joined = " ".join(part for part in current if part)
        current = []
        if joined:
            yield joined
    if current:
        yield " ".join(part for part in current if part)


def copy_sources(containerfile: str) -> list[list[str]]:
    """The context sources of each COPY/ADD line, in order (``--from=`` lines, heredocs and URLs left out)."""
    out: list[list[str]] = []
    for line in _logical_lines(containerfile):
        keyword, _, rest = line.partition(" ")
        if keyword.upper() not in ("COPY", "ADD"):
            continue
        rest = rest.strip()
        flags: list[str] = []
        while rest.startswith("--"):
            flag, _, rest = rest.partition(" ")
            flags.append(flag)
            rest = rest.strip()
        if any(f.lower().startswith("--from") for f in flags):
            continue  # sources come from another stage or image, not from the context
        args: list[str]
        if rest.startswith("["):
            try:
                parsed = json.loads(rest)
                args = [str(a) for a in parsed] if isinstance(parsed, list) else rest.split()
            except json.JSONDecodeError:
                args = rest.split()
        else:
            args = rest.split()
        sources = [a for a in args[:-1] if not a.startswith("<<") and not _URL_RE.match(a)]
        out.append(sources)
    return out


def _hash_file(h: Any, path: Path) -> None:
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)


def _hash_entry(h: Any, path: Path, rel: str) -> None:
    """One context entry into ``h``: its relative path, kind, executable bit and content."""
    try:
        st = path.lstat()
    except OSError:
        h.update(f"missing {rel}\0".encode("utf-8", "surrogateescape"))
        return
    if stat.S_ISLNK(st.st_mode):
        h.update(f"link {rel} {os.readlink(path)}\0".encode("utf-8", "surrogateescape"))
    elif stat.S_ISDIR(st.st_mode):
        h.update(f"dir {rel}\0".encode("utf-8", "surrogateescape"))
        for child in sorted(path.iterdir(), key=lambda p: p.name):
            _hash_entry(h, child, f"{rel}/{child.name}")
    elif stat.S_ISREG(st.st_mode):
        h.update(f"file {rel} {'x' if st.st_mode & 0o111 else '-'}\0".encode("utf-8", "surrogateescape"))
        _hash_file(h, path)
        h.update(b"\0")
    else:
        h.update(f"other {rel}\0".encode("utf-8", "surrogateescape"))


def _match_segments(base: Path, segments: list[str]) -> Iterator[Path]:
    """Paths under ``base`` matching ``segments`` one directory level each, dotfiles included (as the
    builders' Go ``filepath.Match`` does, unlike Python's glob); ``[^x]`` is Go's negated class."""
    if not segments:
        yield base
        return
    head, rest = segments[0], segments[1:]
    if not glob.has_magic(head):
        child = base / head
        if child.exists() or child.is_symlink():
            yield from _match_segments(child, rest)
        return
    pattern = head.replace("[^", "[!")
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return
    for name in names:
        if fnmatch.fnmatchcase(name, pattern):
            yield from _match_segments(base / name, rest)


def _hash_source(h: Any, context: Path, source: str) -> None:
    """A COPY/ADD source: a file, a directory (its whole tree) or a glob, relative to the context."""
    rel = source.lstrip("/")  # a leading / in a source is still inside the context
    segments = [part for part in rel.split("/") if part not in ("", ".")]
    if ".." in segments:
        h.update(f"outside {source}\0".encode("utf-8", "surrogateescape"))  # the builder refuses it
        return
    if glob.has_magic(rel):
        matches = list(_match_segments(context, segments))
        h.update(f"glob {source} {len(matches)}\0".encode("utf-8", "surrogateescape"))
        for match in matches:
            _hash_entry(h, match, match.relative_to(context).as_posix())
        return
    path = context.joinpath(*segments)
    try:
        followed = path.resolve() if path.is_symlink() else path  # a named source is followed
    except OSError:
        followed = path
    _hash_entry(h, followed, "/".join(segments) or ".")


def build_key(containerfile: str, context_dir: Path, *, runtime: str, build_options: Sequence[str] = ()) -> str:
    """The first 16 hex digits of a sha256 over everything that decides the built image.

    That is :data:`BUILD_KEY_VERSION`, the Containerfile's text, the runtime, the build options,
    and the content of each file its COPY/ADD lines take from ``context_dir`` (files, whole
    directories, glob matches; a source that does not exist counts as missing, so creating it
    rebuilds). ``--from=`` lines and URLs take nothing from the context: their text is in the key.
    """
    h = hashlib.sha256()
    h.update(f"{BUILD_KEY_VERSION}\0{runtime}\0{json.dumps(list(build_options))}\0".encode())
    h.update(containerfile.encode("utf-8", "surrogateescape"))
    h.update(b"\0")
    context = Path(context_dir)
    for i, sources in enumerate(copy_sources(containerfile)):
        h.update(f"copy {i}\0".encode())
        for source in sources:
            _hash_source(h, context, source)
    return h.hexdigest()[:16]


def built_image_ref(key: str) -> str:
    """The reference a build with ``key`` is tagged with: ``localhost/runyard-build:<key>``."""
    if not re.fullmatch(r"[a-f0-9]{1,64}", key):
        raise ValueError(f"a build key must be hex digits from build_key(), but got {key!r:.60}.")
    return f"{BUILT_REPOSITORY}:{key}"

"""Image references: what ``image:`` in runyard.yml may hold, checked before any runtime sees it.

An image is one of:

- an OCI reference ``[registry[:port]/]path[:tag][@sha256:<64 hex>]``, as podman and docker
  read it (``python:3.11-slim``, ``localhost/train:1``, ``ghcr.io/org/x@sha256:...``);
- an image id: ``sha256:<64 hex>``, or 12 to 64 hex digits (podman and docker accept a prefix);
- a path to an image file (``.sif``, ``.sqfs``, ``.squashfs``, ``.sqsh``) or an image directory
  (Charliecloud), absolute or starting with ``./`` (relative to the task's working directory).

The value reaches a runtime's command line as one argument, so what could be read as an option
(a leading ``-``), several arguments (whitespace) or nothing at all (NUL) is refused here.
"""

from __future__ import annotations

import posixpath
import re
import unicodedata

__all__ = ["IMAGE_MAX", "IMAGE_FILE_SUFFIXES", "check_image", "image_problem", "is_image_id", "is_path_image"]

IMAGE_MAX = 512
"""Longest image value accepted (a reference's name is at most 255 characters, a tag 128, a digest 71)."""

IMAGE_FILE_SUFFIXES = (".sif", ".sqfs", ".squashfs", ".sqsh")
"""Image files: Apptainer/Singularity's SIF, SquashFS (Charliecloud, Apptainer) and enroot's .sqsh."""

_EXAMPLES = "e.g. python:3.11-slim, ghcr.io/org/train:1.2, /images/train.sif or ./images/train"

# The grammar of an OCI reference (the one podman, docker and registries share), written out:
#   domain    host[:port], host = labels of letters/digits/'-' joined by '.', or an [IPv6] literal
#   path      components of lowercase letters and digits, joined inside by '.', '_', '__' or '-'s
#   tag       a word character, then up to 127 of word characters, '.' or '-'
#   digest    sha256: and 64 lowercase hex digits
_LABEL = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_DOMAIN = rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:]+\])(?::[0-9]{{1,5}})?"
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"sha256:[a-f0-9]{64}"
_REFERENCE_RE = re.compile(
    rf"^(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$",
    re.ASCII,
)
_ID_RE = re.compile(r"^(?:sha256:[a-f0-9]{64}|[a-f0-9]{12,64})$")
_NAME_MAX = 255  # the longest repository name registries accept (domain and path)


def _show(value: str) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{repr(value[:40])[:-1]}...' ({len(value)} characters)"  # a 10k value stays short


def _bad_char(value: str) -> tuple[int, str] | None:
    """The first character no image value may hold, with what it is."""
    for i, ch in enumerate(value):
        if ch == "\x00":
            return i, "a NUL character"
        if "\ud800" <= ch <= "\udfff":
            return i, f"an unpaired surrogate {ch!r} (not Unicode text)"
        if ch.isspace():
            return i, "whitespace" if ch == " " else f"whitespace {ch!r}"
        category = unicodedata.category(ch)
        if category in ("Cc", "Cf", "Cs", "Co", "Cn"):
            return i, f"a control or formatting character {ch!r}"
    return None


def is_path_image(ref: str) -> bool:
    """True for an image given as a file or directory path (absolute, or starting with ``./``)."""
    return ref.startswith("/") or ref.startswith("./")


def is_image_id(ref: str) -> bool:
    """True for an image id: ``sha256:<64 hex>`` or 12–64 hex digits (podman and docker's short ids)."""
    return bool(_ID_RE.match(ref))


def _path_problem(value: str) -> tuple[str | None, str]:
    parts = value.split("/")
    if ".." in parts:
        return (f"must be a path without '..' components, but got {_show(value)}. Write the path to the image "
                "file or directory directly, e.g. /images/train.sif or ./images/train."), value
    normal = posixpath.normpath(value)
    if value.startswith("./"):
        normal = "./" + normal if normal != "." else "."
    if normal in ("/", "."):
        return (f"must name an image file or directory, but got {_show(value)}, which is the whole "
                f"{'file system' if normal == '/' else 'working directory'}. Point at the image, e.g. "
                "/images/train.sif."), value
    return None, normal


def _reference_problem(value: str) -> str | None:
    match = _REFERENCE_RE.match(value)
    if match is None:
        first, _, rest = value.partition("/")
        looks_domain = bool(rest) and ("." in first or ":" in first or first == "localhost")
        lowered = _lower_path(value, looks_domain)
        if lowered != value and _REFERENCE_RE.match(lowered):
            return (f"must have a lowercase repository path, but got {_show(value)}. Registries name "
                    f"repositories in lowercase: write {lowered!r}.")
        if "@" in value:
            digest = value.split("@", 1)[1]
            if not re.fullmatch(_DIGEST, digest):
                return (f"must end in a digest sha256: and 64 lowercase hex digits after '@', but got {_show(value)}. "
                        "Copy the digest from `podman image inspect --format '{{.Digest}}' IMAGE`, or use a tag "
                        "such as python:3.11-slim.")
        if value.lower().startswith(("http://", "https://", "docker://", "oci://", "library://", "shub://")):
            return (f"must be a reference without a URL scheme, but got {_show(value)}. Write it as podman "
                    "names it, e.g. ghcr.io/org/train:1.2 (no https:// or docker://).")
        return (f"must be an image reference such as python:3.11-slim or ghcr.io/org/train:1.2 (lowercase "
                f"letters, digits and . _ - in the path, a tag after ':', a digest after '@'), an image id, or "
                f"a path starting with / or ./, but got {_show(value)}. Fix the reference, {_EXAMPLES}.")
    name = value.split("@", 1)[0]
    if match.group("tag"):
        name = name[: -len(match.group("tag")) - 1]
    if len(name) > _NAME_MAX:
        return (f"must have a repository name of at most {_NAME_MAX} characters, but got {len(name)} in "
                f"{_show(value)}. Use a shorter image name.")
    return None


def _lower_path(value: str, looks_domain: bool) -> str:
    """``value`` with its repository path in lowercase (domain and tag kept)."""
    digest = ""
    if "@" in value:
        value, digest = value.split("@", 1)
        digest = "@" + digest
    domain = ""
    if looks_domain:
        domain, value = value.split("/", 1)
        domain += "/"
    tag = ""
    last = value.rsplit("/", 1)[-1]
    if ":" in last:
        value, tag = value.rsplit(":", 1)
        tag = ":" + tag
    return domain + value.lower() + tag + digest


def image_problem(value: object) -> tuple[str | None, str]:
    """``(None, normalised value)`` for a valid image, else ``(problem, value)``.

    The problem is a sentence body that starts with the rule (``must be ...``) and ends with the
    fix, so a caller can prefix the field's name: ``image must be ..., but got .... Fix ...``.
    """
    if not isinstance(value, str):
        return (f"must be a string such as python:3.11-slim, but got {type(value).__name__} {value!r:.60}. "
                f"Quote the image, {_EXAMPLES}."), ""
    if not value:
        return f"must name an image, but it is empty. Name one, {_EXAMPLES}.", value
    if len(value) > IMAGE_MAX:
        return (f"must be at most {IMAGE_MAX} characters, but got {_show(value)}. Use a shorter image name "
                "or path."), value
    bad = _bad_char(value)
    if bad is not None:
        at, what = bad
        return (f"must be one word without whitespace or control characters, but got {_show(value)}, which "
                f"holds {what} at character {at}. Remove it: the image is passed to the container "
                f"runtime as one command-line argument, {_EXAMPLES}."), value
    if value.startswith("-"):
        return (f"must not start with '-', but got {_show(value)}: a container runtime would read it as an "
                f"option of its own. Name an image, {_EXAMPLES}."), value
    if is_path_image(value):
        return _path_problem(value)
    if value.startswith(("../", "~")) or value in (".", ".."):
        return (f"must be an absolute path or one starting with ./, but got {_show(value)}. Write e.g. "
                "/images/train.sif, or ./images/train for a path in the project."), value
    if value.lower().endswith(IMAGE_FILE_SUFFIXES):
        return (f"must be an absolute path or one starting with ./ for an image file, but got {_show(value)}, "
                f"which reads as a registry reference. Write ./{value} for a file in the project, or its "
                "absolute path."), value
    if value.startswith("sha256:"):
        if _ID_RE.match(value):
            return None, value
        return (f"must be sha256: followed by 64 lowercase hex digits, but got {_show(value)}. Copy the id "
                "from `podman images --no-trunc`, or name the image by reference."), value
    problem = _reference_problem(value)
    return problem, value


def check_image(value: str) -> str:
    """The normalised image value (paths with ``//`` and ``/./`` collapsed; references as given).

    Raises:
        ValueError: ``image <rule>, but got <value>. <fix>``: empty, longer than :data:`IMAGE_MAX`,
            whitespace, control characters, NUL or unpaired surrogates, a leading ``-``, uppercase in
            the repository path, a malformed tag or digest, ``..`` in a path.
    """
    problem, normal = image_problem(value)
    if problem is not None:
        raise ValueError(f"image {problem}")
    return normal

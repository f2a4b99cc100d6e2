"""The server's backend configuration: ``$RUNYARD_HOME/backends.yml``.

A mapping from each backend's name to its ``type`` and options::

    slurm-dev:
      type: slurm
      partition: debug
      reach_server: false
    gpu-box:
      type: ssh
      host: gpu01

``runyard.yml`` picks one by ``backend: NAME``; ``runyard run --backend NAME``
overrides it. ``local`` always exists (``type: local``, default options); an entry
named ``local`` changes its options. The file is managed with ``runyard backends
add|list|remove|test``, or edited by hand: the scheduler's ``BackendPool`` reloads
it when it changes.

Validation has the quality of ``runyard.yml``'s (``runyard.spec``): every problem
on its own line, as ``backends.yml:LINE: NAME.option must be RULE, but got VALUE.
FIX``. A backend type's options are checked against its ``options_model`` by
``runyard.backends.options`` (the parser the backends themselves use).

Who may submit to a backend (docs/operating.md, "Security model") is the entry's
``allow:`` (checked by the server with :func:`policy_refusal`)::

    gpu-box:
      type: ssh
      host: gpu01
      allow: {users: [alice], projects: ["vision-*"], min_role: editor}

Admins always may. Without ``allow:`` a backend is open to the editors of the project
(the right to submit at all); on a server with sign-in, ``local`` (the server's own
machine and account) is for admins only unless ``allow:`` opens it *and* the entry
sets ``run_as:`` (:func:`local_jobs_allowed_for_others`).
"""

from __future__ import annotations

import difflib
import fnmatch
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from runyard.backends.options import option_problems, show_value
from runyard.configfile import Problem, load_yaml, located_error  # one YAML dialect and line map
from runyard.errors import NotFound, SpecError

__all__ = [
    "ALLOW_KEYS",
    "FILE_NAME",
    "BackendEntry",
    "Submitter",
    "add_backend",
    "backends_path",
    "describe_policy",
    "load_backends",
    "local_jobs_allowed_for_others",
    "options_model",
    "parse_backends",
    "policy_refusal",
    "remove_backend",
]

FILE_NAME = "backends.yml"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_HINT = "Fix backends.yml, or manage it with `runyard backends add NAME --type TYPE --set key=value`."


#: The keys of a backend's ``allow:``, each with what it means when left out.
ALLOW_KEYS = {"users": "any user", "projects": "any project", "min_role": "editor"}
#: Entry keys that are the server's policy, not the backend's options: ``run_as`` is also one of
#: the local backend's options once its agent knows it (then the backend gets it too).
_POLICY_KEYS = ("allow",)
_RUN_AS_VALUES = "`shared` (jobs run as the server's account) or a mapping describing a pool of Unix accounts"


@dataclass(frozen=True)
class BackendEntry:
    """One configured backend.

    Attributes:
        options: the backend's options (without ``type`` and ``allow``).
        allow: who may submit to it (``users``, ``projects``, ``min_role``), None when the
            entry has no ``allow:``. Not compared: a change of who may use a backend does
            not rebuild it.
    """

    name: str
    type: str
    options: Mapping[str, Any] = field(default_factory=dict)
    allow: Mapping[str, Any] | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "options": dict(self.options)}
        if self.allow is not None:
            out["allow"] = dict(self.allow)
        return out

    def backend_options(self) -> dict[str, Any]:
        """The options to build the backend with: ``run_as`` only when the backend's options know it."""
        options = dict(self.options)
        if "run_as" in options:
            model = options_model(self.type)
            if model is not None and "run_as" not in model.model_fields:
                options.pop("run_as")
        return options


@dataclass(frozen=True)
class Submitter:
    """Who submits runs to a backend, as the policy sees them.

    Attributes:
        name: the username (None: a run's token, which no ``allow: users`` names).
        is_admin: an admin (or the local user of a single-user server): always admitted.
        project: the project the runs go to.
        role: the submitter's role in it (``viewer``, ``editor``, ``owner``; None: none).
    """

    name: str | None
    is_admin: bool
    project: str
    role: str | None


def local_jobs_allowed_for_others(entry: BackendEntry) -> bool:
    """Whether the ``local`` entry lets users other than admins run jobs on the server's machine:
    its ``run_as:`` is set (a pool of accounts keeps jobs apart from the server; ``shared`` says the
    operator accepts that jobs run as the server's account)."""
    value = entry.options.get("run_as")
    return value is not None and value != "" and value != {} and value != []


def _closed_local(entry: BackendEntry, sign_in: bool) -> bool:
    """``local`` on a server with sign-in, not opened to others: admins only."""
    return sign_in and entry.type == "local" and (entry.allow is None or not local_jobs_allowed_for_others(entry))


def _roles() -> tuple[str, ...]:
    from runyard.store import ROLES  # the project roles, lowest first (loaded on first use)

    return tuple(ROLES)


def _role_rank(role: str | None) -> int:
    roles = _roles()
    return roles.index(role) + 1 if role in roles else 0


def describe_policy(entry: BackendEntry, sign_in: bool | None = True) -> str:
    """Who may submit to ``entry``, in words (``runyard backends list``, the API, refusals).

    Args:
        sign_in: whether the server requires sign-in (users exist, or RUNYARD_AUTH=required);
            None when not known (the CLI reading the file): both cases are told.
    """
    if entry.allow is None:
        open_to = "admins and the editors of the project"
    else:
        users = entry.allow.get("users")
        projects = entry.allow.get("projects")
        role = entry.allow.get("min_role", "editor")
        who = f"the users {', '.join(users)}" if users is not None else "users"
        where = f" in projects matching {', '.join(projects)}" if projects is not None else ""
        open_to = f"admins, and {who} with role {role} or higher{where}" if role != "owner" else \
            f"admins, and {who} owning the project{where}"
    if entry.type != "local":
        return open_to
    if entry.allow is not None and local_jobs_allowed_for_others(entry):
        shared = entry.options.get("run_as") == "shared"
        return open_to + ("; jobs run as the server's account (run_as: shared)" if shared else
                          "; jobs run as the accounts of run_as:")
    why = "no allow:" if entry.allow is None else "allow: is set but run_as: is not"
    if sign_in is None:
        return f"admins only when sign-in is on ({why}); everyone on a single-user server"
    if sign_in:
        return f"admins only ({why})"
    return "everyone (single-user server)"


def policy_refusal(entry: BackendEntry, who: Submitter, *, sign_in: bool) -> tuple[str, str] | None:
    """Why ``who`` may not submit to ``entry``: ``(message, fix)``, or None when they may.

    Args:
        sign_in: whether the server requires sign-in. Without it (a single-user server) every
            submitter is the local user, an admin.
    """
    if who.is_admin or not sign_in:
        return None
    name = entry.name
    caller = who.name or "a run's token"
    change = f"An admin can add you to `allow:` of backend {name} in backends.yml"
    other = "or pick another backend (backend: NAME in runyard.yml, or --backend)"
    if _closed_local(entry, sign_in):
        if entry.allow is None:
            why = ("it runs jobs on the server's own machine, as the server's account, so on a server with sign-in "
                   "it is for admins only")
            fix = f"{change} (with `run_as:`, so that jobs do not run as the server's account); {other}."
        else:
            why = ("its `allow:` opens it, but it has no `run_as:`, so jobs would run as the server's own account: "
                   "it stays for admins only")
            fix = f"An admin can set `run_as:` of backend {name} in backends.yml ({_RUN_AS_VALUES}); {other}."
        return f"{caller} may not submit to backend {name!r}: {why}.", fix
    allow = entry.allow or {}
    reason = None
    users = allow.get("users")
    projects = allow.get("projects")
    need = allow.get("min_role", "editor")
    if users is not None and who.name not in users:
        reason = f"{caller} is not one of its users"
    elif projects is not None and not any(fnmatch.fnmatchcase(who.project, g) for g in projects):
        reason = f"project {who.project!r} matches none of its projects"
    elif _role_rank(who.role) < _role_rank(need):
        reason = f"{caller} is {who.role or 'not a member'} of project {who.project!r}, and it needs {need}"
    if reason is None:
        return None
    return (f"{caller} may not submit to backend {name!r}: {reason}. It may be used by {describe_policy(entry)} "
            "(`allow:` in backends.yml).", f"{change}; {other}.")


def backends_path(home: str | os.PathLike[str] | None = None) -> Path:
    """``$RUNYARD_HOME/backends.yml`` (or under ``home``)."""
    if home is None:
        from runyard import config

        home = config.home()
    return Path(home) / FILE_NAME


def options_model(backend_type: str) -> type[BaseModel] | None:
    """The pydantic model of a backend type's options, or None when the type has none to check."""
    from runyard.backends.registry import backend_class

    return getattr(backend_class(backend_type), "options_model", None)


def _entry_problems(name: Any, data: Any) -> list[tuple[tuple[Any, ...], str]]:
    """Problems of one entry, each with the data path to report its line at."""
    from runyard.backends.registry import backend_names

    at: tuple[Any, ...] = (name,)
    if not isinstance(name, str) or not _NAME_RE.match(name):
        return [(at, f"{show_value(name)} is not a valid backend name: a name must be letters, digits, '-', '_' or '.', "
                     "starting with a letter or digit. Rename it, e.g. slurm-dev.")]
    if not isinstance(data, Mapping):
        return [(at, f"{name} must be a mapping with a type and options, but got {show_value(data)}. "
                     f"Write e.g. `{name}: {{type: slurm, partition: debug}}`.")]
    types = backend_names()
    kind = data.get("type")
    if kind is None:
        return [(at, f"{name}.type is required: one of {', '.join(types)}. Add e.g. `type: slurm`.")]
    if not isinstance(kind, str) or kind not in types:
        close = difflib.get_close_matches(str(kind), types, n=1, cutoff=0.6)
        fix = f"Did you mean {close[0]!r}?" if close else f"Use one of {', '.join(types)}."
        return [((name, "type"), f"{name}.type must be one of {', '.join(types)}, but got {show_value(kind)}. {fix}")]
    if name == "local" and kind != "local":
        return [((name, "type"), f"local.type must be local, but got {show_value(kind)}: the name local is reserved "
                                 "for this machine. Give this backend another name.")]
    options = {k: v for k, v in data.items() if k != "type" and k not in _POLICY_KEYS}
    problems = _allow_problems(name, data["allow"]) if "allow" in data else []
    try:
        model = options_model(kind)
    except SpecError as e:
        return [((name, "type"), f"{name}.type {kind!r} cannot be used here: {e.message} {e.hint or ''}".strip())]
    if kind == "local" and "run_as" in options and (model is None or "run_as" not in model.model_fields):
        problems += _run_as_problems(name, options.pop("run_as"))
    if model is None:
        return problems
    return problems + option_problems(name, model, options, backend=kind)


def _allow_problems(name: str, allow: Any) -> list[tuple[tuple[Any, ...], str]]:
    """The problems of an entry's ``allow:`` (see :data:`ALLOW_KEYS`)."""
    at: tuple[Any, ...] = (name, "allow")
    keys = ", ".join(f"{k} (default: {v})" for k, v in ALLOW_KEYS.items())
    example = "Write e.g. `allow: {users: [alice], projects: [\"vision-*\"], min_role: editor}`."
    if not isinstance(allow, Mapping):
        return [(at, f"{name}.allow must be a mapping of {', '.join(ALLOW_KEYS)}, but got {show_value(allow)}. {example}")]
    problems: list[tuple[tuple[Any, ...], str]] = []
    for key, value in allow.items():
        where = (name, "allow", key)
        if key not in ALLOW_KEYS:
            close = difflib.get_close_matches(str(key), list(ALLOW_KEYS), n=1, cutoff=0.6)
            fix = f"Did you mean {close[0]!r}?" if close else "Remove it."
            problems.append((where, f"{name}.allow.{key} is not a key of allow. {fix} Valid keys: {keys}."))
        elif key == "min_role":
            roles = _roles()
            if value not in roles:
                close = difflib.get_close_matches(str(value), list(roles), n=1, cutoff=0.6)
                fix = f"Did you mean {close[0]!r}?" if close else f"Use one of {', '.join(roles)}."
                problems.append((where, f"{name}.allow.min_role must be one of {', '.join(roles)} (a role in the "
                                        f"project), but got {show_value(value)}. {fix}"))
        elif not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            what = "usernames" if key == "users" else "project names or globs (fnmatch: vision-*)"
            sample = "[alice, bob]" if key == "users" else '["vision-*"]'
            problems.append((where, f"{name}.allow.{key} must be a list of {what}, but got {show_value(value)}. "
                                    f"Write e.g. `{key}: {sample}`."))
    return problems


def _run_as_problems(name: str, value: Any) -> list[tuple[tuple[Any, ...], str]]:
    """``run_as`` of the local entry, while the local backend's options do not check it themselves."""
    if value == "shared" or (isinstance(value, Mapping) and value):
        return []
    return [((name, "run_as"), f"{name}.run_as must be {_RUN_AS_VALUES}, but got {show_value(value)}. "
                               "Write e.g. `run_as: shared`, or see docs/operating.md (Security model).")]


def parse_backends(text: str, source: str = FILE_NAME) -> dict[str, BackendEntry]:
    """Parse and validate the text of a ``backends.yml``; ``local`` is always in the result.

    Raises:
        SpecError: one line per problem, ``SOURCE:LINE: NAME.option must be RULE, but got VALUE. FIX``.
    """
    data, lines, problems = load_yaml(text, source, _HINT)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise SpecError(f"{source}:1: the file must be a mapping from backend names to their settings, but got "
                        f"{show_value(data)}. Write e.g. `slurm-dev: {{type: slurm, partition: debug}}`.", _HINT)
    for name, entry in data.items():
        for at, text_ in _entry_problems(name, entry):
            problems.append(Problem(text_, at))
    if problems:
        raise located_error(problems, lines, source, _HINT)
    entries = {"local": BackendEntry("local", "local", {})}
    for name, entry in data.items():
        entries[name] = _entry(name, entry)
    return entries


def _entry(name: str, data: Mapping[str, Any]) -> BackendEntry:
    allow = data.get("allow")
    return BackendEntry(name, data["type"], {k: v for k, v in data.items() if k != "type" and k not in _POLICY_KEYS},
                        dict(allow) if isinstance(allow, Mapping) else None)


def load_backends(path: str | os.PathLike[str] | None = None) -> dict[str, BackendEntry]:
    """The configured backends (``local`` only when the file does not exist)."""
    path = Path(path) if path is not None else backends_path()
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {"local": BackendEntry("local", "local", {})}
    return parse_backends(text, str(path))


def _read_raw(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        return {}
    if not isinstance(data, dict):
        raise SpecError(f"{path} is not a mapping of backend names.", _HINT)
    return data


def _write(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = ("# Runyard backends: name -> type and options. Managed by `runyard backends`; edits by hand are fine.\n"
            + (yaml.safe_dump(dict(data), sort_keys=False, default_flow_style=False) if data else ""))
    parse_backends(text, str(path))  # never write a file the server would refuse
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def add_backend(path: str | os.PathLike[str], name: str, backend_type: str, options: Mapping[str, Any], *,
                replace: bool = False) -> BackendEntry:
    """Add (or with ``replace``, replace) one entry, validated like the whole file.

    Raises:
        SpecError: the entry is invalid, or ``name`` exists and ``replace`` is false.
    """
    path = Path(path)
    data = _read_raw(path)
    if name in data and not replace:
        raise SpecError(f"A backend named {name!r} is already configured in {path}.",
                        f"Remove it first (`runyard backends remove {name}`), or pass --replace.")
    problems = _entry_problems(name, {"type": backend_type, **options})
    if problems:
        raise SpecError("\n".join(f"{FILE_NAME}: {text}" for _, text in problems), _HINT)
    data[name] = {"type": backend_type, **options}
    _write(path, data)
    return _entry(name, data[name])


def remove_backend(path: str | os.PathLike[str], name: str) -> None:
    """Remove one entry.

    Raises:
        NotFound: no entry of that name (``local`` cannot be removed: it always exists).
    """
    path = Path(path)
    data = _read_raw(path)
    if name not in data:
        if name == "local":
            raise SpecError("The local backend always exists and cannot be removed.",
                            "Leave it unused, or pick another backend in runyard.yml.")
        known = ", ".join(sorted(["local", *data])) or "local"
        raise NotFound(f"No backend named {name!r} in {path}. Configured backends: {known}.",
                       "See them with `runyard backends list`.")
    del data[name]
    _write(path, data)

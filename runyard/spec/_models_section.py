"""The runyard.yml key ``models:``: the registered model versions each run uses, by a name of the run's own.

``models: {base: models:/digits@production, teacher: "models:/other-project/bert/3"}`` maps a name (a
directory under the run's ``models/`` and the tail of ``RUNYARD_MODEL_<NAME>``) to a ``models:/`` URI
(:func:`runyard.names.parse_model_uri`). The server resolves each URI to one version at submission and
stores the experiment with the URIs pinned (``models:/PROJECT/NAME/V``), so every run of the experiment
uses the same versions, whatever happens to the aliases later.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator

import runyard.names as names
from runyard.errors import InvalidInput
from runyard.spec._datasets import NAME_MAX, env_name, name_ok
from runyard.spec._rules import Rule, bad, invalid, show

__all__ = ["MAX_MODELS", "ModelsField", "model_env_name"]

MAX_MODELS = 100
_EXAMPLE = "`models: {base: models:/digits@production}`"


def model_env_name(name: str) -> str:
    """``RUNYARD_MODEL_<NAME>``: upper-cased, every character other than A-Z and 0-9 made ``_``."""
    return env_name(name, "RUNYARD_MODEL_")


def _check_models(value: Any) -> dict[str, str]:  # noqa: ANN401
    if not isinstance(value, dict):
        raise invalid()
    if len(value) > MAX_MODELS:
        raise bad(f"names {len(value)} models, more than the {MAX_MODELS} a run may use. Use fewer models in one run.")
    out: dict[str, str] = {}
    by_env: dict[str, str] = {}
    for key, uri in value.items():
        if not name_ok(key):
            raise bad(f"has the name {show(key)}, but each name is 1-{NAME_MAX} letters, digits, '_', '.' or '-', "
                      "starting with a letter or '_' (it names the directory models/NAME and the variable "
                      f"RUNYARD_MODEL_NAME). Rename it, e.g. base; write {_EXAMPLE}.")
        if not isinstance(uri, str):
            raise bad(f"maps {key} to {show(uri)}, but the value is a model URI such as models:/digits/3, "
                      "models:/digits@production or models:/PROJECT/digits/3. Quote it if YAML reads it as "
                      "something else, e.g. `base: 'models:/digits/3'`.")
        try:
            parsed = names.parse_model_uri(uri)
        except InvalidInput as e:
            raise bad(f"maps {key} to {show(uri)}, which is not a model URI: {e.message} {e.hint}") from e
        var = model_env_name(key)
        if var in by_env:
            raise bad(f"names both {by_env[var]!r} and {key!r}, which share the variable {var}. Rename one of them.")
        by_env[var] = key
        out[key] = parsed.uri()
    return out


ModelsField = Annotated[
    dict[str, str],
    BeforeValidator(_check_models),
    Rule("a mapping from a name to a model URI (models:/NAME/3, models:/NAME@alias, models:/NAME/latest or "
         "models:/PROJECT/NAME/3)",
         f"Write e.g. {_EXAMPLE}; each run finds the version's files in models/NAME/ and RUNYARD_MODEL_NAME."),
]

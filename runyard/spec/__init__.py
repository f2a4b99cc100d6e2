"""The ``runyard.yml`` schema and its error messages.

Responsibility: turn the text of a ``runyard.yml`` into a validated :class:`Spec`, or
raise one :class:`~runyard.errors.SpecError` that lists every problem, one per line,
each as ``FILE:LINE: field.path must be RULE, but got VALUE. FIX``. Nothing else in
Runyard parses the file: the CLI, server and scheduler use :class:`Spec`, its search
space (:meth:`Spec.space`) and its normalised, JSON-able :meth:`Spec.to_config`, which
is what gets stored with an experiment (``Spec.model_validate(config)`` round-trips).

How an error gets its line number:

1. :func:`runyard.configfile.load_yaml` reads the YAML (1.2 core scalars) and records
   the line of every key and item under its path, e.g. ``("search", "max_runs") -> 7``;
   duplicate keys are reported there.
2. Pydantic validates the data. Every model forbids unknown keys, runs in strict mode
   (YAML already gives typed scalars, so ``"10"`` is not an integer), and carries a
   ``Rule`` (what a field must be, how to fix it) in its annotations.
3. Each pydantic error's ``loc`` is mapped onto the data (union tags, which start with
   ``#``, are dropped) and to the nearest recorded path's line; the message is built
   from the field's rule, never from pydantic's own text (``_errors.py``).

The modules: ``_rules`` (rules, base model, error values), ``_values`` (single values
and the command), ``_params``, ``_search``, ``_resources`` (sections), ``_model`` (the
whole file), ``_errors`` (messages), ``_load`` (entry points), ``_starter`` (``runyard init``).
"""

from runyard.spec._load import load_spec, parse_spec, validate_config
from runyard.spec._model import Spec
from runyard.spec._params import (
    ChoiceParam,
    IntParam,
    LogUniformParam,
    ParamSpec,
    UniformParam,
    override_problem,
)
from runyard.spec._resources import (
    DistributedSpec,
    ResourcesSpec,
    RoleResourcesSpec,
    RoleSpec,
)
from runyard.spec._rules import FILE_NAME
from runyard.spec._search import (
    AshaStoppingSpec,
    EarlyStoppingSpec,
    HyperbandStoppingSpec,
    MedianStoppingSpec,
    SearchSpec,
)
from runyard.spec._starter import starter_file

__all__ = [
    "AshaStoppingSpec",
    "ChoiceParam",
    "DistributedSpec",
    "EarlyStoppingSpec",
    "FILE_NAME",
    "HyperbandStoppingSpec",
    "IntParam",
    "LogUniformParam",
    "MedianStoppingSpec",
    "ParamSpec",
    "ResourcesSpec",
    "RoleResourcesSpec",
    "RoleSpec",
    "SearchSpec",
    "Spec",
    "UniformParam",
    "load_spec",
    "override_problem",
    "parse_spec",
    "starter_file",
    "validate_config",
]

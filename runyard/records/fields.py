"""Pydantic field types for what strings and numbers entering the API may hold (rules: :mod:`runyard.names`).

Request models use these instead of plain ``str``/``int``/``Any`` so that a value the store,
JSON or the UI cannot hold is refused with 400 before the handler runs (nothing is written):

- :data:`SafeStr`: text without NUL characters or unpaired surrogates.
- :data:`LogText`: log text; NUL and unpaired surrogates replaced by U+FFFD, never refused.
- :data:`RunName`: a run name (:func:`runyard.names.run_name_problem`).
- :data:`SafeJson`: any JSON value whose strings (and keys) are :data:`SafeStr` and whose
  integers fit in 64 bits (params, experiment configs).
- :data:`Int64`: an integer within signed 64 bits.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

import runyard.names as names
from runyard.errors import InvalidInput

__all__ = ["Int64", "LogText", "RunName", "SafeJson", "SafeStr"]


def _safe_text(value: str) -> str:
    problem = names.text_problem(value)
    if problem is not None:
        raise PydanticCustomError("runyard_text", "{problem}; remove it or replace it with a printable character",
                                  {"problem": problem})
    return value


def _safe_json(value: Any) -> Any:
    found = names.value_problem(value)
    if found is not None:
        path, problem = found
        where = f"{path} " if path else ""
        raise PydanticCustomError("runyard_value", "{where}{problem}", {"where": where, "problem": problem})
    return value


def _run_name(value: str) -> str:
    try:
        return names.check_run_name(value)
    except InvalidInput as e:
        raise PydanticCustomError("runyard_name", "{message}", {"message": e.message}) from None


SafeStr = Annotated[str, AfterValidator(_safe_text)]
LogText = Annotated[str, AfterValidator(names.clean_log_text)]
RunName = Annotated[str, AfterValidator(_run_name)]
SafeJson = Annotated[Any, AfterValidator(_safe_json)]
Int64 = Annotated[int, Field(ge=names.INT64_MIN, le=names.INT64_MAX)]

"""The XGBoost flavor: the booster in XGBoost's own JSON format, loaded back into the class it was saved from.

``runyard-model.json`` records the class (``XGBClassifier``, ``XGBRegressor``, ``XGBRanker``,
``XGBRFClassifier``, ``XGBRFRegressor`` or ``Booster``); loading takes the class from that fixed
list only, never a name from the file imported as is.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from runyard.errors import InvalidInput
from runyard.flavors._common import check_meta, finish, prepare_directory, type_modules
from runyard.flavors._meta import ModelMeta, infer_signature, pinned, require

__all__ = ["CLASSES", "NAME", "load", "matches", "save"]

NAME = "xgboost"
FILE = "model.json"
INSTALL = "'runyard[xgboost]'"
CLASSES = ("XGBClassifier", "XGBRegressor", "XGBRanker", "XGBRFClassifier", "XGBRFRegressor", "Booster")


def matches(model: Any) -> bool:
    return "xgboost" in type_modules(model)


def _class_name(xgb: Any, model: Any) -> str:
    for name in CLASSES:  # the most derived first: XGBRFClassifier is an XGBClassifier
        cls = getattr(xgb, name)
        if type(model) is cls:
            return name
    for name in CLASSES:
        if isinstance(model, getattr(xgb, name)):
            return name
    raise InvalidInput(f"The xgboost flavor saves {', '.join(CLASSES)}, not a {type(model).__module__}.{type(model).__qualname__}.",
                       "Pass the fitted estimator or its get_booster().")


def save(model: Any, directory: str | os.PathLike[str], *, input_example: Any = None, signature: Any = None,
         requirements: Iterable[str] | None = None) -> ModelMeta:
    """Save an XGBoost estimator or Booster as ``model.json`` (``save_model``'s JSON format).

    Raises:
        InvalidInput: not an XGBoost model, or an estimator that was not fitted.
        MissingLibrary: xgboost is not installed.
    """
    xgb = require("xgboost", NAME, INSTALL)
    class_name = _class_name(xgb, model)
    root = prepare_directory(directory)
    try:
        model.save_model(str(root / FILE))
    except (xgb.core.XGBoostError, AttributeError, TypeError) as e:  # an unfitted estimator has no booster
        raise InvalidInput(f"Cannot save the {class_name}: {e}", "Fit the model before saving it.") from e
    output = None
    if input_example is not None:
        try:
            output = model.predict(xgb.DMatrix(input_example) if class_name == "Booster" else input_example)
        except (ValueError, TypeError, xgb.core.XGBoostError):
            output = None  # the example does not fit the model: the signature keeps the inputs only
    dists = ("xgboost", "numpy", "scipy") if class_name == "Booster" else ("xgboost", "scikit-learn", "numpy", "scipy")
    meta = ModelMeta(flavor=NAME, format="json", files=(FILE,), library="xgboost", library_version=xgb.__version__,
                     requirements=tuple(pinned(*dists)), signature=infer_signature(input_example, output, output_name="prediction"),
                     details={"class": class_name})
    return finish(root, meta, signature=signature, requirements=requirements)


def load(directory: str | os.PathLike[str], *, meta: ModelMeta | None = None) -> Any:
    """The model of ``directory/model.json``, as an instance of the class it was saved from.

    Raises:
        InvalidInput: an unknown class in ``runyard-model.json``, or a damaged file.
        MissingLibrary: xgboost is not installed.
    """
    meta = check_meta(directory, meta, NAME)
    xgb = require("xgboost", NAME, INSTALL)
    class_name = meta.details.get("class", "Booster")
    if class_name not in CLASSES:
        raise InvalidInput(f"{Path(directory) / 'runyard-model.json'} names the class {class_name!r:.80}; "
                           f"the xgboost flavor loads {', '.join(CLASSES)}.", "Save the model again with runyard.")
    path = str(Path(directory) / meta.files[0])
    try:
        if class_name == "Booster":
            return xgb.Booster(model_file=path)
        model = getattr(xgb, class_name)()
        model.load_model(path)
        return model
    except xgb.core.XGBoostError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InvalidInput(f"{path} could not be loaded by XGBoost {xgb.__version__}: {first}",
                           "The file is damaged or truncated, or was saved by a newer XGBoost: "
                           f"install {', '.join(meta.requirements) or 'the version that saved it'}.") from e

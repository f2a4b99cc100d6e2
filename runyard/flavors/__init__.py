"""Model flavors: saving a model in its library's own format, and loading it back, without pickle.

Each flavor writes a directory holding the model's files and ``runyard-model.json`` (flavor,
format, files, library and version, Python version, pinned requirements, input/output
signature). The registry stores that directory as a snapshot; :func:`load` reads it back.

| flavor  | saved as                                                       | loads as                        |
|---------|----------------------------------------------------------------|---------------------------------|
| sklearn | ``model.skops`` (skops; types checked against an allow-list)    | the estimator                   |
| xgboost | ``model.json`` (XGBoost's JSON), the class recorded             | that class, or a ``Booster``     |
| pytorch | ``model.pt`` TorchScript / ``model.pt2`` export / state dict   | module / program's module / dict |
| onnx    | ``model.onnx`` as is                                           | ``onnxruntime.InferenceSession`` |
| files   | the file or directory as is                                    | the directory's ``Path``        |

Example::

    from runyard import flavors
    meta = flavors.save(clf, "out/clf", input_example=X[:5])   # flavor detected: sklearn
    clf2 = flavors.load("out/clf")

Libraries are imported only when a model is saved or loaded; a missing one raises
:class:`MissingLibrary` naming what to ``pip install``.
"""

from runyard.flavors._common import detect, flavor_module, load, save
from runyard.flavors._meta import (
    FLAVORS,
    META_FILE,
    MissingLibrary,
    ModelMeta,
    check_requirements,
    check_signature,
    infer_signature,
    read_meta,
)

__all__ = [
    "FLAVORS",
    "META_FILE",
    "MissingLibrary",
    "ModelMeta",
    "check_requirements",
    "check_signature",
    "detect",
    "flavor_module",
    "infer_signature",
    "load",
    "read_meta",
    "save",
]

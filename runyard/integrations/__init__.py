"""Loggers and callbacks that connect training frameworks to Runyard, each behind its optional extra.

- ``runyard.integrations.lightning``: ``RunyardLogger`` and ``RunyardStopCallback`` (extra ``lightning``);
  ``runyard.integrations.pytorch_lightning``: the same for the ``pytorch_lightning`` package;
- ``runyard.integrations.transformers``: ``RunyardCallback``, a ``TrainerCallback`` (extra ``transformers``);
- ``runyard.integrations.keras``: ``RunyardCallback`` (extra ``keras``, and a Keras backend);
- ``runyard.integrations.xgboost``: ``RunyardCallback`` (extra ``xgboost``);
- ``runyard.integrations.lightgbm``: ``runyard_callback()`` and ``log_model()`` (extra ``lightgbm``).

An extra installs with ``pip install 'runyard[EXTRA]'``.

Each one records params, metrics with their steps and the model (checkpoints or the final
model) as artifacts, and stops training when the run is stopped on the server
(:func:`runyard.should_stop`: pruned by the experiment's early-stopping rule, or canceled);
from then on it logs no more metrics. Each logs to the run it is given, else to the active
run (the run Runyard launched, or the one ``runyard.init()`` started), else it starts an
ad-hoc run that becomes the active run; it never finishes a run.

Importing this package imports no framework; importing one of its modules imports that
framework, and without it raises :class:`MissingFramework` naming the extra to install.
See docs/integrations.md.
"""

from __future__ import annotations

from runyard.integrations._common import MissingFramework

__all__ = ["MissingFramework"]

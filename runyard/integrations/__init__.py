"""Loggers and callbacks that connect training frameworks to Runyard, each behind its optional extra.

===========================================  ===============================  ======================================
module                                       what                             extra (``pip install 'runyard[X]'``)
===========================================  ===============================  ======================================
``runyard.integrations.lightning``           ``RunyardLogger``,               ``lightning``
                                             ``RunyardStopCallback``
``runyard.integrations.pytorch_lightning``   the same for ``pytorch_lightning``  ``lightning``
``runyard.integrations.transformers``        ``RunyardCallback``              ``transformers``
``runyard.integrations.keras``               ``RunyardCallback``              ``keras``
``runyard.integrations.xgboost``             ``RunyardCallback``              ``xgboost``
``runyard.integrations.lightgbm``            ``RunyardCallback``,             ``lightgbm``
                                             ``runyard_callback()``
===========================================  ===============================  ======================================

Each one records params, metrics with their steps and the model (checkpoints or the final
model) as artifacts, and stops training when the run is stopped on the server
(:func:`runyard.should_stop`: pruned by the experiment's early-stopping rule, or canceled).
Each logs to the run it is given, else to the active run (the run Runyard launched, or the
one ``runyard.init()`` started), else it starts an ad-hoc run and finishes it when training ends.

Importing this package imports no framework; importing one of its modules imports that
framework, and without it raises :class:`MissingFramework` naming the extra to install.
See docs/integrations.md.
"""

from __future__ import annotations

from runyard.integrations._common import MissingFramework

__all__ = ["MissingFramework"]

"""The Lightning logger and stop callback for code that imports ``pytorch_lightning`` (the package's older name).

Same classes as :mod:`runyard.integrations.lightning`, derived from ``pytorch_lightning``'s
Logger and Callback, which a ``pytorch_lightning.Trainer`` requires::

    import pytorch_lightning as pl
    from runyard.integrations.pytorch_lightning import RunyardLogger, RunyardStopCallback

    trainer = pl.Trainer(max_epochs=20, logger=RunyardLogger(), callbacks=[RunyardStopCallback()])

Needs ``pip install 'runyard[lightning]'`` (``lightning`` installs ``pytorch_lightning`` too).
"""

from __future__ import annotations

from runyard.integrations._common import require
from runyard.integrations._lightning import make_classes

__all__ = ["RunyardLogger", "RunyardStopCallback"]

_pl = require("pytorch_lightning", "lightning", "runyard.integrations.pytorch_lightning")
_utils = require("lightning_fabric.utilities.logger", "lightning", "runyard.integrations.pytorch_lightning")

RunyardLogger, RunyardStopCallback = make_classes(_pl, _utils, "runyard.integrations.pytorch_lightning")

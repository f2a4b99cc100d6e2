"""PyTorch Lightning (the ``lightning`` package): a logger and a callback that stops training when Runyard stops the run.

Example::

    from lightning.pytorch import Trainer
    from runyard.integrations.lightning import RunyardLogger, RunyardStopCallback

    trainer = Trainer(max_epochs=20, logger=RunyardLogger(project="mnist"), callbacks=[RunyardStopCallback()])
    trainer.fit(model, train_loader, val_loader)

``RunyardLogger`` records the module's hyper-parameters as params, logged values as metrics at
the global step, and checkpoints as artifacts; ``RunyardStopCallback`` ends ``fit`` once the run
is pruned by its experiment's early-stopping rule or canceled. For the older ``pytorch_lightning``
package use :mod:`runyard.integrations.pytorch_lightning`. Needs ``pip install 'runyard[lightning]'``.
"""

from __future__ import annotations

from runyard.integrations._common import require
from runyard.integrations._lightning import make_classes

__all__ = ["RunyardLogger", "RunyardStopCallback"]

_pl = require("lightning.pytorch", "lightning", "runyard.integrations.lightning")
_utils = require("lightning.fabric.utilities.logger", "lightning", "runyard.integrations.lightning")

RunyardLogger, RunyardStopCallback = make_classes(_pl, _utils, "runyard.integrations.lightning")

"""What a run writes to disk when the server cannot be reached, and the reader that replays it.

Two spools live here:

- :class:`MetricSpool` (``_metrics``): the SDK's metric batches under
  ``$RUNYARD_HOME/spool/<run_id>/`` while the server does not answer; the SDK's
  sender replays them itself once it answers again.
- The run spool (``_client`` writes, ``_replay`` reads), described below: a run
  whose compute nodes cannot reach the server writes everything to a spool directory.

With ``reach_server: false`` in a backend's configuration (HPC sites whose compute
nodes have no route to the server), the task runner and the SDK inside the task talk
to a :class:`SpoolClient` instead of ``runyard.client.Client``: the same methods,
but each call appends one JSON line to a file on the shared file system. The
backend carries the spool back when it polls (:func:`ingest`) and replays every
line through the real client (``runyard.client.Client``) into the same ingest
path as a live run, so the run looks the same in the CLI and UI.

Layout of a spool directory (one per run attempt, made by the backend)::

    <spool>/<writer>-<pid>.jsonl     one file per process: the runner ("runner-main-0")
                                     and each SDK process ("sdk")
    <spool>/artifacts/<path>         files the task stored as artifacts
    <spool>/.ingested.json           how far each file was replayed (written by ingest)

Each line is ``{"op": ..., ...}`` with op ``logs``, ``metrics`` (the request body,
``batch_id`` included, so a line replayed twice is stored once), ``task``, ``run``,
``params``, ``tags`` or ``artifact``. Lines are appended with one ``write`` each
and end with a newline; a reader only takes lines that are complete.

The snapshot: the backend copies the snapshot's manifest and blobs into a blob
cache on the shared file system before it submits (``snapshots/<id>.json`` and the
``<aa>/<sha256>`` files ``runyard.snapshot.materialize`` reads), so the runner
materialises the code without the server.

Operational traps:

- Heartbeats answer ``running``: a cancel cannot reach the task through the spool,
  so the backend cancels through the engine (``scancel``), whose SIGTERM the runner
  turns into a stop.
- Replays into a run that ended meanwhile (canceled) are refused by the server with
  ``InvalidState`` and skipped, as for a live runner.
"""

from runyard.spool._client import (
    BLOB_CACHE_ENV,
    SPOOL_ENV,
    SpoolClient,
    snapshot_manifest_path,
)
from runyard.spool._metrics import MetricSpool
from runyard.spool._replay import STATE_FILE, ReplayClient, SpoolReader, ingest

__all__ = [
    "BLOB_CACHE_ENV",
    "SPOOL_ENV",
    "STATE_FILE",
    "MetricSpool",
    "ReplayClient",
    "SpoolClient",
    "SpoolReader",
    "ingest",
    "snapshot_manifest_path",
]

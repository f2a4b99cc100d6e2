"""Rendezvous through the server, for tasks started apart from each other (``runyard.runner exec``).

A task others connect to (:func:`~runyard.launch.endpoint_labels`) finds a free port
on its host when it starts and publishes ``host:port`` on its task record
(``PUT /runs/{id}/tasks/{role}/{rank}`` with ``address``); every task then waits
(``GET /runs/{id}/rendezvous``, a long-poll) until each endpoint of its attempt is
known. The local backend does not need this: it knows every address beforehand.

A service task started that way (a Ray node, the XGBoost tracker, a TF parameter
server) has no sibling in its process to tell it the run's work is done: it
watches the task records instead (:func:`wait_others_succeeded`), and is stopped,
as succeeded, once every other task of its attempt succeeded.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

from runyard.errors import BackendError, RunyardError
from runyard.launch._plan import Endpoint, endpoint_labels, service_labels
from runyard.records.compute import RunLaunch, TaskSlot
from runyard.records.status import TERMINAL as _TERMINAL

__all__ = ["publish_endpoint", "server_endpoints", "wait_endpoints", "wait_others_succeeded"]

log = logging.getLogger("runyard.launch")



def publish_endpoint(client: Any, launch: RunLaunch, slot: TaskSlot, host: str | None = None) -> Endpoint:
    """Find a free port on this machine and publish ``host:port`` as ``slot``'s rendezvous address.

    Args:
        host: the name others reach this machine by (default: ``socket.gethostname()``).
    """
    host = host or socket.gethostname()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        port = s.getsockname()[1]
    client.update_task(launch.run_id, slot.role, slot.rank, attempt=launch.attempt, address=f"{host}:{port}")
    return host, port


def wait_endpoints(client: Any, launch: RunLaunch, labels: list[str], timeout_s: float = 600.0) -> dict[str, Endpoint]:
    """Wait until every task of ``labels`` published its address for this attempt.

    Raises:
        BackendError: the run ended, or ``timeout_s`` passed, before they all did.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        resp = client.rendezvous(launch.run_id, launch.attempt, labels, wait_s=max(0.0, min(30.0, remaining)))
        if resp["complete"]:
            out = {}
            for label in labels:
                host, _, port = resp["addresses"][label].rpartition(":")
                out[label] = (host, int(port))
            return out
        missing = [label for label in labels if label not in resp["addresses"]]
        if resp["run_status"] in _TERMINAL:
            raise BackendError(f"Run {launch.run_id} is {resp['run_status']} before task(s) {', '.join(missing)} "
                               "published their rendezvous address.", f"See `runyard logs {launch.run_id}`.")
        if time.monotonic() >= deadline:
            raise BackendError(f"Task(s) {', '.join(missing)} of run {launch.run_id} did not publish their rendezvous "
                               f"address within {timeout_s:g} s.",
                               f"See their logs: `runyard logs {launch.run_id} --task {missing[0]}`.")


def server_endpoints(client: Any, launch: RunLaunch, slot: TaskSlot, host: str | None = None,
                     timeout_s: float = 600.0) -> dict[str, Endpoint]:
    """This task's side of the rendezvous: publish its own endpoint if it has one, then wait for all."""
    labels = endpoint_labels(launch)
    if slot.label in labels:
        publish_endpoint(client, launch, slot, host)
    return wait_endpoints(client, launch, labels, timeout_s) if labels else {}


def wait_others_succeeded(client: Any, launch: RunLaunch, stopped: threading.Event, interval_s: float = 1.0) -> bool:
    """For a service task started apart: wait until every task of this attempt that is not a
    service reported itself succeeded (one ``GET /runs/{id}`` per ``interval_s``).

    Returns:
        True once they all did; False when ``stopped`` is set first, or the run ended
        (canceled, failed, pruned: the task's own heartbeat stops it then).
    """
    services = set(service_labels(launch))
    others = {s.label for s in launch.tasks if s.label not in services}
    while not stopped.wait(interval_s):
        try:
            run = client.get_run(launch.run_id)
        except RunyardError as e:  # the server is down for a moment: ask again at the next interval
            log.warning("run %s: cannot read its tasks: %s", launch.run_id, e.message)
            continue
        if run["status"] in _TERMINAL:
            return False
        done = {f"{t['role']}-{t['rank']}" for t in run.get("tasks", ())
                if t.get("attempt") == launch.attempt and t.get("status") == "succeeded"}
        if others <= done:
            return True
    return False

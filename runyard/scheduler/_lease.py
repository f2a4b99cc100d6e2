"""The leader lease: one scheduler per database acts; the others wait until the lease lapses."""

from __future__ import annotations

import logging

from runyard.errors import RunyardError
from runyard.scheduler._clock import Clock
from runyard.store import Store

__all__ = ["LEASE", "Lease"]

log = logging.getLogger("runyard.scheduler")

LEASE = "scheduler"  # the row's name in the store's ``locks``


class Lease:
    """The scheduler lease as ``holder`` sees it; ``held`` is what the last renewal said."""

    def __init__(self, store: Store, holder: str, ttl_s: float, clock: Clock) -> None:
        self.store = store
        self.holder = holder
        self.ttl_s = ttl_s
        self.clock = clock
        self.held = False
        self._renewed_at = 0.0

    def renew(self) -> bool:
        """Take or renew the lease; true while this holder leads.

        Renewed when a third of its life has passed, not on every pass (a write transaction
        each time); it then stays ours for at least two thirds of ``ttl_s``.
        """
        now = self.clock.monotonic()
        if not self.held or now - self._renewed_at > self.ttl_s / 3:
            self.held = self.store.acquire_lease(LEASE, self.holder, self.ttl_s)
            if self.held:
                self._renewed_at = now
        return self.held

    def release(self) -> None:
        """Give the lease up (the server stops), so another server leads at once."""
        if not self.held:
            return
        try:
            self.store.release_lease(LEASE, self.holder)
        except RunyardError:
            log.warning("could not release the scheduler lease")
        self.held = False

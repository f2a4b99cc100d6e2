"""Plain data types shared across layers: run statuses, resources, launches, task slots, engine states.

This package sits just above ``errors``/``config``, ``names`` and ``_http``: it imports nothing else from
Runyard, so the store, the search, the launchers, the runner, the backends and the scheduler can
all use the same types. Import from the submodules.
"""

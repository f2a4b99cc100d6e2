"""The Kubernetes backend (see ``_backend.py`` for the concept map and traps, ``_manifests.py`` for what a run becomes)."""

from runyard.backends.kubernetes._backend import KubernetesBackend, collection_path
from runyard.backends.kubernetes._manifests import (
    KINDS,
    OPERATORS,
    object_name,
    render_secret,
    render_service,
    render_workload,
    server_id_of,
    workload_kind,
)
from runyard.backends.kubernetes._options import KubernetesBackendOptions
from runyard.backends.kubernetes._states import map_object

__all__ = ["KINDS", "OPERATORS", "KubernetesBackend", "KubernetesBackendOptions", "collection_path", "map_object",
           "object_name", "render_secret", "render_service", "render_workload", "server_id_of", "workload_kind"]

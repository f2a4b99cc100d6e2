"""The Ray backend: runs as Ray jobs on an existing cluster (see ``_backend.py`` for the concept map and traps).

Importing this package does not import Ray: the Jobs client is imported when the backend
first talks to the dashboard (``pip install 'runyard[ray]'``).
"""

from runyard.backends.ray._backend import RayBackend, RayUnreachable, require_ray
from runyard.backends.ray._jobs import JobSpec, far_launch, job_specs, submission_id
from runyard.backends.ray._options import RayBackendOptions, RayRuntimeEnv
from runyard.backends.ray._states import map_job

__all__ = ["JobSpec", "RayBackend", "RayBackendOptions", "RayRuntimeEnv", "RayUnreachable", "far_launch", "job_specs",
           "map_job", "require_ray", "submission_id"]

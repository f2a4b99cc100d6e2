"""The Slurm backend (see ``_backend.py`` for the concept map and traps)."""

from runyard.backends.slurm._backend import SlurmBackend
from runyard.backends.slurm._options import SlurmBackendOptions
from runyard.backends.slurm._script import JobPaths, render_sbatch
from runyard.backends.slurm._states import map_state

__all__ = ["JobPaths", "SlurmBackend", "SlurmBackendOptions", "map_state", "render_sbatch"]

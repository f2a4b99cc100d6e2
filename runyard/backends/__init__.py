"""Compute targets: the backend interface and kit (``base``, ``kit``, ``options``), ``backends.yml``
(``config``), the registry, and the local, SSH and Slurm backends."""

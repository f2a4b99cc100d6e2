"""Code versioning: snapshot a project directory, upload only new blobs, and materialize it back.

A snapshot is the content-addressed copy of a project directory taken at
submission. Its id is :func:`runyard._manifest.manifest_id` over the manifest, a
list of ``[path, sha256, size, mode]`` entries (``mode`` is 0o755 for executable
files, else 0o644), so the same content gives the same id whatever the mtimes or
the order on disk. File contents are stored once on the server as blobs named by
their sha256; :func:`create_snapshot` uploads only the blobs the server lacks.

What goes in (see :func:`scan`):

- Regular files under the directory, and symlinked files as their target's content.
  Symlinked directories are not followed; broken links and special files are
  skipped. Each skip is reported in ``ScanResult.warnings``.
- Minus the ignore rules, in gitignore syntax and in this order (a later ``!rule``
  can re-include what an earlier one excluded): :data:`DEFAULT_IGNORE`, the
  ``ignore:`` patterns of ``runyard.yml``, then ``.runyardignore`` at the root.
  Ignored directories are pruned, never walked.
- At most ``RUNYARD_SNAPSHOT_MAX_FILES`` files (default 2000) and
  ``RUNYARD_SNAPSHOT_MAX_MB`` MiB (default 300); over that, :func:`scan` raises
  :class:`~runyard.errors.InvalidInput` naming the largest entries to ignore.

:func:`git_info` records the git commit, branch, dirty flag and diff beside the
snapshot. :func:`materialize` rebuilds the directory from the server through a
local blob cache; :func:`diff_snapshots` and :func:`file_diff` compare two
snapshots.

Modules: ``_scan`` (walk, ignore rules, limits, hashing), ``_git`` (commit, branch,
dirty flag, diff), ``_upload`` (missing blobs only, then the manifest),
``_materialize`` (the verified local blob cache) and ``_diff`` (``runyard diff``).
"""

# Versioned datasets: the same blobs and manifests, pushed by content (runyard datasets).
from runyard.snapshot._dataset_dirs import DatasetMaterialized, materialize_dataset, release_dataset_dirs
from runyard.snapshot._datasets import (
    DatasetPushResult,
    LocalDataset,
    PulledDataset,
    hash_references,
    pull_dataset,
    push_dataset,
    reference_paths,
    scan_dataset,
    write_dataset_version,
)
from runyard.snapshot._diff import Change, diff_snapshots, file_diff
from runyard.snapshot._git import GIT_DIFF_MAX_BYTES, GitInfo, git_info
from runyard.snapshot._materialize import Materialized, fetch_blobs, materialize
from runyard.snapshot._scan import (
    DEFAULT_IGNORE,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_FILES,
    IGNORE_FILE,
    FileEntry,
    ScanResult,
    hash_file,
    ignore_spec,
    scan,
)
from runyard.snapshot._upload import SnapshotInfo, create_snapshot, upload_missing

__all__ = [
    "DEFAULT_IGNORE",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_FILES",
    "GIT_DIFF_MAX_BYTES",
    "IGNORE_FILE",
    "Change",
    "DatasetMaterialized",
    "FileEntry",
    "GitInfo",
    "Materialized",
    "ScanResult",
    "SnapshotInfo",
    "create_snapshot",
    "diff_snapshots",
    "fetch_blobs",
    "file_diff",
    "git_info",
    "hash_file",
    "ignore_spec",
    "materialize",
    "scan",
    "upload_missing",
    # datasets
    "DatasetMaterialized",
    "DatasetPushResult",
    "LocalDataset",
    "PulledDataset",
    "hash_references",
    "materialize_dataset",
    "pull_dataset",
    "push_dataset",
    "reference_paths",
    "release_dataset_dirs",
    "scan_dataset",
    "write_dataset_version",
]

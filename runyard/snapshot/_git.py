"""The git state recorded beside a snapshot: :func:`runyard._git.git_info`, shared with the SDK's ad-hoc runs."""

from __future__ import annotations

from runyard._git import GIT_DIFF_MAX_BYTES, GitInfo, git_info

__all__ = ["GIT_DIFF_MAX_BYTES", "GitInfo", "git_info"]

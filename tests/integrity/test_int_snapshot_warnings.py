"""What a snapshot leaves out is said at submission: `runyard run` lists the entries it cannot store.

They used to be computed and dropped: symlink loops, broken links, FIFOs and links to
devices vanished from the run's code without a word.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from int_helpers import awkward_project, cli

from runyard.client import Client
from runyard.testing.pytest_plugin import LiveServers

pytestmark = pytest.mark.slow

SKIPPED = ("loop-a: skipped, a symlink loop", "loop-b: skipped, a symlink loop", "dangling: skipped, a broken symlink",
           "pipe: skipped, a FIFO", "null-device: skipped, a symlink to '/dev/null', a character device")


def test_run_prints_what_the_snapshot_left_out(live_servers: LiveServers, tmp_path: Path) -> None:
    server = live_servers.start("snap", env={"RUNYARD_SCHEDULER": "0"})
    project = f"s-{uuid.uuid4().hex[:8]}"
    root = awkward_project(tmp_path / "proj", project)

    res = cli("run", str(root), "--detach", server=server.url)
    assert res.returncode == 0, res.stderr
    assert "5 entries left out of the code snapshot" in res.stderr
    for line in SKIPPED:
        assert line in res.stderr, res.stderr

    res = cli("run", str(root), "--json", server=server.url)
    assert res.returncode == 0, res.stderr
    exp = json.loads(res.stdout)
    assert sorted(w.split(":")[0] for w in exp["snapshot_warnings"]) == ["dangling", "loop-a", "loop-b", "null-device",
                                                                          "pipe"]
    with Client(server.url) as client:
        snap = client.request("GET", f"/snapshots/{exp['snapshot_id']}").json()
    assert [f[0] for f in snap["files"]] == ["runyard.yml", "train.py"]

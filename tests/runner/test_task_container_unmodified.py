"""Code run as it is inside an image (real podman): a mount bound at its working-directory path, a cancel
that reaches the script as KeyboardInterrupt through podman's --init, and its outputs kept."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runyard.backends.base import EngineStatus, TaskSlot
from runyard.client import Client
from runyard.runner import TaskExecution, TaskResult
from runyard.testing import wait_for

pytestmark = pytest.mark.slow

SCRIPT = """
import time
print("data:", open("data/corpus/train.txt").read().strip(), flush=True)
try:
    time.sleep(120)
except KeyboardInterrupt:
    print("cleanup in the image", flush=True)
    open("model.pt", "w").write("saved")
"""


def _texts(client: Client, run_id: int) -> list[str]:
    out: list[str] = []
    offset = 0
    while True:
        page = client.read_logs(run_id, offset)
        if not page["lines"]:
            return out
        out += [ln["text"] for ln in page["lines"]]
        offset = page["next_offset"]


def _container(image: str) -> dict[str, Any]:
    return {"image": image, "roles": {}, "build": None, "runtime": "podman", "command": None, "options": [],
            "build_options": [], "builder": "podman", "image_dir": None}


def test_a_mount_is_bound_in_the_image_and_a_cancel_is_a_keyboard_interrupt(
        podman_image: str, make_launch: Callable, client: Client, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "train.txt").write_text("outside the snapshot\n")
    work = tmp_path / "w"
    work.mkdir()
    (work / "train.py").write_text(SCRIPT)
    # A shell command (not a plain argv): the shell and the script both get the SIGINT (catatonit -g).
    launch = make_launch("python3 train.py && echo finished", container=_container(podman_image), grace_period_s=20.0,
                         task_io={"mounts": {"data/corpus": str(corpus)}, "outputs": ["model.pt"]})
    execution = TaskExecution(launch, TaskSlot(), client, work)
    results: list[TaskResult] = []
    thread = threading.Thread(target=lambda: results.append(execution.run()), daemon=True)
    thread.start()
    wait_for(lambda: "data: outside the snapshot" in _texts(client, launch.run_id), 90, "the script to read the mount")
    t0 = time.monotonic()
    client.cancel_run(launch.run_id)
    thread.join(40)
    assert time.monotonic() - t0 < 10, "the SIGINT did not reach the script (it waited for SIGTERM after 20 s)"
    [result] = results
    assert result.status is EngineStatus.CANCELED
    texts = _texts(client, launch.run_id)
    assert "cleanup in the image" in texts, texts
    assert [a["path"] for a in client.list_artifacts(launch.run_id)] == ["model.pt"]

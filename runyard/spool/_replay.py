"""The reading side of a run's spool: :func:`ingest` replays new complete lines through a real client."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from runyard.errors import Conflict, InvalidInput, NotFound

__all__ = ["STATE_FILE", "ReplayClient", "SpoolReader", "ingest"]

STATE_FILE = ".ingested.json"
log = logging.getLogger("runyard.backends")


class ReplayClient(Protocol):
    """What :func:`ingest` calls to replay a spool: the matching methods of ``runyard.client.Client``."""

    def append_logs(self, run_id: int, task: str, lines: list[dict[str, Any]], *, batch_id: str | None = None) -> object: ...

    def log_metrics(self, run_id: int, keys: list[str], steps: list[int], values: list[float | None],
                    timestamps: list[float], batch_id: str | None = None) -> object: ...

    def update_task(self, run_id: int, role: str, rank: int, **fields: Any) -> object: ...

    def update_run(self, run_id: int, status: str, message: str | None = None, exit_code: int | None = None) -> object: ...

    def log_params(self, run_id: int, params: dict[str, Any]) -> object: ...

    def set_tags(self, run_id: int, tags: dict[str, str]) -> object: ...

    def upload_artifact(self, run_id: int, path: str, data: BinaryIO) -> object: ...


class SpoolReader:
    """How a backend reads a spool directory: local files, or through a remote host."""

    def list(self, directory: str) -> list[str]:  # names of *.jsonl files
        names = []
        try:
            for entry in os.scandir(directory):
                if entry.name.endswith(".jsonl"):
                    names.append(entry.name)
        except FileNotFoundError:
            return []
        return names

    def read_from(self, path: str, offset: int) -> bytes:
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                return f.read()
        except FileNotFoundError:
            return b""

    def read_all(self, path: str) -> bytes | None:
        try:
            return Path(path).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, path: str, data: bytes) -> None:
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)

    def open_artifact(self, path: str) -> BinaryIO:
        return open(path, "rb")


def ingest(directory: str, run_id: int, client: ReplayClient, reader: SpoolReader | None = None) -> int:
    """Replay the spool's new complete lines through ``client`` (a ``runyard.client.Client``, see :class:`ReplayClient`).

    SDK files go first, then the runner's: the runner writes the run's final status
    after its task (and so the SDK) ended, so metrics always land before it. How far
    each file was replayed is kept in ``.ingested.json`` next to the files, so a
    restarted server replays nothing twice (metric batches would be deduplicated by
    their ``batch_id`` anyway; log lines would not).

    Returns:
        The number of lines replayed.

    Raises:
        ServerUnreachable: the server did not answer; the lines stay for the next call.
    """
    reader = reader or SpoolReader()
    state_path = f"{directory}/{STATE_FILE}"
    raw = reader.read_all(state_path)
    offsets: dict[str, int] = json.loads(raw) if raw else {}
    # The runners' files are read before the directory is listed again for the SDK files: whatever
    # a runner wrote by then (its final status included) came after its task's SDK lines, which the
    # second listing and the reads after it therefore see. Listing once and reading runner files
    # last could miss an SDK file created after the listing while replaying the run's end.
    runner_names = sorted(n for n in reader.list(directory) if n.startswith("runner-"))
    runner_data = {name: reader.read_from(f"{directory}/{name}", offsets.get(name, 0)) for name in runner_names}
    sdk_names = sorted(n for n in reader.list(directory) if not n.startswith("runner-"))
    files = [(name, reader.read_from(f"{directory}/{name}", offsets.get(name, 0))) for name in sdk_names]
    files += list(runner_data.items())
    n_done = 0
    try:
        for name, data in files:
            offset = offsets.get(name, 0)
            end = data.rfind(b"\n")
            if end < 0:
                continue
            for line in data[: end + 1].splitlines(keepends=True):
                if line.strip():
                    try:
                        op = json.loads(line)
                    except ValueError:
                        op = None  # a damaged line (disk full on the node): skip it, keep the rest
                    if isinstance(op, dict):
                        _replay(op, directory, run_id, client, reader)
                    n_done += 1
                offset += len(line)
                offsets[name] = offset
    finally:
        if n_done:
            reader.write(state_path, json.dumps(offsets).encode())
    return n_done


def _replay(op: Mapping[str, Any], directory: str, run_id: int, client: ReplayClient, reader: SpoolReader) -> None:
    kind = op.get("op")
    try:
        if kind == "logs":
            client.append_logs(run_id, op["task"], op["lines"], batch_id=op.get("batch_id"))
        elif kind == "metrics":
            client.log_metrics(run_id, **op["body"])
        elif kind == "task":
            client.update_task(run_id, op["role"], op["rank"], **op.get("fields", {}))
        elif kind == "run":
            client.update_run(run_id, op["status"], op.get("message"), op.get("exit_code"))
        elif kind == "params":
            client.log_params(run_id, op["params"])
        elif kind == "tags":
            client.set_tags(run_id, op["tags"])
        elif kind == "artifact":
            with reader.open_artifact(f"{directory}/artifacts/{op['path']}") as f:
                client.upload_artifact(run_id, op["path"], f)
    except (Conflict, NotFound):
        pass  # the run ended (canceled) or was deleted meanwhile: as for a live runner, the update is dropped
    except InvalidInput as e:  # refused for good (e.g. a malformed batch): dropped, as the live reporter does
        log.warning("run %s: spooled %s refused, dropped: %s", run_id, kind, e.message)

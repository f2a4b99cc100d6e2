"""moto's S3 server on 127.0.0.1 for tests of S3 artifact storage and ``s3://`` dataset references.

:func:`moto_s3` starts ``python -m moto.server`` on a free loopback port, waits until it listens,
creates the bucket, and stops the server by its own pid (its process group) afterwards.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["MotoS3", "moto_s3"]

_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass(frozen=True)
class MotoS3:
    """A running moto S3 server: its endpoint, a bucket, and the environment a Runyard process needs to use it."""

    endpoint: str
    bucket: str

    def env(self, prefix: str | None = None) -> dict[str, str]:
        """The endpoint and credentials (and, with ``prefix``, artifacts stored under ``s3://BUCKET/PREFIX``)."""
        env = {"RUNYARD_S3_ENDPOINT_URL": self.endpoint, **_CREDENTIALS}
        if prefix is not None:
            env["RUNYARD_ARTIFACTS_URL"] = f"s3://{self.bucket}/{prefix}"
        return env

    def client(self) -> Any:
        """A boto3 S3 client, for looking at (or changing) the bucket directly."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                            region_name="us-east-1")

    def keys(self, prefix: str) -> dict[str, int]:
        """Every object under ``prefix`` in the bucket, key → size."""
        out: dict[str, int] = {}
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            out.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
        return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def moto_s3(log_dir: Path, bucket: str = "runyard-test", *, wait_s: float = 60.0) -> Iterator[MotoS3]:
    """moto's S3 in server mode with ``bucket``; its output goes to ``log_dir/moto.log``.

    Raises:
        RuntimeError: the server exited or did not listen within ``wait_s`` (with the end of its log).
    """
    port = _free_port()
    log = Path(log_dir) / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **_CREDENTIALS})
    try:
        deadline = time.monotonic() + wait_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"moto.server exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto.server did not listen within {wait_s:.0f} s: {log.read_text()[-2000:]}") from None
                time.sleep(0.1)
        s3 = MotoS3(f"http://127.0.0.1:{port}", bucket)
        s3.client().create_bucket(Bucket=bucket)
        yield s3
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)

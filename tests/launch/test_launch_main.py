"""``python -m runyard.launch``: the helper programs distributed tasks run (the ones without a framework)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

from runyard.launch.__main__ import main, wait_port


def test_wait_port_returns_once_something_listens(capsys) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        # Listen only after a moment: the wait must retry, not fail on the first refusal.
        timer = threading.Timer(0.5, s.listen)
        timer.start()
        started = time.monotonic()
        assert wait_port(f"127.0.0.1:{port}", "the tracker", 30) == 0
        timer.join()
    assert time.monotonic() - started >= 0.4
    out = capsys.readouterr().out
    assert f"[runyard.launch] waiting for the tracker at 127.0.0.1:{port}" in out
    assert f"[runyard.launch] the tracker is up at 127.0.0.1:{port}" in out


def test_wait_port_gives_up_with_exit_code_3_and_says_where_to_look(capsys) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        assert main(["wait-port", f"127.0.0.1:{port}", "--what", "the Ray head", "--timeout-s", "0.5"]) == 3
    err = capsys.readouterr().err
    assert f"the Ray head did not listen at 127.0.0.1:{port} within 0.5 s" in err
    assert "runyard logs RUN --task LABEL" in err


def test_bad_arguments_exit_with_usage() -> None:
    res = subprocess.run([sys.executable, "-m", "runyard.launch", "xgboost-tracker", "--port", "1"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 2 and "--host-ip" in res.stderr

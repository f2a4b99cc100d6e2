"""backends.yml: validation messages, `runyard backends add/list/remove`, the pool's reload, and
experiment submission against the configured names (a real server)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from runyard.backends.config import add_backend, load_backends, parse_backends, remove_backend
from runyard.backends.local import LocalBackend, agent_dir, stop_agent
from runyard.backends.slurm import SlurmBackend
from runyard.client import Client
from runyard.errors import NotFound, SpecError
from runyard.scheduler import BackendPool
from runyard.testing import LiveServer


def test_local_always_exists_and_entries_keep_their_options() -> None:
    entries = parse_backends("slurm-dev: {type: slurm, partition: debug}\n")
    assert list(entries) == ["local", "slurm-dev"]
    assert entries["slurm-dev"].type == "slurm" and dict(entries["slurm-dev"].options) == {"partition": "debug"}
    assert list(parse_backends("")) == ["local"]
    assert dict(parse_backends("local: {type: local, cpus: 2}")["local"].options) == {"cpus": 2}


BAD = [
    # (entry YAML, expected substrings of the one message line)
    ("a: {type: slurm, partion: debug}", ["backends.yml:1:", "a.partion is not an option of the slurm backend",
                                          "Did you mean 'partition'?", "Valid options: partition"]),
    ("a: {type: slrum}", ["a.type must be one of local, ssh, slurm", "but got 'slrum'", "Did you mean 'slurm'?"]),
    ("a: {partition: debug}", ["a.type is required", "Add e.g. `type: slurm`"]),
    ("a: slurm", ["a must be a mapping with a type and options, but got 'slurm'"]),
    ("'bad name!': {type: slurm}", ["'bad name!' is not a valid backend name"]),
    ("a: {type: slurm, reach_server: 'no'}", ["a.reach_server must be true or false", "but got 'no'"]),
    ("a: {type: slurm, work_dir: relative/dir}", ["a.work_dir must be an absolute directory", "but got 'relative/dir'"]),
    ("a: {type: slurm, partition: 'de bug'}", ["a.partition must be a Slurm partition name", "but got 'de bug'", "sinfo -s"]),
    ("a: {type: slurm, modules: [ 'cuda 12' ]}", ["a.modules must be a list of environment modules", '["cuda 12"]']),
    ("a: {type: slurm, sbatch_lines: ['#SBATCH --exclusive']}", ["a.sbatch_lines must be a list of extra sbatch options",
                                                                 "without '#SBATCH'"]),
    ("a: {type: slurm, poll_min_s: 0}", ["a.poll_min_s must be a number of seconds > 0"]),
    ("a: {type: slurm, poll_min_s: 10, poll_max_s: 5}", ["poll_max_s (5) is below poll_min_s (10)"]),
    ("a: {type: slurm, login_host: login01}", ["login_host needs work_dir"]),
    ("a: {type: slurm, login_port: 70000}", ["a.login_port must be a TCP port from 1 to 65535", "but got 70000"]),
    ("a: {type: slurm, server_url: 'login01:8765'}", ["a.server_url must be the server's URL", "http:// or https://"]),
    ("a: {type: slurm, tasks_per_node: 0}", ["a.tasks_per_node must be an integer ≥ 1"]),
    ("a: {type: slurm, partition: 5}", ["a.partition must be a Slurm partition name", "but got 5"]),
    ("local: {type: slurm}", ["local.type must be local", "reserved for this machine"]),
    ("a: {type: local, cpus: -1}", ["a.cpus is invalid (input should be greater than 0), but got -1"]),
    ("a: {type: slurm}\na: {type: local}", ["a is set twice"]),
    ("- a\n- b", ["must be a mapping from backend names"]),
    ("a: {type: slurm, partition: [debug}", ["invalid YAML"]),
]


@pytest.mark.parametrize(("text", "expected"), BAD, ids=[b[0][:40] for b in BAD])
def test_bad_entries_are_refused_with_field_rule_value_and_fix(text: str, expected: list[str]) -> None:
    with pytest.raises(SpecError) as e:
        parse_backends(text)
    for part in expected:
        assert part in e.value.message, e.value.message
    assert e.value.hint


def test_every_problem_is_reported_on_its_own_line() -> None:
    text = textwrap.dedent("""\
        a:
          type: slurm
          partion: debug
        b:
          type: slurm
          poll_min_s: -1
        """)
    with pytest.raises(SpecError) as e:
        parse_backends(text, "backends.yml")
    lines = e.value.message.splitlines()
    assert lines[0].startswith("backends.yml:3: a.partion")
    assert lines[1].startswith("backends.yml:6: b.poll_min_s must be")


def test_add_remove_and_refusals(tmp_path: Path) -> None:
    path = tmp_path / "backends.yml"
    add_backend(path, "slurm-dev", "slurm", {"partition": "debug"})
    with pytest.raises(SpecError, match="already configured"):
        add_backend(path, "slurm-dev", "slurm", {})
    add_backend(path, "slurm-dev", "slurm", {"partition": "gpu"}, replace=True)
    with pytest.raises(SpecError, match="not an option"):
        add_backend(path, "other", "slurm", {"partion": "x"})
    assert dict(load_backends(path)["slurm-dev"].options) == {"partition": "gpu"}
    assert "other" not in load_backends(path)
    remove_backend(path, "slurm-dev")
    assert list(load_backends(path)) == ["local"]
    with pytest.raises(NotFound, match="Configured backends: local"):
        remove_backend(path, "slurm-dev")
    with pytest.raises(SpecError, match="always exists"):
        remove_backend(path, "local")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float = 1.1) -> None:
        self.now += seconds


def test_the_pool_builds_from_the_file_and_reloads_it(tmp_path: Path) -> None:
    path = tmp_path / "backends.yml"
    clock = FakeClock()
    pool = BackendPool(path=path, clock=clock)
    try:
        assert isinstance(pool.get("local"), LocalBackend)
        with pytest.raises(SpecError) as e:
            pool.get("hpc")
        assert "Configured backends: local." in e.value.message
        add_backend(path, "hpc", "slurm", {"partition": "debug", "work_dir": str(tmp_path / "w")})
        with pytest.raises(SpecError):
            pool.get("hpc")  # the pool looks at the file at most once a second
        clock.tick()
        first = pool.get("hpc")
        assert isinstance(first, SlurmBackend) and first.options.partition == "debug"
        assert pool.get("hpc") is first
        add_backend(path, "hpc", "slurm", {"partition": "gpu", "work_dir": str(tmp_path / "w")}, replace=True)
        os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
        clock.tick()
        second = pool.get("hpc")
        assert second is not first and second.options.partition == "gpu"
        remove_backend(path, "hpc")
        clock.tick()
        with pytest.raises(SpecError, match="No backend named 'hpc'"):
            pool.get("hpc")
    finally:
        pool.close()


def test_an_invalid_edit_keeps_the_backends_read_before(tmp_path: Path) -> None:
    path = tmp_path / "backends.yml"
    path.write_text("hpc: {type: slurm, partition: debug}\n")
    clock = FakeClock()
    pool = BackendPool(path=path, clock=clock)
    try:
        assert pool.get("hpc").options.partition == "debug"
        path.write_text("hpc: {type: slurm, partion: gpu}\nnew: {type: slurm}\n")
        os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
        clock.tick()
        assert pool.get("hpc").options.partition == "debug"  # still served
        with pytest.raises(SpecError) as e:
            pool.get("new")
        assert "was changed but is invalid" in e.value.message and "hpc.partion is not an option" in e.value.message
    finally:
        pool.close()
    path.write_text("- not a mapping\n")
    with pytest.raises(SpecError, match="must be a mapping"):
        BackendPool(path=path).get("local")  # nothing read before: the error itself


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RUNYARD_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "runyard.cli", *args], env=env, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL, check=False)


def test_cli_add_list_remove(tmp_path: Path) -> None:
    home = tmp_path / "home"
    res = _cli(home, "backends", "add", "hpc", "--type", "slurm", "--set", "partition=debug", "--set", "reach_server=false",
               "--set", "poll_min_s=0.5", "--set", "modules=[cuda/12.1, python/3.11]")
    assert res.returncode == 0, res.stderr
    res = _cli(home, "backends", "list", "--json")
    local_policy = "admins only when sign-in is on (no allow:); everyone on a single-user server"
    assert json.loads(res.stdout) == [
        {"name": "local", "type": "local", "options": {}, "policy": local_policy},
        {"name": "hpc", "type": "slurm", "options": {"partition": "debug", "reach_server": False, "poll_min_s": 0.5,
                                                     "modules": ["cuda/12.1", "python/3.11"]},
         "policy": "admins and the editors of the project"}]
    res = _cli(home, "backends")
    assert "hpc" in res.stdout and "slurm" in res.stdout
    res = _cli(home, "backends", "add", "bad", "--type", "slurm", "--set", "partion=debug")
    assert res.returncode == 1 and "bad.partion is not an option" in res.stderr and "Hint:" in res.stderr
    res = _cli(home, "backends", "add", "bad", "--type", "slurm", "--set", "novalue")
    assert res.returncode == 1 and "--set takes KEY=VALUE" in res.stderr
    res = _cli(home, "backends", "test", "nope")
    assert res.returncode == 1 and "No backend named 'nope'. Configured backends: hpc, local." in res.stderr
    res = _cli(home, "backends", "test", "local")
    assert res.returncode == 0 and "ok" in res.stdout and "all 3 checks passed" in res.stdout
    res = _cli(home, "backends", "remove", "hpc")
    assert res.returncode == 0
    assert json.loads(_cli(home, "backends", "list", "--json").stdout) == [
        {"name": "local", "type": "local", "options": {}, "policy": local_policy}]


def test_submission_rejects_an_unknown_backend_with_the_configured_names(tmp_path: Path) -> None:
    home = tmp_path / "srv"
    home.mkdir()
    (home / "backends.yml").write_text("slurm-dev: {type: slurm, partition: debug}\n")
    server = LiveServer(home)
    server.start()
    try:
        with Client(server.url) as client:
            config = {"project": "cfg", "command": "true", "backend": "slurm-prod"}
            with pytest.raises(SpecError) as e:
                client.create_experiment("cfg", "x", config)
            assert "No backend named 'slurm-prod'" in e.value.message
            assert "Configured backends: local, slurm-dev." in e.value.message
            assert "Did you mean 'slurm-dev'?" in (e.value.hint or "")
            with pytest.raises(SpecError):
                client.create_experiment("cfg", "x", {"project": "cfg", "command": "true"}, backend="nope")
    finally:
        server.stop()
        stop_agent(agent_dir(home))  # none should have started; stopped by pid if one did


def test_unknown_key_in_a_nested_entry_is_matched_against_that_entry_keys() -> None:
    """A misspelt key inside an SSH host is suggested from the host's keys, not from the backend's."""
    with pytest.raises(SpecError) as e:
        parse_backends("gpu: {type: ssh, hosts: [{host: a, prot: 22}]}\n")
    message = e.value.message
    assert "gpu.hosts.0.prot is not an option of the ssh backend" in message, message
    assert "Did you mean 'port'?" in message and "'hosts'" not in message, message
    assert "Valid options: host (default: required), port (default: 22), user" in message, message

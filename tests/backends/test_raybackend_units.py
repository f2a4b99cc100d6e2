"""The Ray backend's options, job specs, states and failure modes; the tests that need a cluster use the session's.

Pure parts (options, the job a launch becomes, the state table) run without Ray. A dashboard
that does not answer is a real socket on 127.0.0.1 that accepts and never replies, or a port
nothing listens on. Ray being absent cannot be arranged in this environment (it is installed
for the other tests): ``sys.modules`` hides it, and the test says so.
"""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Callable, Iterator

import pytest

from runyard.backends.base import EngineStatus, Feature, Resources, RunLaunch, TaskSlot
from runyard.backends.config import parse_backends
from runyard.backends.ray import RayBackend, RayBackendOptions, far_launch, job_specs, map_job
from runyard.backends.ray._states import combine
from runyard.errors import BackendError, SpecError, SubmitError
from runyard.launch import task_slots
from runyard.testing import RayCluster, free_port
from runyard.testing.backend_contract import TIMEOUT_S, stdout_of, wait_terminal

ADDRESS = "http://127.0.0.1:8265"


def _launch(**kwargs) -> RunLaunch:
    fields = {"run_id": 12, "attempt": 2, "project": "p", "experiment_id": 3, "command": "python train.py",
              "snapshot_id": "s1", "server_url": "http://127.0.0.1:8765", "token": "secret-token",
              "env": {"RUNYARD_TOKEN": "secret-token"}, "grace_period_s": 10.0}
    fields.update(kwargs)
    return RunLaunch(**fields)


def _ray_run(**kwargs) -> RunLaunch:
    desc = {"framework": "ray", "roles": {
        "head": {"replicas": 1, "resources": {"cpus": 4.0, "memory_mb": 0, "gpus": 0}},
        "worker": {"replicas": 2, "resources": {"cpus": 4.0, "memory_mb": 0, "gpus": 0}},
        "job": {"replicas": 1, "resources": {"cpus": 0.5, "memory_mb": 256, "gpus": 0}}}}
    return _launch(tasks=task_slots(desc), distributed=desc, **kwargs)


def _pytorch_run(**kwargs) -> RunLaunch:
    each = {"cpus": 0.5, "memory_mb": 0, "gpus": 0}
    desc = {"framework": "pytorch", "roles": {"master": {"replicas": 1, "resources": each},
                                              "worker": {"replicas": 1, "resources": each}}}
    return _launch(tasks=task_slots(desc), distributed=desc, resources=Resources(cpus=0.5), **kwargs)


# ------------------------------------------------------------------ options
@pytest.mark.parametrize(("options", "fragment"), [
    ({"address": ADDRESS, "tokn": "x"}, "ray.tokn is not an option of the ray backend. Did you mean 'token'?"),
    ({}, "ray.address is required"),
    ({"address": "ray-head:8265"}, "ray.address must be the Ray dashboard's URL, http://HOST:8265"),
    ({"address": ADDRESS, "reach_server": False}, "reach_server: false is not possible with the ray backend"),
    ({"address": ADDRESS, "token": "a", "token_file": "/x"}, "token and token_file are both set"),
    ({"address": ADDRESS, "runtime_env": {"working_dir": "."}}, "ray.runtime_env.working_dir is not an option"),
    ({"address": ADDRESS, "runtime_env": {"pip": ["x"], "conda": "y"}},
     "ray.runtime_env is invalid (it sets pip and conda; Ray takes one of pip, uv and conda)"),
    ({"address": ADDRESS, "runtime_env": {"env_vars": {"RUNYARD_TOKEN": "x"}}},
     "ray.runtime_env.env_vars is invalid (the variable RUNYARD_TOKEN is Runyard's own"),
    ({"address": ADDRESS, "entrypoint_resources": {"CPU": 1}},
     "ray.entrypoint_resources is invalid (the resource CPU is set by the run's resources"),
    ({"address": ADDRESS, "name_prefix": "Team A"}, "ray.name_prefix must be lower-case letters, digits and '-'"),
])
def test_bad_options_name_the_problem_and_the_fix(options: dict, fragment: str) -> None:
    with pytest.raises(SpecError) as e:
        RayBackend(options)
    assert fragment in e.value.message, e.value.message
    assert e.value.hint


def test_a_backends_yml_entry_of_type_ray_is_checked_with_its_line() -> None:
    entries = parse_backends(f"cluster:\n  type: ray\n  address: {ADDRESS}\n  token_file: ~/.ray/auth_token\n")
    assert entries["cluster"].type == "ray" and entries["cluster"].options["address"] == ADDRESS
    with pytest.raises(SpecError) as e:
        parse_backends("cluster:\n  type: ray\n  address: http://h:8265\n  one_job_per_tsk: true\n")
    assert e.value.message.startswith("backends.yml:4: cluster.one_job_per_tsk is not an option of the ray backend. "
                                      "Did you mean 'one_job_per_task'?"), e.value.message


def test_without_ray_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from runyard.backends.registry import get_backend

    # Ray is installed here (the other tests run it): hiding it from the import system stands for a server without it.
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(SpecError) as e:
        get_backend("ray", {"address": ADDRESS})
    assert "ray[default]" in e.value.message and "pip install 'runyard[ray]'" in (e.value.hint or ""), e.value
    # The entry itself is valid: backends.yml is checked without Ray.
    assert parse_backends(f"c: {{type: ray, address: '{ADDRESS}'}}\n")["c"].type == "ray"


# ------------------------------------------------------------- job specs
def test_resources_map_to_the_entrypoint_and_the_token_stays_out_of_the_job_spec() -> None:
    options = RayBackendOptions(address=ADDRESS, python="/opt/py/bin/python", entrypoint_resources={"accel": 0.5},
                                runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    launch = _launch(resources=Resources(cpus=2.0, memory_mb=512, gpus=1))
    (spec,) = job_specs(launch, options)
    kwargs = spec.submit_kwargs()
    assert kwargs["submission_id"] == "runyard-12-2-main-0"
    assert (kwargs["entrypoint_num_cpus"], kwargs["entrypoint_num_gpus"], kwargs["entrypoint_memory"]) == (2.0, 1, 512 * 2**20)
    assert kwargs["entrypoint_resources"] == {"accel": 0.5}
    assert kwargs["entrypoint"] == ('chmod 600 .runyard/launch.json && exec /opt/py/bin/python -m runyard.runner exec '
                                    '--launch .runyard/launch.json --workdir "$PWD/work-main-0"')
    # Ray waits the run's grace period (and a margin) between stop_job's SIGTERM and its SIGKILL.
    assert kwargs["runtime_env"]["env_vars"] == {"OMP_NUM_THREADS": "1", "RAY_JOB_STOP_WAIT_TIME_S": "15"}
    assert "secret-token" not in repr(kwargs)  # the token travels in the launch file only
    assert kwargs["metadata"]["runyard_cpus"] == "2" and kwargs["metadata"]["runyard_project"] == "p"


def test_a_ray_run_becomes_its_driver_alone() -> None:
    options = RayBackendOptions(address=ADDRESS, server_url="http://runyard.internal:8765")
    launch = _ray_run()
    (spec,) = job_specs(launch, options)
    assert spec.submission_id == "runyard-12-2-job-0"
    assert spec.resources == Resources(0.5, 256, 0)  # the job role's, not the head's or the workers'
    assert "--task-index" not in spec.entrypoint and spec.entrypoint.split(" exec ")[1].startswith("python3 -m")
    far = far_launch(launch, options)
    assert far.tasks == (TaskSlot("job", 0),) and far.distributed is None
    assert far.env["RUNYARD_FRAMEWORK"] == "ray" and far.env["RUNYARD_SERVER"] == "http://runyard.internal:8765"
    assert far.snapshot_id == "s1"  # fetched by the runner
    assert far_launch(launch, options.model_copy(update={"snapshot": "working_dir"})).snapshot_id is None
    assert RayBackend(options).started_roles("ray") == frozenset({"job"})


def test_multi_task_runs_need_one_job_per_task() -> None:
    backend = RayBackend({"address": ADDRESS})
    problems = backend.unsupported(_pytorch_run())
    assert set(problems) == {Feature.MULTI_TASK} and "one_job_per_task" in problems[Feature.MULTI_TASK]
    with pytest.raises(SubmitError, match="multi_task"):
        backend.submit(_pytorch_run())
    assert backend.unsupported(_ray_run()) == {}
    assert backend.unsupported(_pytorch_run(options={"one_job_per_task": True})) == {}
    specs = job_specs(_pytorch_run(), RayBackendOptions(address=ADDRESS, one_job_per_task=True))
    assert [(s.submission_id, s.entrypoint.split("--task-index ")[1]) for s in specs] == [
        ("runyard-12-2-master-0", "0"), ("runyard-12-2-worker-0", "1")]
    backend.close()


def test_the_scheduler_counts_only_the_driver_of_a_ray_run() -> None:
    from runyard.scheduler._dispatch import run_resources, task_shapes
    from runyard.spec import validate_config

    spec = validate_config({"project": "p", "command": "python job.py", "resources": {"cpus": 1},
                            "distributed": {"framework": "ray", "worker": {"replicas": 2}}})
    backend = RayBackend({"address": ADDRESS})
    assert run_resources(spec) == Resources(4.0, 0, 0)  # head, two workers and the job, elsewhere
    assert run_resources(spec, backend) == Resources(1.0, 0, 0)
    assert task_shapes(spec, backend) == [Resources(1.0, 0, 0)]
    backend.close()


# ------------------------------------------------------------------ states
@pytest.mark.parametrize(("status", "kwargs", "expected", "reason"), [
    ("PENDING", {"message": "Job has not started yet."}, EngineStatus.PENDING,
     "pending: Ray has not started the job: Job has not started yet."),
    ("RUNNING", {}, EngineStatus.RUNNING, ""),
    ("SUCCEEDED", {"exit_code": 0}, EngineStatus.SUCCEEDED, ""),
    ("FAILED", {"exit_code": 3}, EngineStatus.FAILED, "exit code 3"),
    ("FAILED", {"error_type": "RUNTIME_ENV_SETUP_FAILURE", "message": "pip failed\nno such package"},
     EngineStatus.FAILED, "RUNTIME_ENV_SETUP_FAILURE: the Ray cluster could not start the job (pip failed | no such package)"),
    ("STOPPED", {}, EngineStatus.CANCELED, "stopped (stop_job)"),
    ("FAILED", {"exit_code": 143, "cancel_requested": True}, EngineStatus.CANCELED, "stopped (the job ended FAILED after the cancel)"),
    ("ZOMBIE", {}, EngineStatus.UNKNOWN, "Ray job status 'ZOMBIE' is not known to Runyard"),
])
def test_ray_job_statuses_map_to_engine_states(status: str, kwargs: dict, expected: EngineStatus, reason: str) -> None:
    state = map_job(status, **kwargs)
    assert state.status is expected and state.raw == status
    assert state.reason.startswith(reason), state.reason


def test_an_attempt_of_several_jobs_ends_with_its_first_failure() -> None:
    ok, run, bad = map_job("SUCCEEDED"), map_job("RUNNING"), map_job("FAILED", exit_code=2)
    assert combine([("master-0", ok), ("worker-0", run)]).status is EngineStatus.RUNNING
    assert combine([("master-0", ok), ("worker-0", ok)]).status is EngineStatus.SUCCEEDED
    failed = combine([("master-0", run), ("worker-0", bad)])
    assert (failed.status, failed.exit_code, failed.reason) == (EngineStatus.FAILED, 2, "task worker-0: exit code 2")


# --------------------------------------------------- a dashboard that is down
@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts connections and never answers (a hung dashboard)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        sock.close()


@pytest.mark.parametrize("kind", ["closed", "silent"])
def test_a_dashboard_that_does_not_answer_is_unknown_never_failed(kind: str, request: pytest.FixtureRequest) -> None:
    port = request.getfixturevalue("silent_port") if kind == "silent" else free_port()
    backend = RayBackend({"address": f"http://127.0.0.1:{port}", "request_timeout_s": 1})
    try:
        states = backend.poll(["runyard-5-1-main-0", "runyard-6-1-master-0,runyard-6-1-worker-0"])
        for state in states.values():
            assert state.status is EngineStatus.UNKNOWN, state
            assert state.reason.startswith(f"dashboard unreachable: the Ray dashboard at http://127.0.0.1:{port} "), state
            assert "did not answer" in state.reason if kind == "silent" else "cannot be reached" in state.reason
        with pytest.raises(BackendError, match="Ray dashboard"):
            backend.capacity()
        with pytest.raises(BackendError, match="Ray dashboard"):
            backend.cancel("runyard-5-1-main-0")
        with pytest.raises(SubmitError) as e:
            backend.submit(_launch())
        assert "curl http://127.0.0.1:" in (e.value.hint or "")
    finally:
        backend.close()


# ------------------------------------------------------ on the real cluster
def test_a_wrong_token_is_named_by_check_and_poll(ray_cluster: RayCluster) -> None:
    backend = RayBackend({"address": ray_cluster.dashboard_url, "token": "not-the-token"})
    try:
        checks = {c.name: c for c in backend.check()}
        assert not checks["dashboard"].ok and "refused the credentials" in checks["dashboard"].detail, checks
        assert "token" in checks["dashboard"].hint
        state = backend.poll(["runyard-1-1-main-0"])["runyard-1-1-main-0"]
        assert state.status is EngineStatus.UNKNOWN and "refused the credentials" in state.reason, state
    finally:
        backend.close()
    good = RayBackend({"address": ray_cluster.dashboard_url, "token": ray_cluster.token})
    try:
        checks = {c.name: c for c in good.check()}
        assert all(c.ok for c in checks.values()), checks
        assert checks["resources"].detail.startswith("1 node(s): 2 CPUs"), checks["resources"]
    finally:
        good.close()


def test_one_job_per_task_runs_every_task_as_its_own_ray_job(ray_cluster: RayCluster, make_launch: Callable) -> None:
    from runyard.client import Client

    backend = RayBackend({"address": ray_cluster.dashboard_url, "token": ray_cluster.token, "python": sys.executable,
                          "one_job_per_task": True, "name_prefix": "units"})
    desc = _pytorch_run().distributed
    launch = make_launch('echo "task $RUNYARD_TASK_ROLE-$RUNYARD_TASK_RANK of $WORLD_SIZE"', resources=Resources(cpus=0.5),
                         tasks=task_slots(desc), distributed=desc)
    job_id = backend.submit(launch)
    try:
        assert job_id == f"units-{launch.run_id}-1-master-0,units-{launch.run_id}-1-worker-0"
        assert backend.submit(launch) == job_id  # the same attempt again: adopted, not submitted twice
        state = wait_terminal(backend, job_id, TIMEOUT_S)
        assert state.status is EngineStatus.SUCCEEDED, state
        with Client(launch.server_url) as client:
            run = client.get_run(launch.run_id)
            assert sorted(stdout_of(client, launch.run_id)) == ["task master-0 of 2", "task worker-0 of 2"]
        assert {f"{t['role']}-{t['rank']}": t["status"] for t in run["tasks"]} == {"master-0": "succeeded",
                                                                                  "worker-0": "succeeded"}
    finally:
        backend.cancel(job_id)
        backend.close()

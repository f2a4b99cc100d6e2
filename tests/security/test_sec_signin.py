"""Sign-in: the attempt limit holds under concurrent guesses (also across server processes
sharing a database), and password hashing is bounded so sign-ins do not starve other requests."""

from __future__ import annotations

import itertools
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sec_helpers import MAX_FAILURES, SecServer, start_sec_server, token_for

from runyard.errors import RateLimited
from runyard.store import AuthStore, make_engine, upgrade
from runyard.testing.pytest_plugin import LiveServers

V1 = "/api/v1"
_n = itertools.count()


def _burst(urls: list[str], username: str, n: int) -> list[httpx.Response]:
    """``n`` wrong-password sign-ins at once (spread over ``urls``), released together."""
    start = threading.Barrier(n)

    def attempt(i: int) -> httpx.Response:
        start.wait()
        return httpx.post(urls[i % len(urls)] + V1 + "/auth/login", json={"username": username, "password": f"wrong-{i}-pw"},
                          timeout=60)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(attempt, range(n)))


def _new_user(sec: SecServer, prefix: str) -> str:
    name = f"{prefix}{next(_n)}"
    with sec.admin() as admin:
        admin.create_user(name, "right-pw-1234")
    return name


def test_twelve_concurrent_bad_sign_ins_check_no_more_than_the_limit(sec_server: SecServer) -> None:
    name = _new_user(sec_server, "guess")
    answers = _burst([sec_server.url], name, 12)
    codes = sorted(r.status_code for r in answers)
    assert codes == [401] * MAX_FAILURES + [429] * (12 - MAX_FAILURES), codes
    limited = next(r for r in answers if r.status_code == 429)
    assert int(limited.headers["Retry-After"]) > 0 and "Too many failed sign-ins" in limited.json()["message"]
    # The limit now holds for the right password too, until the window passes.
    right = httpx.post(sec_server.url + V1 + "/auth/login", json={"username": name, "password": "right-pw-1234"}, timeout=30)
    assert right.status_code == 429
    with sec_server.admin() as admin:  # only the checked attempts are in the audit log
        failed = [e for e in admin.audit(action="login", limit=500) if e["target"] == name and not e["success"]]
    assert len(failed) == MAX_FAILURES


def test_the_limit_holds_across_server_processes_sharing_the_database(module_live_servers: LiveServers,
                                                                      sec_server: SecServer) -> None:
    other = module_live_servers.start(f"{sec_server.server.home.name}-second", database_url=sec_server.database_url,
                                      env={k: v for k, v in sec_server.server.env.items() if k.startswith("RUNYARD_")
                                           and k not in ("RUNYARD_HOME", "RUNYARD_DATABASE_URL")})
    name = _new_user(sec_server, "spread")
    codes = sorted(r.status_code for r in _burst([sec_server.url, other.url], name, 12))
    assert codes == [401] * MAX_FAILURES + [429] * (12 - MAX_FAILURES), codes


def test_a_right_password_gives_its_attempt_back(sec_server: SecServer) -> None:
    name = _new_user(sec_server, "good")
    for _ in range(MAX_FAILURES + 3):  # more sign-ins than the limit, all right: none is refused
        token_for(sec_server.url, name, "right-pw-1234")


def test_password_checks_run_at_most_the_configured_number_at_once(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    from argon2 import PasswordHasher

    from runyard.store import _auth

    # Cheap hashes: the bound on concurrent hashing is under test, not argon2's cost.
    monkeypatch.setattr(_auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    _auth._dummy_hash.cache_clear()
    engine = make_engine(f"sqlite:///{tmp_path / 'gate.db'}")
    upgrade(engine)
    store = AuthStore(engine)
    store.create_user("gate", "gate-pw-1234")
    monkeypatch.delenv("RUNYARD_LOGIN_CONCURRENCY", raising=False)
    monkeypatch.setenv("RUNYARD_LOGIN_WAIT_S", "300")  # a loaded machine: the bound is under test, not the wait
    monkeypatch.setattr(_auth, "hash_gate", _auth._HashGate())
    assert _auth.hash_gate.slots == 2
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: store.verify_password("gate" if i % 2 else "nobody", "wrong-pw-123"), range(64)))
    assert results == [None] * 64
    assert 1 <= _auth.hash_gate.peak <= 2  # 8 threads at once, never more than 2 hashing

    # A caller that cannot get a slot in time gets 429 with a Retry-After, not an endless wait.
    monkeypatch.setenv("RUNYARD_LOGIN_CONCURRENCY", "1")
    monkeypatch.setenv("RUNYARD_LOGIN_WAIT_S", "0.05")
    gate = _auth._HashGate()
    monkeypatch.setattr(_auth, "hash_gate", gate)
    with gate.slot(), pytest.raises(RateLimited, match="busy checking other sign-ins") as e:
        store.verify_password("gate", "gate-pw-1234")
    assert e.value.retry_after_s is not None and e.value.retry_after_s >= 1
    assert store.verify_password("gate", "gate-pw-1234") is not None
    engine.dispose()
    _auth._dummy_hash.cache_clear()  # made with the cheap hasher


@pytest.mark.slow
def test_reads_stay_fast_during_a_burst_of_bad_sign_ins(module_live_servers: LiveServers) -> None:
    sec = start_sec_server(module_live_servers, "sec-burst", None, RUNYARD_LOGIN_MAX_FAILURES="50")
    headers = {"Authorization": f"Bearer {sec.admin_token}"}
    with httpx.Client(base_url=sec.url, headers=headers, timeout=60) as c:
        c.get(V1 + "/projects").raise_for_status()
        stop = threading.Event()
        latencies: list[float] = []

        def read() -> None:
            while not stop.is_set():
                t0 = time.perf_counter()
                c.get(V1 + "/projects").raise_for_status()
                latencies.append(time.perf_counter() - t0)

        reader = threading.Thread(target=read)
        reader.start()
        try:
            answers = _burst([sec.url], "nobody-at-all", 16)
        finally:
            stop.set()
            reader.join()
    assert {r.status_code for r in answers} <= {401, 429}
    assert latencies and statistics.median(latencies) < 1.0, sorted(latencies)

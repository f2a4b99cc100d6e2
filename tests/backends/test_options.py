"""The one options parser of every backend: messages with the valid keys and defaults, and a run's own options."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from pydantic import BaseModel, ConfigDict, Field

from runyard.backends.base import BaseBackend, EngineState, Resources, RunLaunch
from runyard.backends.options import describe_options, option_problems, parse_options
from runyard.backends.slurm import SlurmBackendOptions
from runyard.errors import SpecError


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queue: str = Field("default", json_schema_extra={"rule": "a queue name", "fix": "Use e.g. queue: fast."})
    cpus: float | None = Field(None, gt=0, description="CPUs to hand out (default: the machine's)")


class _Backend(BaseBackend):
    name = "demo"
    options_model = _Options

    def submit(self, launch: RunLaunch, *, at_most: int | None = None) -> str:
        return "1"

    def poll(self, job_ids: Sequence[str], wait_s: float = 0.0) -> dict[str, EngineState]:
        return {}

    def cancel(self, job_id: str) -> None:
        return None


def _launch(**options: object) -> RunLaunch:
    return RunLaunch(run_id=1, attempt=1, project="p", experiment_id=None, command="true", snapshot_id=None,
                     server_url="http://127.0.0.1:1", options=options)


def test_defaults_are_described_from_the_field() -> None:
    assert describe_options(_Options) == "queue (default: 'default'), cpus (default: the machine's)"
    assert "partition (default: the cluster's default)" in describe_options(SlurmBackendOptions)
    assert "modules (default: [])" in describe_options(SlurmBackendOptions)


def test_a_misspelled_key_names_the_closest_and_every_valid_key() -> None:
    with pytest.raises(SpecError) as e:
        _Backend({"queu": "x"})
    assert e.value.message == ("Invalid options for the demo backend:\ndemo.queu is not an option of the demo backend. "
                               "Did you mean 'queue'? Valid options: queue (default: 'default'), cpus (default: the machine's).")
    assert "--type demo" in (e.value.hint or "")


def test_rules_and_fixes_feed_the_messages() -> None:
    problems = option_problems("b", _Options, {"queue": 3, "cpus": 0}, backend="demo")
    assert problems == [
        (("b", "queue"), "b.queue must be a queue name, but got 3. Use e.g. queue: fast."),
        (("b", "cpus"), "b.cpus is invalid (input should be greater than 0), but got 0. "
                        "See the demo backend's options in docs/backends.md."),
    ]
    assert parse_options(_Options, {"queue": "fast"}, backend="demo").queue == "fast"
    model = _Options(queue="q")
    assert parse_options(_Options, model, backend="demo") is model


def test_a_runs_own_options_are_laid_over_the_backends_and_checked_alike() -> None:
    backend = _Backend({"queue": "fast", "cpus": 2})
    assert backend.options_for(_launch()) is backend.options
    merged = backend.options_for(_launch(queue="slow"))
    assert (merged.queue, merged.cpus) == ("slow", 2)
    with pytest.raises(SpecError, match=r"options.cpu is not an option of the demo backend. Did you mean 'cpus'\?"):
        backend.options_for(_launch(cpu=1))


def test_hooks_have_defaults() -> None:
    backend = _Backend()
    assert backend.capacity() is None and backend.can_queue(Resources(), distributed=False) is False
    assert backend.check() == [] and backend.stop_if_idle() is False
    backend.warm()
    backend.close()
    backend.close()
    assert backend.unsupported(_launch()) == {}

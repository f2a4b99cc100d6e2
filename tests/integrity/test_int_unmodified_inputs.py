"""Bad input to the keys for code run as it is, refused with the field, the problem and the fix; and the
output parser against hostile lines (huge, NUL, lone surrogates, values too big or not numbers)."""

from __future__ import annotations

import pytest

from runyard.backends.local._cores import assign_cores
from runyard.errors import SpecError
from runyard.records.compute import RunLaunch
from runyard.runner import launch_from_dict, launch_to_dict
from runyard.runner._output_metrics import MAX_LINE_CHARS, OutputMetrics
from runyard.runner._threads import thread_env
from runyard.spec import Spec, parse_spec

BASE = "project: p\ncommand: python train.py\n"


def _error(extra: str) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(BASE + extra)
    return info.value.message


@pytest.mark.parametrize(("extra", "needle"), [
    ("output_metrics: ['loss=(?P<loss>[\\d.]+']\n",
     "runyard.yml:3: output_metrics item 1 is not a valid regex: missing ), unterminated subpattern at character 6 of "
     "'loss=(?P<loss>[\\d.]+'. Fix the regex;"),
    ("output_metrics: ['ok (?P<a>\\d)', 'x(?P<b>']\n", "output_metrics item 2 is not a valid regex"),
    ("output_metrics: ['loss [\\d.]+']\n", "has no named group to take a metric from. Name the value's group"),
    ("output_metrics: [{preset: csv}]\n", "names the preset 'csv', which does not exist. Known presets: 'key=value', "
                                          "'key: value', 'keras', 'json'"),
    ("output_metrics: [3]\n", "but each item is a regex with named groups or `{preset: NAME}`"),
    ("outputs: ['../model.pt']\n", "outputs has the pattern '../model.pt', which reaches out of the run's working "
                                   "directory with '..'"),
    ("outputs: ['ck/../../x']\n", "reaches out of the run's working directory"),
    ("outputs: ['/etc/passwd']\n", "outputs has the absolute pattern '/etc/passwd'"),
    ("outputs: ['!*.tmp']\n", "lists only excludes"),
    ("outputs_every: 1s\n", "outputs_every must be at least 10s, but got '1s'"),
    ("stop_signal: SIGSTOP\n", "stop_signal is 'SIGSTOP', which is not a signal a run is stopped with. Use one of SIGINT"),
    ("stop_grace: -1\n", "stop_grace must be 0 or longer, but got -1"),
    ("mounts: {/data: /shared/data}\n", "mounts has the absolute key '/data'"),
    ("mounts: {../data: /shared/data}\n", "mounts has the key '../data', which is not a path inside the working directory"),
    ("mounts: {data: shared/data}\n", "but the source is an absolute path on the backend"),
    ("mounts: {'a:b': /shared/data}\n", "mount paths cannot hold ':', ','"),
    ("mounts: {data: /a, data/x: /b}\n", "puts 'data/x' inside 'data', another mount"),
])
def test_bad_values_name_the_problem_and_the_fix(extra: str, needle: str) -> None:
    assert needle in _error(extra)


def test_the_keys_round_trip_through_the_stored_config_and_the_launch() -> None:
    spec = parse_spec(BASE + "output_metrics: ['v (?P<v>\\d+)', {preset: keras}]\noutputs: [model.pt, '!x']\n"
                      "outputs_every: 10m\nstop_signal: term\nstop_grace: 30s\nmounts: {data/w: /shared/w}\n")
    io = spec.task_io()
    assert io == {"output_metrics": [{"regex": "v (?P<v>\\d+)"}, {"preset": "keras"}], "outputs": ["model.pt", "!x"],
                  "outputs_every_s": 600, "stop_signal": "SIGTERM", "stop_grace_s": 30, "mounts": {"data/w": "/shared/w"}}
    assert Spec.model_validate(spec.to_config()).task_io() == io
    launch = RunLaunch(run_id=1, attempt=1, project="p", experiment_id=None, command="x", snapshot_id=None,
                       server_url="http://127.0.0.1:1", task_io=io)
    assert launch_from_dict(launch_to_dict(launch)).task_io == io
    assert parse_spec(BASE).task_io() == {}


def test_hostile_lines_are_parsed_without_harm() -> None:
    notes: list[str] = []
    parser = OutputMetrics([{"preset": "key=value"}, {"regex": r"acc (?P<acc>\S+)"}], notes.append)
    assert parser.parse("loss=" + "9" * 400) == [({"loss": None}, 0)]  # too big for a float: missing, as the SDK does
    assert parser.parse("acc NaN-ish") == []  # not a number: skipped
    assert parser.parse("loss=1 " + "x" * MAX_LINE_CHARS) == []  # a huge line is not searched
    assert parser.parse("nul \x00 loss=2 \ufffd") == [({"loss": 2.0}, 1)]
    assert parser.parse("lone \udcff surrogate loss=3") == [({"loss": 3.0}, 2)]
    assert parser.parse("\udcff=4") == []  # a name the store refuses is no metric
    assert parser.parse("n=" + "1" * 5000) == [({"n": None}, 3)]
    assert any("for metric 'acc' is not a number" in n for n in notes)
    assert any("for metric 'loss' is not a finite number; stored as missing" in n for n in notes)


def test_presets() -> None:
    parser = OutputMetrics([{"preset": "keras"}, {"preset": "json"}])
    assert parser.parse("Epoch 3/10") == []
    assert parser.parse("100/1875 [==>....] - ETA: 2s - loss: 0.5") == []  # not the end of the epoch
    assert parser.parse("1875/1875 ━━━━━━━━━━━━━━━━━━━━ 3s 1ms/step - accuracy: 0.87 - loss: 0.43") == [
        ({"accuracy": 0.87, "loss": 0.43}, 3)]
    assert parser.parse('{"step": 5, "loss": 0.1, "ok": true, "name": "x"}') == [({"loss": 0.1}, 5)]
    assert parser.parse('{"loss": 0.2}') == [({"loss": 0.2}, 0)]
    assert parser.parse("{not json}") == []
    colon = OutputMetrics([{"preset": "key: value"}])
    assert colon.parse("time: 3s, loss: 0.25, step: 9") == [({"loss": 0.25}, 9)]


def test_threads_and_cores() -> None:
    assert thread_env(2.7, {})["OMP_NUM_THREADS"] == "2"
    assert thread_env(0.1, {})["MKL_NUM_THREADS"] == "1"
    assert "OMP_NUM_THREADS" not in thread_env(4, {"OMP_NUM_THREADS": "8"})
    cores = [0, 1, 2, 3]
    assert assign_cores(1, [], cores) == [0]
    assert assign_cores(2, [[0], [1]], cores) == [2, 3]  # the free ones
    assert assign_cores(1, [[0], [1], [2], [3]], cores) == [0]  # none free: the least used is shared
    assert assign_cores(0.5, [[0, 1, 2]], cores) == [3]
    assert assign_cores(4, [], cores) == []  # the whole machine: not pinned

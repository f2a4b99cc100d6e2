"""Pruners: sensible decisions, and the same decisions as live Optuna pruners in a sweep.

The equivalence tests run the same simulated sweep twice: once through our
stateless ``decide(run, peers)`` and once through a live Optuna study (ask,
report, should_prune, tell) with the matching Optuna pruner. Equal stop steps
show that replaying stored runs (including the successive-halving rung records
we rebuild) reproduces what Optuna decides when it keeps its own state.
"""

from __future__ import annotations

import random

import optuna
import pytest

from runyard.errors import SpecError
from runyard.search import (
    AshaPruner,
    Decision,
    HyperbandPruner,
    MedianPruner,
    RunRecord,
    RunState,
    make_pruner,
)

STEPS = list(range(1, 28))  # a full run reports steps 1..27


def _curve_value(quality: float, number: int, step: int) -> float:
    noise = random.Random(f"{number}:{step}").gauss(0.0, 0.05)
    return quality + 1.0 / step + noise


def _qualities(n_runs: int) -> list[float]:
    rng = random.Random(42)
    return [rng.uniform(0.0, 2.0) for _ in range(n_runs)]


def _sweep(decide, n_runs: int, parallel: int, sign: float = 1.0) -> dict[int, int | None]:
    """Run a simulated sweep; return run number -> step it was stopped at (None: completed).

    ``parallel`` runs are active at once; on every tick each active run reports its
    next step and ``decide(number, curve, peers_by_number)`` says whether to stop it.
    """
    qualities = _qualities(n_runs)
    curves: dict[int, dict[int, float]] = {}
    states: dict[int, RunState] = {}
    stopped: dict[int, int | None] = {}
    next_number = 0
    active: list[int] = []
    while next_number < n_runs or active:
        while len(active) < parallel and next_number < n_runs:
            curves[next_number], states[next_number] = {}, RunState.ACTIVE
            active.append(next_number)
            next_number += 1
        for number in list(active):
            step = STEPS[len(curves[number])]
            curves[number][step] = sign * _curve_value(qualities[number], number, step)
            if decide(number, curves, states):
                states[number], stopped[number] = RunState.PRUNED, step
                active.remove(number)
            elif step == STEPS[-1]:
                states[number], stopped[number] = RunState.COMPLETE, None
                active.remove(number)
    return stopped


def _ours(pruner):
    def decide(number, curves, states) -> bool:
        def record(n: int) -> RunRecord:
            curve = dict(curves[n])
            value = curve[max(curve)] if states[n] is RunState.COMPLETE else None
            return RunRecord(n, {}, states[n], value, curve)

        peers = [record(n) for n in curves if n != number]
        return pruner.decide(record(number), peers) is Decision.STOP

    return decide


def _live_optuna(optuna_pruner, direction: str = "minimize"):
    study = optuna.create_study(
        study_name="runyard",
        direction=direction,
        pruner=optuna_pruner,
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    trials: dict[int, optuna.trial.Trial] = {}

    def decide(number, curves, states) -> bool:
        if number not in trials:
            trials[number] = study.ask()
            assert trials[number].number == number
        trial = trials[number]
        step = max(curves[number])
        trial.report(curves[number][step], step)
        if trial.should_prune():
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return True
        if step == STEPS[-1]:
            study.tell(trial, curves[number][step])
        return False

    return decide


@pytest.mark.parametrize("parallel", [1, 4])
@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (
            lambda: MedianPruner(n_startup_runs=3, n_warmup_steps=2, interval_steps=2),
            lambda: optuna.pruners.MedianPruner(
                n_startup_trials=3, n_warmup_steps=2, interval_steps=2
            ),
        ),
        (
            lambda: AshaPruner(min_resource=1, reduction_factor=3),
            lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
        ),
        (
            lambda: AshaPruner(min_resource=2, reduction_factor=2, min_early_stopping_rate=1),
            lambda: optuna.pruners.SuccessiveHalvingPruner(
                min_resource=2, reduction_factor=2, min_early_stopping_rate=1
            ),
        ),
        (
            lambda: HyperbandPruner(min_resource=1, max_resource=27, reduction_factor=3),
            lambda: optuna.pruners.HyperbandPruner(
                min_resource=1, max_resource=27, reduction_factor=3
            ),
        ),
    ],
    ids=["median", "asha", "asha-shifted", "hyperband"],
)
def test_decisions_match_live_optuna(ours, theirs, parallel: int) -> None:
    expected = _sweep(_live_optuna(theirs()), n_runs=30, parallel=parallel)
    got = _sweep(_ours(ours()), n_runs=30, parallel=parallel)
    assert got == expected
    assert any(step is not None for step in got.values()), "the sweep should stop some runs"


def test_mode_max_matches_live_optuna() -> None:
    expected = _sweep(
        _live_optuna(
            optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3), "maximize"
        ),
        n_runs=20,
        parallel=2,
        sign=-1.0,
    )
    got = _sweep(_ours(AshaPruner(1, 3, mode="max")), n_runs=20, parallel=2, sign=-1.0)
    assert got == expected


@pytest.mark.parametrize(
    "pruner",
    [
        AshaPruner(min_resource=1, reduction_factor=3),
        HyperbandPruner(min_resource=1, max_resource=27, reduction_factor=3),
    ],
    ids=["asha", "hyperband"],
)
def test_sweep_stops_poor_runs_and_keeps_the_best(pruner) -> None:
    n_runs = 40
    stopped = _sweep(_ours(pruner), n_runs=n_runs, parallel=4)
    ranked = sorted(range(n_runs), key=_qualities(n_runs).__getitem__)  # best first
    worst_third = ranked[-(n_runs // 3) :]
    assert sum(stopped[n] is not None for n in worst_third) >= 0.8 * len(worst_third)
    # Not necessarily the very best: noise and ASHA's first-rung rule can stop it (Optuna agrees).
    assert any(stopped[n] is None for n in ranked[:3]), "one of the best runs must finish"
    steps_used = sum(len(STEPS) if s is None else STEPS.index(s) + 1 for s in stopped.values())
    assert steps_used < 0.6 * n_runs * len(STEPS)


def _completed(number: int, quality: float, n_steps: int = 10) -> RunRecord:
    curve = {s: quality + 1.0 / s for s in range(1, n_steps + 1)}
    return RunRecord(number, {}, RunState.COMPLETE, curve[n_steps], curve)


def _active(number: int, quality: float, n_steps: int) -> RunRecord:
    return RunRecord(
        number, {}, RunState.ACTIVE, None, {s: quality + 1.0 / s for s in range(1, n_steps + 1)}
    )


def test_median_stops_a_clearly_worse_run_and_continues_a_good_one() -> None:
    peers = [_completed(i, q) for i, q in enumerate([0.5, 0.6, 0.7, 0.8, 0.9])]
    pruner = MedianPruner(n_startup_runs=5)
    assert pruner.decide(_active(5, 3.0, 4), peers) is Decision.STOP
    assert pruner.decide(_active(5, 0.2, 4), peers) is Decision.CONTINUE


def test_median_waits_for_startup_runs_and_warmup() -> None:
    peers = [_completed(i, q) for i, q in enumerate([0.5, 0.6, 0.7])]
    bad = _active(5, 3.0, 4)
    assert MedianPruner(n_startup_runs=5).decide(bad, peers) is Decision.CONTINUE
    assert MedianPruner(n_startup_runs=3, n_warmup_steps=5).decide(bad, peers) is Decision.CONTINUE
    assert MedianPruner(n_startup_runs=3).decide(bad, peers) is Decision.STOP


def test_median_in_max_mode() -> None:
    peers = [
        RunRecord(i, {}, RunState.COMPLETE, q, {s: q for s in range(1, 6)})
        for i, q in enumerate([0.80, 0.85, 0.90])
    ]
    low_accuracy = RunRecord(3, {}, RunState.ACTIVE, None, {1: 0.1, 2: 0.2})
    high_accuracy = RunRecord(3, {}, RunState.ACTIVE, None, {1: 0.95, 2: 0.96})
    pruner = MedianPruner(n_startup_runs=1, mode="max")
    assert pruner.decide(low_accuracy, peers) is Decision.STOP
    assert pruner.decide(high_accuracy, peers) is Decision.CONTINUE


def test_hyperband_brackets_are_a_pure_function_of_the_number() -> None:
    pruner = HyperbandPruner(min_resource=1, max_resource=27, reduction_factor=3)
    assert pruner.n_brackets == 4
    brackets = [pruner.bracket_of(n) for n in range(400)]
    assert brackets == [HyperbandPruner(1, 27, 3).bracket_of(n) for n in range(400)]
    counts = [brackets.count(b) for b in range(4)]
    assert counts[0] > counts[1] > counts[3] > 0  # the aggressive bracket gets the most runs


def test_hyperband_counts_brackets_without_float_log_error() -> None:
    # log(1000, 10) is 2.9999999999999996 in floats; the brackets must still be 4.
    assert HyperbandPruner(min_resource=1, max_resource=1000, reduction_factor=10).n_brackets == 4


@pytest.mark.parametrize("state", [RunState.COMPLETE, RunState.PRUNED, RunState.FAILED])
def test_a_finished_run_is_never_stopped(state: RunState) -> None:
    peers = [_completed(i, 0.1) for i in range(6)]
    run = RunRecord(9, {}, state, None, {s: 5.0 for s in range(1, 5)})
    assert MedianPruner(n_startup_runs=1).decide(run, peers) is Decision.CONTINUE


def test_pruners_do_not_modify_their_inputs() -> None:
    peers = [_completed(i, q) for i, q in enumerate([0.5, 0.6, 0.7])]
    run = _active(3, 3.0, 4)
    before = ([(p.number, dict(p.intermediate)) for p in peers], dict(run.intermediate))
    for pruner in (MedianPruner(1), AshaPruner(1, 2), HyperbandPruner(1, 9, 3)):
        pruner.decide(run, peers)
    assert ([(p.number, dict(p.intermediate)) for p in peers], dict(run.intermediate)) == before


def test_make_pruner_builds_each_pruner() -> None:
    assert isinstance(make_pruner("median", {"n_startup_runs": 2}, "max"), MedianPruner)
    asha = make_pruner("asha", {"reduction_factor": 2}, "min")
    assert isinstance(asha, AshaPruner) and asha.reduction_factor == 2
    hyperband = make_pruner("hyperband", {"max_resource": 81}, "min")
    assert isinstance(hyperband, HyperbandPruner) and hyperband.n_brackets == 5
    assert make_pruner("median").n_startup_runs == 5


@pytest.mark.parametrize(
    ("algorithm", "settings", "mode", "match"),
    [
        ("medain", {}, "min", r"Unknown pruner 'medain'. Known pruners: median, asha, hyperband"),
        (
            "asha",
            {"eta": 3},
            "min",
            r"Unknown setting\(s\) 'eta' for pruner 'asha'. Valid settings: "
            r"min_resource \(default 1\), reduction_factor \(default 3\)",
        ),
        ("hyperband", {}, "min", r"needs max_resource"),
        (
            "hyperband",
            {"min_resource": 10, "max_resource": 5},
            "min",
            r"max_resource to be an integer >= 10",
        ),
        (
            "asha",
            {"reduction_factor": 1},
            "min",
            r"reduction_factor to be an integer >= 2, but got reduction_factor=1",
        ),
        ("median", {"n_warmup_steps": 1.5}, "min", r"n_warmup_steps to be an integer"),
        ("median", {"interval_steps": True}, "min", r"interval_steps to be an integer"),
        ("median", {}, "maximize", r"must be 'min' or 'max'"),
    ],
)
def test_make_pruner_rejects_bad_input(algorithm, settings, mode, match) -> None:
    with pytest.raises(SpecError, match=match) as info:
        make_pruner(algorithm, settings, mode)
    assert info.value.code == "invalid_spec"
    assert info.value.hint

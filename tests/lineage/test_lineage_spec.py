"""runyard.yml's datasets: the references each run reads, and the errors that name the bad key or reference."""

from __future__ import annotations

import pytest

from runyard.errors import SpecError
from runyard.spec import parse_spec, validate_config

BASE = "project: p\ncommand: python train.py\n"


def _error(text: str) -> str:
    with pytest.raises(SpecError) as e:
        parse_spec(BASE + text)
    return e.value.message


def test_datasets_map_names_to_references_kept_through_the_stored_config() -> None:
    spec = parse_spec(BASE + "datasets: {train: 'digits:3', raw: scans@latest, other: team/digits:latest, x.y-z: d}\n")
    # @latest and :latest are the bare name (latest); a number stays.
    assert spec.datasets == {"train": "digits:3", "raw": "scans", "other": "team/digits", "x.y-z": "d"}
    config = spec.to_config()
    assert config["datasets"] == spec.datasets
    assert validate_config(config).datasets == spec.datasets
    assert parse_spec(BASE).datasets == {}


@pytest.mark.parametrize(("text", "expected"), [
    ("datasets: {train: 3}\n", "runyard.yml:3: datasets maps train to 3, but the value is a dataset reference"),
    ("datasets: {train: 'digits:x'}\n", "The version in the dataset reference 'digits:x' must be a positive number"),
    ("datasets: {train: 'digits:0'}\n", "must be a positive number"),
    ("datasets: {train: 'a/b/c:1'}\n", "The name in the dataset reference 'a/b/c:1'"),
    ("datasets: {train: 'Bad Project/d:1'}\n", "The project in the dataset reference"),
    ("datasets: {train: ''}\n", "must be non-empty text"),
    ("datasets: {'1x': digits}\n", "datasets has the name '1x', but each name is 1-64 letters"),
    ("datasets: {'a b': digits}\n", "datasets has the name 'a b'"),
    (f"datasets: {{{'n' * 65}: digits}}\n", "datasets has the name"),
    ("datasets: {a-b: x, a_b: y}\n", "names both 'a-b' and 'a_b', which share the variable RUNYARD_DATASET_A_B"),
    ("datasets: [digits]\n", "datasets must be a mapping from a name to a dataset reference"),
    ("datasets: digits\n", "datasets must be a mapping from a name to a dataset reference"),
    ("dataset: {train: digits}\n", "unknown key dataset. Valid keys at the top level"),
    ("datasets: {train: digits}\nmounts: {datasets/x: /data}\n", "mounts has the path 'datasets/x'"),
    ("datasets: {train: \"d\\0\"}\n", "datasets.train holds a NUL character"),
    ("datasets: {train: \"d\\ud800\"}\n", "datasets.train holds"),
    ("datasets: {train: 'd" + "x" * 600 + "'}\n", "at most 512 characters"),
])
def test_bad_datasets_are_refused_naming_the_key_and_the_fix(text: str, expected: str) -> None:
    message = _error(text)
    assert expected in message, message


def test_a_misspelt_datasets_key_suggests_datasets() -> None:
    assert "Did you mean 'datasets'?" in _error("datasetz: {train: digits}\n")


def test_too_many_datasets_are_refused() -> None:
    many = ", ".join(f"d{i}: x" for i in range(101))
    assert "names 101 datasets, more than the 100" in _error(f"datasets: {{{many}}}\n")

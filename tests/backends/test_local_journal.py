"""The local agent's job journal: appended records, the last one per job wins, old files folded in."""

from __future__ import annotations

import json
import time
from pathlib import Path

from runyard.backends.base import EngineStatus, Resources
from runyard.backends.local import read_job_records
from runyard.backends.local._jobs import RECORD_MAX_AGE_S, Job, JobRecords


def _job(job_id: str, status: EngineStatus) -> Job:
    job = Job(job_id, int(job_id.split(".")[0]), 1, Resources(1.0, 0, 0), [], 5.0)
    job.status = status
    return job


def test_the_last_record_of_a_job_is_its_state_across_reopening(tmp_path: Path) -> None:
    jobs = tmp_path / "agent" / "jobs"
    records = JobRecords(jobs)
    for job_id in ("1.1", "2.1"):
        records.write(job_id, _job(job_id, EngineStatus.RUNNING).record())
    records.write("1.1", _job("1.1", EngineStatus.SUCCEEDED).record())
    records.close()
    with open(jobs / "journal.jsonl", "ab") as f:
        f.write(b'{"job_id": "2.1", "status": "fail')  # cut short by a crash: ignored
    again = JobRecords(jobs)
    assert again.load("1.1").status is EngineStatus.SUCCEEDED
    assert again.load("2.1").status is EngineStatus.RUNNING
    assert again.load("3.1") is None and not again.exists("3.1") and again.exists("2.1")
    assert sorted(read_job_records(tmp_path / "agent")) == ["1.1", "2.1"]


def test_adopting_keeps_unfinished_jobs_folds_in_record_files_and_drops_old_ended_ones(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    old = _job("1.1", EngineStatus.FAILED).record()
    old["updated_at"] = time.time() - RECORD_MAX_AGE_S - 60
    (jobs / "1.1.json").write_text(json.dumps(old))  # as an agent before the journal wrote it
    (jobs / "2.1.json").write_text(json.dumps(_job("2.1", EngineStatus.RUNNING).record()))
    records = JobRecords(jobs)
    records.write("3.1", _job("3.1", EngineStatus.SUCCEEDED).record())
    adopted = records.adopt()
    assert [j.job_id for j in adopted] == ["2.1"] and adopted[0].orphan
    assert not list(jobs.glob("*.json"))
    assert sorted(read_job_records(tmp_path)) == ["2.1", "3.1"]
    records.write("2.1", _job("2.1", EngineStatus.LOST).record())
    records.close()
    assert read_job_records(tmp_path)["2.1"]["status"] == "lost"
    assert len((jobs / "journal.jsonl").read_bytes().splitlines()) == 3


def test_the_journal_is_compacted_once_it_grew_past_its_live_records(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(JobRecords, "COMPACT_MIN_BYTES", 4096)
    records = JobRecords(tmp_path)
    for _ in range(100):
        records.write("1.1", _job("1.1", EngineStatus.RUNNING).record())
    records.close()
    assert (tmp_path / "journal.jsonl").stat().st_size < 4096 + 1000
    assert JobRecords(tmp_path).load("1.1").status is EngineStatus.RUNNING

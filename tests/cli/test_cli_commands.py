"""Every CLI command's table and --json output against a real server."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runyard.client import Client


def _rows(stdout: str) -> list[list[str]]:
    """Table rows split on runs of 2+ spaces (cells themselves hold single spaces)."""
    return [re.split(r"\s{2,}", line.strip()) for line in stdout.splitlines() if line.strip()]


# ------------------------------------------------------------------- projects
def test_projects_table(seed, cli) -> None:
    res = cli("projects")
    assert res.exit_code == 0, res.output
    rows = _rows(res.stdout)
    assert rows[0] == ["NAME", "RUNS", "EXPERIMENTS", "LAST ACTIVITY", "TAGS", "DESCRIPTION"]
    demo = next(r for r in rows if r[0] == "demo")
    assert demo[1:3] == ["2", "1"]
    assert demo[3] in ("just now",) or demo[3].endswith("s ago")
    assert demo[4:] == ["benchmark, problem=classification", "A demo project"]  # a plain label shows its key alone
    assert any(r[0] == "other" for r in rows)


def test_projects_json(seed, cli) -> None:
    res = cli("projects", "--json")
    assert res.exit_code == 0, res.output
    items = json.loads(res.stdout)
    assert {p["name"] for p in items} == {"demo", "other"}
    demo = next(p for p in items if p["name"] == "demo")
    assert demo["n_runs"] == 2 and demo["n_experiments"] == 1
    assert {p["name"]: p["tags"] for p in items} == {"demo": {"benchmark": "", "problem": "classification"}, "other": {}}


@pytest.mark.parametrize(("tags", "names"), [
    (["problem=classification"], ["demo"]),
    (["problem:classification"], ["demo"]),
    (["benchmark"], ["demo"]),
    (["problem=classification", "benchmark"], ["demo"]),
    (["problem=regression"], []),
])
def test_projects_tag_filter(seed, cli, tags: list[str], names: list[str]) -> None:
    args = [a for t in tags for a in ("--tag", t)]
    res = cli("projects", *args, "--json")
    assert res.exit_code == 0, res.output
    assert [p["name"] for p in json.loads(res.stdout)] == names
    table = cli("projects", *args)
    assert table.exit_code == 0, table.output
    if names:
        assert [r[0] for r in _rows(table.stdout)[1:]] == names
    else:
        assert table.stdout.startswith(f"No projects with tag {' and '.join(tags)}.")


def test_projects_tag_filter_bad_key(seed, cli) -> None:
    res = cli("projects", "--tag", "bad key=x")
    assert res.exit_code == 1 and res.stdout == ""
    assert "Error: A tag filter is KEY or KEY:VALUE, and a project tag key must be 1-64 letters" in res.stderr
    assert "Hint: For example problem:classification (or problem=classification)" in res.stderr


def test_projects_tag_set_change_remove(fresh_seed, cli) -> None:
    res = cli("projects", "tag", "other", "problem=regression", "team=tabular", "gpu=")
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == "Project other tags: gpu, problem=regression, team=tabular."
    res = cli("projects", "tag", "other", "problem=forecasting", "--remove", "gpu", "-r", "team", "--json")
    assert res.exit_code == 0, res.output
    project = json.loads(res.stdout)
    assert (project["name"], project["tags"]) == ("other", {"problem": "forecasting"})
    res = cli("projects", "tag", "other", "note=a=b, with spaces")  # the first '=' ends the key
    assert json.loads(cli("projects", "--tag", "note", "--json").stdout)[0]["tags"]["note"] == "a=b, with spaces"
    res = cli("projects", "tag", "other", "--remove", "problem", "--remove", "note")
    assert res.stdout.strip() == "Project other has no tags."
    assert [r[0] for r in _rows(cli("projects", "--tag", "problem").stdout)[1:]] == ["demo"]


@pytest.mark.parametrize(("args", "error", "hint"), [
    (["other", "notakeyvalue"], "Error: A tag takes KEY=VALUE, but got 'notakeyvalue'.",
     "Hint: Write e.g. problem=classification, or notakeyvalue= for a tag without a value (remove a tag with --remove KEY)."),
    (["other"], "Error: Nothing to change: give tags as KEY=VALUE, or --remove KEY.",
     "Hint: For example: runyard projects tag other problem=classification"),
    (["other", "bad key=x"], "Error: A project tag key must be 1-64 letters, digits, '_', '-' or '.'", "Hint: Use a short word"),
    (["other", "problem=" + "x" * 300], "Error: The value of project tag 'problem' must be one line of at most 256 characters",
     "Hint: Shorten it"),
    (["other", "--remove", "ghost"], "Error: Project 'other' has no tag 'ghost'.", "Hint: It has no tags."),
    (["ghost", "a=b"], "Error: No project named 'ghost'.", "Hint: List projects with `runyard projects`."),
])
def test_projects_tag_bad_input(fresh_seed, cli, args: list[str], error: str, hint: str) -> None:
    res = cli("projects", "tag", *args)
    assert res.exit_code == 1, res.output
    assert res.stdout == ""
    assert error in res.stderr and hint in res.stderr, res.stderr
    assert "Traceback" not in res.output
    assert json.loads(cli("projects", "--json").stdout)[1]["tags"] == {}  # other: unchanged


def test_projects_create_with_tags(cli_server, cli) -> None:
    res = cli("projects", "create", "houses", "--tag", "problem=regression", "-t", "benchmark=", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["tags"] == {"benchmark": "", "problem": "regression"}
    res = cli("projects", "create", "bad", "--tag", "problem")
    assert res.exit_code == 1 and "Error: --tag takes KEY=VALUE, but got 'problem'." in res.stderr
    assert [p["name"] for p in json.loads(cli("projects", "--json").stdout)] == ["houses"]


def test_projects_create(cli_server, cli) -> None:
    res = cli("projects", "create", "digits", "--description", "Digit classifiers")
    assert res.exit_code == 0, res.output
    assert "Created project digits." in res.stdout
    res = cli("projects", "create", "mnist", "--json")
    assert json.loads(res.stdout)["name"] == "mnist"
    items = json.loads(cli("projects", "--json").stdout)
    assert {p["name"]: p["description"] for p in items} == {"digits": "Digit classifiers", "mnist": ""}


def test_projects_create_invalid_name_prints_message_and_hint(cli_server, cli) -> None:
    res = cli("projects", "create", "Bad Name")
    assert res.exit_code == 1
    assert res.stdout == ""
    assert "Error: A project name must be" in res.stderr
    assert "Hint: " in res.stderr
    assert "Traceback" not in res.output


def test_projects_empty(cli_server, cli) -> None:
    res = cli("projects")
    assert res.exit_code == 0
    assert "No projects yet" in res.stdout
    assert json.loads(cli("projects", "--json").stdout) == []


# ---------------------------------------------------------------- experiments
def test_experiments_table_and_json(seed, cli) -> None:
    res = cli("experiments")
    assert res.exit_code == 0, res.output
    rows = _rows(res.stdout)
    assert rows[0] == ["ID", "PROJECT", "NAME", "STATUS", "RUNS", "CREATED"]
    assert rows[1][:5] == [str(seed.exp), "demo", "sweep", "running", "1 running"]

    items = json.loads(cli("experiments", "--project", "demo", "--json").stdout)
    assert [(e["id"], e["name"], e["counts"]) for e in items] == [(seed.exp, "sweep", {"running": 1})]
    assert json.loads(cli("experiments", "--project", "other", "--json").stdout) == []
    assert "No experiments in project other" in cli("experiments", "--project", "other").stdout


def test_experiments_unknown_project(seed, cli) -> None:
    res = cli("experiments", "--project", "nope")
    assert res.exit_code == 1
    assert "Error: No project named 'nope'." in res.stderr
    assert "Hint: List projects with `runyard projects`." in res.stderr


# ------------------------------------------------------------------------- ls
def test_ls_table(seed, cli) -> None:
    res = cli("ls")
    assert res.exit_code == 0, res.output
    rows = _rows(res.stdout)
    assert rows[0] == ["ID", "PROJECT", "NAME", "STATUS", "DURATION", "PARAMS", "acc", "loss", "CREATED"]
    by_id = {r[0]: r for r in rows[1:]}
    done = by_id[str(seed.done)]
    assert done[1:4] == ["demo", "baseline", "succeeded"]
    assert re.fullmatch(r"\d+(ms|s)", done[4])
    assert done[5] == "layers=[64,32] lr=0.1 optimizer=adam"
    assert done[6:8] == ["0.875", "0.25"]
    active = by_id[str(seed.active)]
    assert active[1:4] == ["demo", "trial-1", "running"]
    assert active[5] == "lr=0.01"
    assert active[6:8] == ["-", "-"]
    assert [r[0] for r in rows[1:]] == [str(seed.active), str(seed.done)]  # newest first


def test_ls_json_is_the_api_page(seed, cli) -> None:
    res = cli("ls", "--json")
    assert res.exit_code == 0, res.output
    page = json.loads(res.stdout)
    assert set(page) == {"items", "total", "offset", "limit"}
    assert page["total"] == 2
    done = next(r for r in page["items"] if r["id"] == seed.done)
    assert done["params"] == {"lr": 0.1, "layers": [64, 32], "optimizer": "adam"}
    assert done["metrics"]["loss"]["min"] == 0.25


def test_ls_filters_sort_and_paging(seed, cli) -> None:
    def ids(*a: str) -> list[int]:
        return [r["id"] for r in json.loads(cli("ls", "--json", *a).stdout)["items"]]

    assert ids("--status", "succeeded") == [seed.done]
    assert ids("--status", "succeeded", "--status", "running") == [seed.active, seed.done]
    assert ids("--experiment", str(seed.exp)) == [seed.active]
    assert ids("--project", "other") == []
    assert ids("--filter", "params.lr >= 0.05") == [seed.done]
    assert ids("--filter", "metrics.loss.min < 0.5", "--filter", "tags.team = vision") == [seed.done]
    assert ids("--sort", "params.lr asc") == [seed.active, seed.done]
    assert ids("--sort", "params.lr desc") == [seed.done, seed.active]
    assert ids("--limit", "1") == [seed.active]
    assert ids("--limit", "1", "--offset", "1") == [seed.done]

    res = cli("ls", "--limit", "1")
    assert "Runs 1–1 of 2. Next page: --offset 1." in res.stdout
    assert "No runs match" in cli("ls", "--project", "other").stdout


def test_ls_bad_filter_and_status(seed, cli) -> None:
    res = cli("ls", "--status", "bogus")
    assert res.exit_code == 1
    assert "Error: Unknown run status 'bogus'." in res.stderr
    assert "Hint: Use one of: queued, starting, running" in res.stderr
    res = cli("ls", "--filter", "params.lr >>> 1")
    assert res.exit_code == 1
    assert "Error: " in res.stderr and "Traceback" not in res.output


def test_ls_caps_metric_columns(cli_server, cli) -> None:
    with Client(cli_server.url) as c:
        c.create_project("wide")
        run = c.create_run("wide")["id"]
        keys = [f"m{i}" for i in range(9)]
        c.log_metrics(run, keys, [0] * 9, [float(i) for i in range(9)], [time.time()] * 9)
    header = _rows(cli("ls").stdout)[0]
    assert header[6:-1] == keys[:6]


# --------------------------------------------------------------------- status
def test_status_line_and_json(seed, cli) -> None:
    res = cli("status", str(seed.done))
    assert res.exit_code == 0, res.output
    assert re.fullmatch(rf"Run {seed.done} \(baseline\): succeeded (just now|\d+[smhd] ago) after \d+(ms|s), exit code 0\n",
                        res.stdout), res.stdout
    res = cli("status", str(seed.active))
    # The session's shared seed may be minutes old by now: any duration fmt_duration writes.
    assert re.fullmatch(rf"Run {seed.active} \(trial-1\): running for (\d+ms|\d+s|\d+m\d\ds|\d+h\d\dm|\d+d\d\dh)\n",
                        res.stdout), res.stdout

    data = json.loads(cli("status", str(seed.done), "--json").stdout)
    assert data["status"] == "succeeded" and data["exit_code"] == 0 and data["id"] == seed.done


def test_status_shows_message(fresh_seed, cli) -> None:
    fresh_seed.client.update_run(fresh_seed.active, "failed", message="OOM on worker-1", exit_code=137)
    out = cli("status", str(fresh_seed.active)).stdout
    assert "failed" in out and "exit code 137" in out and "— OOM on worker-1" in out


def test_status_of_a_queued_run(fresh_seed, cli) -> None:
    run = fresh_seed.client.create_run("demo", name="waiting", status="queued")["id"]
    assert re.fullmatch(rf"Run {run} \(waiting\): queued for \d+(ms|s)\n", cli("status", str(run)).stdout)


# ----------------------------------------------------------------------- info
def test_info_table(seed, cli) -> None:
    res = cli("info", str(seed.done))
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert out.startswith(f"Run {seed.done} (baseline)\n")
    lines = [ln.strip() for ln in out.splitlines()]
    assert re.search(r"^status\s+succeeded\s*$", out, re.MULTILINE)
    assert re.search(r"^exit code\s+0\s*$", out, re.MULTILINE)
    assert re.search(r"^project\s+demo\s*$", out, re.MULTILINE)
    assert re.search(r"^duration\s+\d+(ms|s)\s*$", out, re.MULTILINE)
    for section in ("Params", "Metrics", "Tags", "Artifacts"):
        assert section in lines
    assert _rows(out)[_rows(out).index(["KEY", "LAST", "MIN", "MAX", "COUNT", "STEP"]) + 1] == \
        ["acc", "0.875", "0.875", "0.875", "1", "2"]
    assert ["loss", "0.25", "0.25", "1", "3", "2"] in _rows(out)
    assert ["lr", "0.1"] in _rows(out) and ["layers", "[64, 32]"] in _rows(out)
    assert "team=vision" in lines
    assert ["model/weights.bin", "1.0 MB"] in _rows(out)
    assert ["report.txt", "15 B"] in _rows(out)


def test_info_json(seed, cli) -> None:
    data = json.loads(cli("info", str(seed.done), "--json").stdout)
    assert data["id"] == seed.done and data["status"] == "succeeded"
    assert data["metrics"]["loss"] == {**data["metrics"]["loss"], "last": 0.25, "min": 0.25, "max": 1.0, "count": 3}
    assert data["tags"] == {"team": "vision"}
    assert sorted(a["path"] for a in data["artifacts"]) == sorted(seed.artifacts)


def test_info_shows_tasks(fresh_seed, cli) -> None:
    fresh_seed.client.update_task(fresh_seed.active, "worker", 1, status="running", host="node7", pid=4242)
    out = cli("info", str(fresh_seed.active)).stdout
    assert "Tasks" in out
    row = next(r for r in _rows(out) if r[0] == "worker-1")
    assert row[1:5] == ["running", "1", "node7", "4242"]


def test_info_unknown_run_has_no_traceback(seed, cli) -> None:
    res = cli("info", "999")
    assert res.exit_code == 1
    assert res.stdout == ""
    assert res.stderr == "Error: No run with id 999.\nHint: List runs with `runyard ls`.\n"


def test_debug_shows_the_traceback(seed, cli) -> None:
    res = cli("--debug", "info", "999")
    assert res.exit_code == 1
    assert "Traceback (most recent call last)" in res.stderr
    assert "runyard.errors.NotFound: No run with id 999." in res.stderr
    assert res.stderr.rstrip().endswith("Hint: List runs with `runyard ls`.")


# ----------------------------------------------------------------------- logs
def test_logs_prints_lines(seed, cli) -> None:
    res = cli("logs", str(seed.done))
    assert res.exit_code == 0, res.output
    # Printed verbatim: no Rich markup interpretation, no colour codes off a terminal.
    assert res.stdout == "epoch 0 loss=1.0\nwarning: [bold]not markup[/bold]\ndone\n"


def test_logs_tasks_are_prefixed_and_filtered(fresh_seed, cli) -> None:
    c = fresh_seed.client
    c.append_logs(fresh_seed.active, "master-0", [{"text": "master up"}])
    c.append_logs(fresh_seed.active, "worker-1", [{"text": "worker up", "stream": "stderr"}])
    assert cli("logs", str(fresh_seed.active)).stdout == "[master-0] master up\n[worker-1] worker up\n"
    assert cli("logs", str(fresh_seed.active), "--task", "worker-1").stdout == "worker up\n"


def test_logs_reads_past_one_page(fresh_seed, cli) -> None:
    fresh_seed.client.append_logs(fresh_seed.active, "main", [{"text": f"line {i}"} for i in range(2500)])
    out = cli("logs", str(fresh_seed.active)).stdout.splitlines()
    assert out == [f"line {i}" for i in range(2500)]


def test_logs_follow_ends_when_the_run_ends(fresh_seed, cli_server) -> None:
    c = fresh_seed.client
    c.append_logs(fresh_seed.active, "main", [{"text": "first"}])
    env = {"RUNYARD_SERVER": cli_server.url}
    proc = subprocess.Popen([sys.executable, "-m", "runyard.cli", "logs", str(fresh_seed.active), "-f"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**__import__("os").environ, **env})
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "first\n"  # printed while the run is still running
        c.append_logs(fresh_seed.active, "main", [{"text": "second"}])
        assert proc.stdout.readline() == "second\n"
        c.append_logs(fresh_seed.active, "main", [{"text": "last words"}])
        c.update_run(fresh_seed.active, "succeeded", exit_code=0)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out == "last words\n", err
    assert f"Run {fresh_seed.active} finished: succeeded." in err


# --------------------------------------------------------------------- cancel
def test_cancel_run(fresh_seed, cli) -> None:
    res = cli("cancel", str(fresh_seed.active))
    assert res.exit_code == 0, res.output
    assert res.stdout == f"Canceled run {fresh_seed.active}: canceled — canceled by user.\n"
    assert fresh_seed.client.get_run(fresh_seed.active)["status"] == "canceled"
    res = cli("cancel", str(fresh_seed.active))
    assert res.exit_code == 1
    assert f"Error: Run {fresh_seed.active} already ended canceled" in res.stderr


@pytest.mark.parametrize("how", [["exp:{exp}"], ["--experiment", "{exp}"]])
def test_cancel_experiment(fresh_seed, cli, how) -> None:
    res = cli("cancel", *[a.format(exp=fresh_seed.exp) for a in how])
    assert res.exit_code == 0, res.output
    assert res.stdout == f"Canceled experiment {fresh_seed.exp} (sweep): canceled; runs: 1 canceled.\n"
    assert fresh_seed.client.get_run(fresh_seed.active)["status"] == "canceled"
    assert fresh_seed.client.get_run(fresh_seed.done)["status"] == "succeeded"


def test_cancel_json(fresh_seed, cli) -> None:
    assert json.loads(cli("cancel", f"exp:{fresh_seed.exp}", "--json").stdout)["status"] == "canceled"


@pytest.mark.parametrize("args", [["abc"], ["exp:"], ["1", "--experiment", "1"], []])
def test_cancel_usage_errors_exit_2(cli_server, cli, args) -> None:
    res = cli("cancel", *args)
    assert res.exit_code == 2
    assert "RUN_OR_EXPERIMENT" in res.stderr
    assert "Traceback" not in res.output


# ------------------------------------------------------------------- download
def test_download_all(seed, cli, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = cli("download", str(seed.done), "-o", str(out))
    assert res.exit_code == 0, res.output
    assert res.stdout == f"Downloaded 3 files (1.0 MB) to {out}.\n"
    for path, data in seed.artifacts.items():
        assert (out / path).read_bytes() == data
    assert not list(out.rglob("*.part"))


def test_download_prefix_and_file(seed, cli, tmp_path: Path) -> None:
    res = cli("download", str(seed.done), "model", "-o", str(tmp_path / "a"))
    assert res.exit_code == 0, res.output
    assert sorted(p.relative_to(tmp_path / "a").as_posix() for p in (tmp_path / "a").rglob("*") if p.is_file()) == \
        ["model/config.json", "model/weights.bin"]
    res = cli("download", str(seed.done), "report.txt", "--output", str(tmp_path / "b"))
    assert res.exit_code == 0, res.output
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["report.txt"]
    assert (tmp_path / "b" / "report.txt").read_bytes() == seed.artifacts["report.txt"]


def test_download_default_is_the_current_directory(seed, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli("download", str(seed.done), "report.txt").exit_code == 0
    assert (tmp_path / "report.txt").read_bytes() == seed.artifacts["report.txt"]


def test_download_unknown_path(seed, cli, tmp_path: Path) -> None:
    res = cli("download", str(seed.done), "nope", "-o", str(tmp_path / "out"))
    assert res.exit_code == 1
    assert "Error: Run 1 has no artifact 'nope' and none under nope/. Its artifacts: model/config.json, " in res.stderr
    assert f"Hint: See them with `runyard info {seed.done}`." in res.stderr
    assert not (tmp_path / "out").exists()


def test_download_run_without_artifacts(seed, cli, tmp_path: Path) -> None:
    res = cli("download", str(seed.active), "-o", str(tmp_path))
    assert res.exit_code == 0
    assert res.stdout == f"Run {seed.active} has no artifacts.\n"


# --------------------------------------------------------------- server & db
def test_server_status_names_the_configured_server(cli_server, cli) -> None:
    res = cli("server", "status")
    assert res.exit_code == 0
    assert "No local Runyard server is running" in res.stdout
    assert f"RUNYARD_SERVER is set, so commands use {cli_server.url}" in res.stdout
    data = json.loads(cli("server", "status", "--json").stdout)
    assert data == {"running": False, "runyard_server": cli_server.url}


def test_db_upgrade_and_current(cli, runyard_home: Path) -> None:
    res = cli("db", "current", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["revision"] is None and data["up_to_date"] is False
    assert data["database"] == f"sqlite:///{runyard_home / 'runyard.db'}"
    assert "Run `runyard db upgrade`." in cli("db", "current").stdout

    res = cli("db", "upgrade")
    assert res.exit_code == 0, res.output
    assert re.fullmatch(r"Upgraded the database sqlite:///\S+ from empty to revision \w+\.\n", res.stdout)
    head = json.loads(cli("db", "current", "--json").stdout)["head"]
    assert "is already at the newest revision" in cli("db", "upgrade").stdout
    assert json.loads(cli("db", "upgrade", "--json").stdout)["revision"] == head
    assert f"is at revision {head} (the newest)" in cli("db", "current").stdout


def test_db_unreachable_masks_the_password(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNYARD_DATABASE_URL", "postgresql://runyard:s3cret@127.0.0.1:1/runyard")
    res = cli("db", "current")
    assert res.exit_code == 1
    assert "s3cret" not in res.output
    assert "Error: " in res.stderr and "runyard:***@127.0.0.1:1" in res.stderr
    assert "Hint: " in res.stderr and "Traceback" not in res.output


def test_download_shows_progress_on_a_terminal(seed, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # Rich treats stderr as a terminal: the progress bar renders
    res = cli("download", str(seed.done), "-o", str(tmp_path / "out"))
    assert res.exit_code == 0, res.output
    assert "1.0/1.0 MB" in res.stderr  # the bar counts bytes against the total from the listing
    assert res.stdout.startswith("Downloaded 3 files (1.0 MB)")
    assert (tmp_path / "out" / "model" / "weights.bin").read_bytes() == seed.artifacts["model/weights.bin"]

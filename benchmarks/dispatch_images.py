"""Dispatch with an image: what ``image:`` adds to each run, beside the same runs without one, in one run.

    .venv/bin/python benchmarks/dispatch_images.py [--json FILE] [--runs N]

N trivial runs (``python3 -c pass``, default 20), one at a time, through a local server and its
local agent, three ways, each on a server of its own started beforehand (start-up excluded):

- ``plain_s``: no image (the command runs on the machine's own Python);
- ``podman_s``: ``image: localhost/runyard-test-python:3.11`` with podman (the local backend's default runtime);
- ``charliecloud_s``: the same image, with ``container_runtime: charliecloud`` (the runner converts it into a
  directory image once; that first conversion is timed apart and left out of the per-run figure).

Each figure is the sweep's time from its first run's hand-over to the agent (``starting``) to its last
run's end (``ended_at``), over N: the runs go one after the other, so that is each run's whole cost
(image checks, the container's start and end, the clean-up, the reports); the extra time per run is
``podman_s - plain_s`` (target < 1 s) and ``charliecloud_s - plain_s`` (target < 0.2 s).

The test image is made by ``runyard.testing._images`` (the host's Python, ~5 s, once). Everything
started here is stopped by its pid. The exit code is 0 whatever the figures (a benchmark is not a
test), 1 only when the benchmark itself could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import print_table, runyard_server, say, verdict, write_json  # noqa: E402

TARGET_PODMAN_S = 1.0
TARGET_CHARLIECLOUD_S = 0.2


def _project(directory: Path, n: int, image: str | None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    values = ", ".join(str(i) for i in range(n))
    (directory / "runyard.yml").write_text(
        "name: dispatch-images\nproject: bench-images\ncommand: python3 -c pass\n"
        f"params:\n  i: [{values}]\nsearch:\n  algorithm: grid\n  parallel: 1\n"
        + (f"image: {image}\n" if image else ""))
    return directory


def _one_way(workdir: Path, name: str, n: int, image: str | None, local: dict[str, Any]) -> dict[str, Any]:
    """Run a warm-up run, then N runs, on a server of its own; the median per-run time from the records."""
    import yaml

    from runyard.client import Client
    from runyard.snapshot import create_snapshot
    from runyard.spec import load_spec

    home = workdir / f"{name}-home"
    home.mkdir(parents=True)
    (home / "backends.yml").write_text(yaml.safe_dump({"local": {"type": "local", **local}}))
    server, url = runyard_server(home)
    agent_dir = home / "agent"
    from dispatch import stop_agent, wait_agent

    agent_pid = None
    try:
        agent_pid = wait_agent(agent_dir)
        os.environ["RUNYARD_HOME"] = str(workdir / f"{name}-client")
        with Client(url) as client:
            out: dict[str, Any] = {}
            for label, count in (("warmup", 1), ("timed", n)):
                project = _project(workdir / f"{name}-{label}", count, image)
                spec = load_spec(project)
                snap = create_snapshot(client, project, ignore=spec.ignore)
                exp = client.create_experiment(spec.project, f"{name}-{label}", spec.to_config(),
                                               snapshot_id=snap.id, backend="local")
                t0 = time.perf_counter()
                while client.get_experiment(exp["id"]).get("ended_at") is None:
                    if time.perf_counter() - t0 > 600:
                        raise SystemExit(f"{name}: the runs did not end within 10 minutes")
                    time.sleep(0.2)
                runs = client.list_runs(experiment_id=exp["id"], limit=1000)["items"]
                bad = [r for r in runs if r["status"] != "succeeded"]
                if bad:
                    raise SystemExit(f"{name}: run {bad[0]['id']} {bad[0]['status']}: {bad[0].get('status_message')}")
                per_run, starts, ends = [], [], []
                for r in runs:
                    full = client.get_run(r["id"])
                    events = {e["status"]: e["ts"] for e in full.get("events", [])}
                    starts.append(events.get("starting", full["created_at"]))
                    ends.append(full["ended_at"])
                    per_run.append(full["ended_at"] - events.get("running", full["ended_at"]))
                out[f"{label}_events"] = [(e["status"], round(e["ts"] - full["created_at"], 3)) for e in full.get("events", [])]
                out[f"{label}_ended"] = round(full["ended_at"] - full["created_at"], 3)
                if label == "warmup":
                    out["first_run_s"] = ends[0] - starts[0]  # includes a conversion or first start
                else:
                    # One run after the other: the sweep's wall time over its runs is each run's whole cost
                    # (hand-over, image checks, the container's start and end, the clean-up, the report).
                    out["per_run_s"] = (max(ends) - min(starts)) / len(runs)
                    out["running_median_s"] = statistics.median(per_run)
            return out
    finally:
        stop_agent(agent_dir, agent_pid)
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    try:
        from runyard.testing._images import IMAGE_NAME, charliecloud_dir, ensure_image, podman_usable
    except ImportError as e:
        print(f"dispatch_images: {e}", file=sys.stderr)
        return 1
    problem = podman_usable()
    if problem:
        print(f"dispatch_images: podman cannot run here: {problem}", file=sys.stderr)
        return 1
    image = ensure_image(IMAGE_NAME)
    del charliecloud_dir  # the runner converts the image itself (timed in first_run_s)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="runyard-bench-images-") as tmp:
        work = Path(tmp)
        say(f"{args.runs} runs without an image")
        results["plain"] = _one_way(work, "plain", args.runs, None, {})
        say(f"{args.runs} runs in {image} with podman")
        results["podman"] = _one_way(work, "podman", args.runs, image, {})
        say(f"{args.runs} runs in {image} with charliecloud")
        results["charliecloud"] = _one_way(work, "charliecloud", args.runs, image,
                                           {"container_runtime": "charliecloud", "image_dir": str(work / "images")})
    plain = results["plain"]["per_run_s"]
    figures = {
        "plain_s": plain,
        "podman_s": results["podman"]["per_run_s"],
        "charliecloud_s": results["charliecloud"]["per_run_s"],
        "podman_extra_s": results["podman"]["per_run_s"] - plain,
        "charliecloud_extra_s": results["charliecloud"]["per_run_s"] - plain,
        "charliecloud_first_run_s": results["charliecloud"]["first_run_s"],
    }
    rows = [
        ("run without an image (median)", f"{plain:.3f} s", ""),
        ("run in the image, podman", f"{figures['podman_s']:.3f} s",
         f"+{figures['podman_extra_s']:.3f} s  {verdict(figures['podman_extra_s'] < TARGET_PODMAN_S)} (< {TARGET_PODMAN_S} s)"),
        ("run in the image, charliecloud", f"{figures['charliecloud_s']:.3f} s",
         f"+{figures['charliecloud_extra_s']:.3f} s  "
         f"{verdict(figures['charliecloud_extra_s'] < TARGET_CHARLIECLOUD_S)} (< {TARGET_CHARLIECLOUD_S} s)"),
        ("  charliecloud's first run (converts the image)", f"{figures['charliecloud_first_run_s']:.2f} s", ""),
    ]
    print_table(f"Dispatch with an image: {args.runs} trivial runs, one at a time, per run",
                ("what", "per run", "extra per run"), rows)
    write_json(str(args.json) if args.json else None, figures, {"runs": args.runs, "image": image, "detail": results})
    print(json.dumps({k: round(v, 3) for k, v in figures.items() if isinstance(v, float)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

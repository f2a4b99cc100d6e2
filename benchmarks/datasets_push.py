"""Pushing a dataset, then pushing it again with 1% of its files changed: Runyard beside DVC.

    .venv/bin/python benchmarks/datasets_push.py [--json FILE] [--files N] [--mb M] [--changed PCT] [--keep]

Writes a dataset of ``--files`` files (default 10,000) holding ``--mb`` MB in all (default 1,000: 1 GB; random
bytes from a fixed seed, 100 files per directory, mtimes an hour back as for data that was not just written) into
a temporary directory. Then, each as its command line in a child process:

- Runyard: ``runyard datasets push DATA --name bench`` to a Runyard server on 127.0.0.1 (its own home, SQLite,
  blobs on the local disk), timed from the command's start to its exit.
- DVC (the peers' virtualenv, ``bash benchmarks/setup_peers.sh``): ``dvc init --no-scm``,
  ``dvc remote add -d local DIR``, then ``dvc add data`` + ``dvc push``, timed together.

Then ``--changed`` percent of the files (default 1%, spread over the directories) get new random bytes of the
same size, and both push again. Bytes uploaded the second time: Runyard's own count (``--json``), checked against
the growth of the server's blob store; DVC's remote's growth.

Targets (Runyard): the second push uploads only the changed files, and takes under 10% of the first.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    ROOT,
    fmt,
    load_note,
    peers_venv,
    print_table,
    runyard_server,
    say,
    stop_on_sigterm,
    verdict,
    write_json,
)

TARGET_SECOND_FRACTION = 0.10
SEED = 20261208
PER_DIR = 100


def make_data(root: Path, n_files: int, total_bytes: int) -> list[Path]:
    """``n_files`` files of random bytes (a fixed seed) holding ``total_bytes`` together."""
    rng = random.Random(SEED)
    size, extra = divmod(total_bytes, n_files)
    past = time.time() - 3600
    paths = []
    for i in range(n_files):
        p = root / f"shard-{i // PER_DIR:04d}" / f"sample-{i:06d}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rng.randbytes(size + (1 if i < extra else 0)))
        os.utime(p, (past, past))
        paths.append(p)
    return paths


def change(paths: list[Path], percent: float) -> list[Path]:
    """New random bytes, of the same size, in ``percent`` of the files (every k-th, so spread over directories)."""
    n = max(1, round(len(paths) * percent / 100))
    step = max(1, len(paths) // n)
    rng = random.Random(SEED + 1)
    changed = paths[::step][:n]
    for p in changed:
        p.write_bytes(rng.randbytes(p.stat().st_size))
    return changed


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def timed(argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=3600)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} … failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return elapsed, proc.stdout


def runyard_push(url: str, home: Path, data: Path) -> tuple[float, dict[str, Any]]:
    env = {**os.environ, "RUNYARD_SERVER": url, "RUNYARD_HOME": str(home), "PYTHONPATH": str(ROOT)}
    env.pop("RUNYARD_TOKEN", None)
    elapsed, out = timed([sys.executable, "-m", "runyard.cli", "datasets", "push", str(data), "--name", "bench",
                          "-p", "bench", "--quiet", "--json"], env=env)
    return elapsed, json.loads(out)


def dvc_push(dvc: Path, project: Path) -> tuple[float, float]:
    """``dvc add data`` then ``dvc push``: (add seconds, push seconds)."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    add_s, _ = timed([str(dvc), "add", "data"], env=env, cwd=project)
    push_s, _ = timed([str(dvc), "push"], env=env, cwd=project)
    return add_s, push_s


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", metavar="FILE", help="write the figures to FILE")
    p.add_argument("--files", type=int, default=10_000, help="files in the dataset (default 10,000)")
    p.add_argument("--mb", type=float, default=1000, help="MB (10^6 bytes) in all (default 1,000: 1 GB)")
    p.add_argument("--changed", type=float, default=1.0, help="percent of the files changed before the second push")
    p.add_argument("--no-dvc", action="store_true", help="measure Runyard only")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = p.parse_args()
    stop_on_sigterm()
    dvc = peers_venv() / "bin" / "dvc"
    if not args.no_dvc and not dvc.exists():
        raise SystemExit(f"No dvc at {dvc}: run `bash benchmarks/setup_peers.sh` first (or pass --no-dvc).")

    workdir = Path(tempfile.mkdtemp(prefix="runyard-bench-datasets-"))
    project = workdir / "project"
    data = project / "data"
    total = int(args.mb * 1_000_000)
    meta: dict[str, Any] = {"workdir": str(workdir), "files": args.files, "bytes": total, "changed_percent": args.changed}
    server = None
    try:
        say(f"writing {args.files:,} files, {total / 1e6:,.0f} MB of random bytes …")
        paths = make_data(data, args.files, total)
        server, url = runyard_server(workdir / "server-home")
        blobs = workdir / "server-home" / "artifacts" / "blobs"
        client_home = workdir / "client-home"
        say("Runyard: first push …")
        ry1, out1 = runyard_push(url, client_home, data)
        say(f"Runyard: first push {ry1:.1f} s, {out1['bytes_uploaded'] / 1e6:,.0f} MB uploaded")
        if not args.no_dvc:
            say("DVC: init, remote, first add + push …")
            env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
            timed([str(dvc), "init", "--no-scm"], env=env, cwd=project)
            timed([str(dvc), "remote", "add", "-d", "local", str(workdir / "dvc-remote")], env=env, cwd=project)
            dvc_add1, dvc_push1 = dvc_push(dvc, project)
            say(f"DVC: first add {dvc_add1:.1f} s + push {dvc_push1:.1f} s")
        changed = change(paths, args.changed)
        changed_bytes = sum(p.stat().st_size for p in changed)
        say(f"changed {len(changed)} files ({changed_bytes / 1e6:,.1f} MB); second pushes …")
        blobs_before = du(blobs)
        ry2, out2 = runyard_push(url, client_home, data)
        ry_blob_growth = du(blobs) - blobs_before
        say(f"Runyard: second push {ry2:.2f} s, {out2['bytes_uploaded'] / 1e6:,.1f} MB uploaded")
        dvc_add2 = dvc_push2 = None
        dvc_growth = None
        if not args.no_dvc:
            remote_before = du(workdir / "dvc-remote")
            dvc_add2, dvc_push2 = dvc_push(dvc, project)
            dvc_growth = du(workdir / "dvc-remote") - remote_before
            say(f"DVC: second add {dvc_add2:.2f} s + push {dvc_push2:.2f} s")
            meta["dvc_version"] = subprocess.run([str(dvc), "--version"], capture_output=True, text=True).stdout.strip()
        third, out3 = runyard_push(url, client_home, data)
        meta["runyard_unchanged_push_s"] = third
        meta["runyard_unchanged_push_uploaded"] = out3["bytes_uploaded"]
    except KeyboardInterrupt:
        say("interrupted; server stopped")
        return 130
    except Exception as e:  # noqa: BLE001
        say(f"benchmark failed: {type(e).__name__}: {e}")
        return 1
    finally:
        if server is not None:
            server.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    figures: dict[str, Any] = {
        "runyard_first_s": ry1, "runyard_second_s": ry2, "runyard_second_fraction": ry2 / ry1,
        "runyard_second_bytes_uploaded": out2["bytes_uploaded"], "runyard_second_blobs_uploaded": out2["n_uploaded"],
        "runyard_second_blob_store_growth": ry_blob_growth, "changed_files": len(changed), "changed_bytes": changed_bytes,
    }
    if dvc_add2 is not None:
        figures.update({"dvc_first_s": dvc_add1 + dvc_push1, "dvc_first_add_s": dvc_add1, "dvc_first_push_s": dvc_push1,
                        "dvc_second_s": dvc_add2 + dvc_push2, "dvc_second_add_s": dvc_add2,
                        "dvc_second_push_s": dvc_push2, "dvc_second_bytes_uploaded": dvc_growth})
    meta["runyard_second_n_hashed"] = out2["n_hashed"]
    meta["load_note"] = load_note()
    report(figures, meta, args)
    write_json(args.json, figures, meta)
    return 0  # a benchmark, not a test: the targets are printed PASS or FAIL


def report(f: dict[str, Any], meta: dict[str, Any], args: argparse.Namespace) -> None:
    def ratio(ours: float | None, theirs: float | None) -> str:
        if not ours or not theirs:
            return "—"
        return f"{theirs / ours:,.1f}× faster" if theirs >= ours else f"{ours / theirs:,.1f}× slower"

    mb = meta["bytes"] / 1e6
    dvc_name = "DVC" + (f" {meta['dvc_version']}" if meta.get("dvc_version") else "")
    print_table(
        f"Pushing {meta['files']:,} files ({mb:,.0f} MB), then again with {f['changed_files']} changed "
        f"({f['changed_bytes'] / 1e6:,.1f} MB); command lines end to end on 127.0.0.1",
        ["", "Runyard", dvc_name, "Runyard is"],
        [
            ["first push", fmt(f["runyard_first_s"], "s"), fmt(f.get("dvc_first_s"), "s"),
             ratio(f["runyard_first_s"], f.get("dvc_first_s"))],
            ["second push (1% changed)" if args.changed == 1 else f"second push ({args.changed:g}% changed)",
             fmt(f["runyard_second_s"], "s"), fmt(f.get("dvc_second_s"), "s"),
             ratio(f["runyard_second_s"], f.get("dvc_second_s"))],
            ["second / first", f"{f['runyard_second_fraction']:.1%}",
             f"{f['dvc_second_s'] / f['dvc_first_s']:.1%}" if f.get("dvc_first_s") else "—", ""],
            ["bytes uploaded the second time", f"{f['runyard_second_bytes_uploaded'] / 1e6:,.2f} MB",
             f"{f['dvc_second_bytes_uploaded'] / 1e6:,.2f} MB" if f.get("dvc_second_bytes_uploaded") is not None else "—",
             ""],
        ],
    )
    if f.get("dvc_first_s"):
        print(f"DVC's times are `dvc add` + `dvc push`: first {f['dvc_first_add_s']:.1f} s + {f['dvc_first_push_s']:.1f} s, "
              f"second {f['dvc_second_add_s']:.2f} s + {f['dvc_second_push_s']:.2f} s.")
    print(f"Runyard's third push (nothing changed): {meta['runyard_unchanged_push_s']:.2f} s, "
          f"{meta['runyard_unchanged_push_uploaded']} bytes uploaded. Files read again by the second push: "
          f"{meta['runyard_second_n_hashed']} (the others' size and mtime were those of the first).")
    only_changed = (f["runyard_second_bytes_uploaded"] == f["changed_bytes"]
                    and f["runyard_second_blobs_uploaded"] == f["changed_files"]
                    and f["runyard_second_blob_store_growth"] == f["changed_bytes"])
    print_table(
        "Targets",
        ["target", "measured", "verdict"],
        [
            ["second push uploads only the changed files",
             f"{f['runyard_second_blobs_uploaded']} blobs, {f['runyard_second_bytes_uploaded']:,} bytes "
             f"(changed: {f['changed_files']}, {f['changed_bytes']:,})", verdict(only_changed)],
            ["second push < 10% of the first", f"{f['runyard_second_fraction']:.1%}",
             verdict(f["runyard_second_fraction"] < TARGET_SECOND_FRACTION)],
        ],
    )
    print(meta["load_note"])


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# Install Ray Tune, the dispatch benchmark's peer, into its OWN virtualenv, never
# into Runyard's: /work/main/.venv-ray by default (env RAY_VENV).
# Idempotent: does nothing when the pinned version is already there.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RAY_VENV="${RAY_VENV:-$ROOT/.venv-ray}"
case "$RAY_VENV" in /*) ;; *) RAY_VENV="$ROOT/$RAY_VENV" ;; esac
RAY_VERSION="${RAY_VERSION:-2.60.0}"   # the version our figures were measured with
PYTHON="${PYTHON:-python3}"

# ray at the pinned version plus the distributions its [tune] extra requires (metadata
# only: importing ray.tune takes seconds).
if [ -x "$RAY_VENV/bin/python" ] \
   && "$RAY_VENV/bin/python" - "$RAY_VERSION" 2>/dev/null <<'PY'
import importlib.metadata as m, re, sys
if m.version("ray") != sys.argv[1]:
    sys.exit(1)
for req in m.requires("ray") or []:
    if 'extra == "tune"' in req and "python_version" not in req:
        m.version(re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0])  # raises if missing
PY
then
  echo "ray venv $RAY_VENV: ray[tune] $RAY_VERSION already installed"
  exit 0
fi

if [ ! -x "$RAY_VENV/bin/python" ]; then
  echo "creating ray venv $RAY_VENV"
  "$PYTHON" -m venv "$RAY_VENV"
fi
# pip warns once per package about find-links folders that are absent on some machines: noise.
pip_quiet() {
  "$RAY_VENV/bin/python" -m pip install --quiet "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  return "${PIPESTATUS[0]}"
}
pip_quiet --upgrade pip
echo "installing ray[tune]==$RAY_VERSION into $RAY_VENV"
pip_quiet "ray[tune]==$RAY_VERSION"
RAY_USAGE_STATS_ENABLED=0 "$RAY_VENV/bin/python" -c "import ray, ray.tune; print('ray venv ready: ray', ray.__version__)"

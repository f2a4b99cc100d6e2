#!/usr/bin/env bash
# Install the peers the benchmarks compare against into their OWN virtualenv,
# never into Runyard's: /work/main/.venv-peers by default (env PEERS_VENV).
# Idempotent: does nothing when the pinned versions are already there.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PEERS_VENV="${PEERS_VENV:-.venv-peers}"
case "$PEERS_VENV" in /*) ;; *) PEERS_VENV="$ROOT/$PEERS_VENV" ;; esac   # relative: to the repo root, as the benchmarks read it
MLFLOW_VERSION="${MLFLOW_VERSION:-3.17.2}"   # the version our figures were measured with
SKLEARN_VERSION="${SKLEARN_VERSION:-1.7.2}"   # for mlflow.sklearn.autolog() in the MLflow-compatibility tests
DVC_VERSION="${DVC_VERSION:-3.67.1}"   # benchmarks/datasets_push.py: dvc add + dvc push to a local remote
PYTHON="${PYTHON:-python3}"

if [ -x "$PEERS_VENV/bin/python" ] \
   && "$PEERS_VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('mlflow') != '$MLFLOW_VERSION' or m.version('scikit-learn') != '$SKLEARN_VERSION' or m.version('dvc') != '$DVC_VERSION')" 2>/dev/null \
   && [ -x "$PEERS_VENV/bin/mlflow" ] && [ -x "$PEERS_VENV/bin/dvc" ]; then
  echo "peers venv $PEERS_VENV: mlflow $MLFLOW_VERSION, scikit-learn $SKLEARN_VERSION and dvc $DVC_VERSION already installed"
  exit 0
fi

if [ ! -x "$PEERS_VENV/bin/python" ]; then
  echo "creating peers venv $PEERS_VENV"
  "$PYTHON" -m venv "$PEERS_VENV"
fi
# pip warns once per package about find-links folders that are absent on some machines: noise.
pip_quiet() {
  "$PEERS_VENV/bin/python" -m pip install --quiet "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  return "${PIPESTATUS[0]}"
}
pip_quiet --upgrade pip
echo "installing mlflow==$MLFLOW_VERSION, scikit-learn==$SKLEARN_VERSION and dvc==$DVC_VERSION into $PEERS_VENV"
pip_quiet "mlflow==$MLFLOW_VERSION" "scikit-learn==$SKLEARN_VERSION" "dvc==$DVC_VERSION"
"$PEERS_VENV/bin/python" -c "import mlflow, sklearn, dvc.version; print('peers venv ready: mlflow', mlflow.__version__, 'scikit-learn', sklearn.__version__, 'dvc', dvc.version.__version__)"

#!/usr/bin/env bash
# Creates the job accounts of the local backend's run_as pool: runyard-job-1 .. runyard-job-N
# (system accounts, no home, no login shell, each with its own group). Idempotent; needs root.
#
#   scripts/setup-job-accounts.sh N [PREFIX]     # PREFIX defaults to runyard-job
#
# Then in backends.yml:  local: {type: local, run_as: {pool: runyard-job, size: N}}
# See docs/operating.md, "Isolating jobs on the local backend".
set -euo pipefail

n=${1:-}
prefix=${2:-runyard-job}
if ! [[ "$n" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 N [PREFIX]   (creates PREFIX-1 .. PREFIX-N; PREFIX defaults to runyard-job)" >&2
  exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "setup-job-accounts: needs root (run it with sudo)" >&2
  exit 1
fi
nologin=/usr/sbin/nologin
[ -x "$nologin" ] || nologin=/sbin/nologin
[ -x "$nologin" ] || nologin=/bin/false

for i in $(seq 1 "$n"); do
  name="$prefix-$i"
  if id -u "$name" >/dev/null 2>&1; then
    echo "setup-job-accounts: $name exists (uid $(id -u "$name"))"
  else
    useradd --system --no-create-home --home-dir /nonexistent --shell "$nologin" --user-group "$name"
    echo "setup-job-accounts: created $name (uid $(id -u "$name"))"
  fi
done

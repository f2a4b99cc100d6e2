#!/usr/bin/env bash
# Creates the job accounts of the local backend's run_as pool: runyard-job-1 .. runyard-job-N
# (system accounts, no home, no login shell, each with its own group). Idempotent; needs root.
#
#   scripts/setup-job-accounts.sh N [PREFIX] [--sudo-for AGENT]     # PREFIX defaults to runyard-job
#
# --sudo-for AGENT: the server (and its local agent) runs as the account AGENT, not root. Writes
# /etc/sudoers.d/runyard-jobs (checked with `visudo -cf` first, mode 0440) so that AGENT may run
# commands as PREFIX-1 .. PREFIX-N without a password, and as no other account (never root):
#
#   Defaults:AGENT !use_pty, !pam_session
#   AGENT ALL=(PREFIX-1,...,PREFIX-N) NOPASSWD: ALL
#
# Then in backends.yml:  local: {type: local, run_as: {pool: runyard-job, size: N}}
# See docs/operating.md, "Isolating jobs on the local backend".
set -euo pipefail

usage() {
  echo "usage: $0 N [PREFIX] [--sudo-for AGENT]   (creates PREFIX-1 .. PREFIX-N; PREFIX defaults to runyard-job;" >&2
  echo "       --sudo-for AGENT writes /etc/sudoers.d/runyard-jobs letting the account AGENT run jobs as them)" >&2
  exit 2
}
n=""
prefix=""
agent=""
while [ $# -gt 0 ]; do
  case "$1" in
    --sudo-for) [ $# -ge 2 ] || usage; agent=$2; shift 2 ;;
    --sudo-for=*) agent=${1#--sudo-for=}; shift ;;
    -h|--help) usage ;;
    -*) usage ;;
    *) if [ -z "$n" ]; then n=$1; elif [ -z "$prefix" ]; then prefix=$1; else usage; fi; shift ;;
  esac
done
prefix=${prefix:-runyard-job}
if ! [[ "$n" =~ ^[1-9][0-9]*$ ]]; then
  usage
fi
if ! [[ "$prefix" =~ ^[a-z_][a-z0-9_-]{0,24}$ ]]; then
  echo "setup-job-accounts: PREFIX must be an account name prefix (e.g. runyard-job), not '$prefix'" >&2
  exit 2
fi
if [ -n "$agent" ]; then
  if ! [[ "$agent" =~ ^[a-z_][a-z0-9_.-]{0,31}$ ]] || ! id -u "$agent" >/dev/null 2>&1; then
    echo "setup-job-accounts: --sudo-for needs an existing account name (the server's), not '$agent'" >&2
    exit 2
  fi
  if [ "$(id -u "$agent")" -eq 0 ]; then
    echo "setup-job-accounts: $agent is root: root needs no sudoers rule (run without --sudo-for)" >&2
    exit 2
  fi
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "setup-job-accounts: needs root (run it with sudo)" >&2
  exit 1
fi
nologin=/usr/sbin/nologin
[ -x "$nologin" ] || nologin=/sbin/nologin
[ -x "$nologin" ] || nologin=/bin/false

accounts=()
for i in $(seq 1 "$n"); do
  name="$prefix-$i"
  accounts+=("$name")
  if id -u "$name" >/dev/null 2>&1; then
    echo "setup-job-accounts: $name exists (uid $(id -u "$name"))"
  else
    useradd --system --no-create-home --home-dir /nonexistent --shell "$nologin" --user-group "$name"
    echo "setup-job-accounts: created $name (uid $(id -u "$name"))"
  fi
  if [ -n "$agent" ] && [ "$(id -u "$name")" -eq 0 ]; then
    echo "setup-job-accounts: $name is root: refusing to let $agent become it" >&2
    exit 1
  fi
done

if [ -n "$agent" ]; then
  if ! command -v visudo >/dev/null 2>&1; then
    echo "setup-job-accounts: sudo is not installed (Debian/Ubuntu: apt-get install sudo)" >&2
    exit 1
  fi
  rule=/etc/sudoers.d/runyard-jobs
  tmp=$(mktemp /etc/sudoers.d/.runyard-jobs.XXXXXX)  # a dot name: sudo skips it while it is being written
  trap 'rm -f "$tmp"' EXIT
  runas=$(IFS=,; echo "${accounts[*]}")
  {
    echo "# Written by Runyard's scripts/setup-job-accounts.sh: the local agent, running as $agent,"
    echo "# starts jobs as the run_as pool's accounts (and only those: never root, never another account)."
    echo "Defaults:$agent !use_pty, !pam_session"
    echo "$agent ALL=($runas) NOPASSWD: ALL"
  } > "$tmp"
  chmod 0440 "$tmp"
  visudo -cf "$tmp" >/dev/null
  mv -f "$tmp" "$rule"
  trap - EXIT
  echo "setup-job-accounts: wrote $rule: $agent may run commands as $prefix-1 .. $prefix-$n (sudo -n -u ACCOUNT)"
fi

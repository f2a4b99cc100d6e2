#!/usr/bin/env bash
# Configures podman for Runyard's container runs on this host. Idempotent; needs root. See docs/containers.md.
#
#   scripts/setup-containers.sh [--rootless PREFIX N]
#
# Writes /etc/containers/containers.conf (runc, cgroupfs, the file events logger, the host network, and
# default ulimits no higher than this host's hard limits: podman's defaults ask for more than a process
# without CAP_SYS_RESOURCE may set, and crun fails on hybrid cgroups) and /etc/containers/storage.conf
# (native overlay, which rootless podman would otherwise replace with the slow vfs driver).
# A file there that this script did not write is kept as FILE.runyard-orig before it is replaced.
#
# --rootless PREFIX N: gives the job accounts PREFIX-1 .. PREFIX-N (scripts/setup-job-accounts.sh) each a range
# of 65536 subordinate uids and gids in /etc/subuid and /etc/subgid, which rootless podman needs to run as them,
# and an image storage of its own in /var/lib/runyard-containers/ACCOUNT, named by
# /etc/containers/runyard-pool-storage.conf (set CONTAINERS_STORAGE_CONF to it in the local backend's env:).
set -euo pipefail

usage() {
  echo "usage: $0 [--rootless PREFIX N]   (PREFIX-1 .. PREFIX-N get /etc/subuid and /etc/subgid ranges)" >&2
  exit 2
}
prefix=""
n=""
case "${1:-}" in
  "") ;;
  --rootless) [ $# -eq 3 ] || usage; prefix=$2; n=$3 ;;
  *) usage ;;
esac
if [ -n "$n" ] && ! [[ "$n" =~ ^[1-9][0-9]*$ ]]; then
  usage
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "setup-containers: needs root (run it with sudo)" >&2
  exit 1
fi
POOL_STORAGE=/var/lib/runyard-containers
POOL_STORAGE_CONF=/etc/containers/runyard-pool-storage.conf

MARK="# Written by Runyard's scripts/setup-containers.sh (docs/containers.md); rerunning it rewrites this file."

# install_conf PATH CONTENT: writes PATH only when its content changes; keeps a file someone else wrote.
install_conf() {
  local path=$1 content=$2
  if [ -f "$path" ] && [ "$(cat "$path")" = "$content" ]; then
    return 0
  fi
  mkdir -p "$(dirname "$path")"
  if [ -f "$path" ] && ! head -1 "$path" | grep -qF "$MARK" && [ ! -e "$path.runyard-orig" ]; then
    cp -p "$path" "$path.runyard-orig"
    echo "setup-containers: kept the previous $path as $path.runyard-orig"
  fi
  local tmp
  tmp=$(mktemp "$path.XXXXXX")
  printf '%s\n' "$content" > "$tmp"
  chmod 0644 "$tmp"
  mv -f "$tmp" "$path"
  echo "setup-containers: wrote $path"
}

# The ulimits a container gets: this host's hard limits (a container may not raise them), nproc capped at
# 32768 (the kernel's pid_max on small machines).
nofile=$(ulimit -Hn)
nproc=$(ulimit -Hu)
[ "$nofile" = unlimited ] && nofile=1048576
if [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; then
  nproc=32768
fi

install_conf /etc/containers/containers.conf "$MARK
[containers]
# This host's hard limits (ulimit -Hn, ulimit -Hu capped at 32768): podman's defaults ask for more.
default_ulimits = [\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\"]
# Jobs reach the Runyard server on the host's loopback address.
netns = \"host\"

[engine]
# crun fails on hybrid (v1 + v2) cgroups; runc and the cgroupfs manager work, with or without systemd.
runtime = \"runc\"
cgroup_manager = \"cgroupfs\"
# No journald for events.
events_logger = \"file\""

install_conf /etc/containers/storage.conf "$MARK
[storage]
# Native overlay: rootless podman would otherwise use vfs (a full copy of the image per container).
driver = \"overlay\"
runroot = \"/run/containers/storage\"
graphroot = \"/var/lib/containers/storage\""

if [ -n "$prefix" ]; then
  # next_start FILE: the first id after every range FILE holds, and never below 1000000 (above the ranges
  # useradd gives people from 100000 on).
  next_start() {
    awk -F: 'BEGIN { m = 1000000 } NF == 3 && $2 + $3 > m { m = $2 + $3 } END { print m }' "$1"
  }
  for f in /etc/subuid /etc/subgid; do
    [ -e "$f" ] || install -m 0644 /dev/null "$f"
  done
  for i in $(seq 1 "$n"); do
    name="$prefix-$i"
    if ! id -u "$name" >/dev/null 2>&1; then
      echo "setup-containers: no account $name: run scripts/setup-job-accounts.sh $n $prefix first" >&2
      exit 1
    fi
    if ! grep -q "^$name:" /etc/subuid; then
      start=$(next_start /etc/subuid)
      usermod --add-subuids "$start-$((start + 65535))" "$name"
      echo "setup-containers: $name: subordinate uids $start-$((start + 65535))"
    fi
    if ! grep -q "^$name:" /etc/subgid; then
      start=$(next_start /etc/subgid)
      usermod --add-subgids "$start-$((start + 65535))" "$name"
      echo "setup-containers: $name: subordinate gids $start-$((start + 65535))"
    fi
    # Its image storage, kept between jobs and outside them: a job's directory is removed when it ends,
    # and the account cannot delete layers owned by its subordinate ids.
    store="$POOL_STORAGE/$name"
    if [ ! -d "$store" ]; then
      install -d -m 0755 "$POOL_STORAGE"
      install -d -m 0700 -o "$name" -g "$(id -gn "$name")" "$store"
      echo "setup-containers: $name: image storage in $store"
    fi
  done
  # The local backend's run_as pool points podman there: env: {CONTAINERS_STORAGE_CONF: <this file>}.
  install_conf "$POOL_STORAGE_CONF" "$MARK
# Rootless podman of the run_as pool accounts: each account's images in a directory of its own.
[storage]
driver = \"overlay\"
rootless_storage_path = \"$POOL_STORAGE/\$USER/storage\""
fi

# Podman reads the new configuration on its next command; containers that run keep theirs. A rootless
# account that ran podman before its ranges existed needs `podman system migrate` (run as that account).

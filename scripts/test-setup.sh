#!/usr/bin/env bash
# Installs the system packages the test suite needs. Idempotent; needs root (or sudo).
# Slurm and the dev sshd, which the tests start for real, have their own up/down scripts (scripts/dev-*.sh).
set -euo pipefail

# chromium: the web UI's browser tests drive Debian's /usr/bin/chromium through Playwright.
PACKAGES=(git chromium)
# Slurm for the Slurm backend's tests (scripts/dev-slurm.sh): munge, the daemons,
# the client commands, and slurmdbd + MariaDB so that sacct keeps final states.
PACKAGES+=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server)
# OpenSSH for the SSH backend's tests (scripts/dev-sshd.sh: sshd on 127.0.0.1:2222, ssh-keygen).
PACKAGES+=(openssh-server openssh-client)
# sudo for the local backend's run_as pool without root (tests/security/test_sec_job_isolation_sudo.py).
PACKAGES+=(sudo)
# Containers (docs/containers.md): podman with runc (crun fails on this kind of machine's hybrid cgroups), the
# rootless helpers (uidmap: newuidmap/newgidmap; slirp4netns; fuse-overlayfs), and Charliecloud's ch-run with
# squashfs-tools for SquashFS images.
PACKAGES+=(podman runc fuse-overlayfs slirp4netns uidmap charliecloud-runtime squashfs-tools)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

if [ ${#missing[@]} -gt 0 ]; then
  echo "test-setup: installing ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "test-setup: system packages present (${PACKAGES[*]})"
fi

# PostgreSQL is provided by the machine (127.0.0.1:5432, user postgres, trust auth).
if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  echo "test-setup: PostgreSQL on 127.0.0.1:5432 is not answering; trying to start it"
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    ver=$(ls /etc/postgresql | head -1)
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  fi
fi

# Job accounts of the local backend's run_as pool (tests/security/test_sec_job_isolation.py).
if [ "$(id -u)" -eq 0 ]; then
  "$(dirname "$0")/setup-job-accounts.sh" 2
  "$(dirname "$0")/setup-containers.sh" --rootless runyard-job 2
else
  $SUDO "$(dirname "$0")/setup-job-accounts.sh" 2
  $SUDO "$(dirname "$0")/setup-containers.sh" --rootless runyard-job 2
fi

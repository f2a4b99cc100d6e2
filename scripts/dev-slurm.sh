#!/usr/bin/env bash
# A real single-node Slurm on this machine, for trying and testing the Slurm backend.
#
#   scripts/dev-slurm.sh up       start munged, MariaDB (if not running), slurmdbd, slurmctld, slurmd
#   scripts/dev-slurm.sh down     stop what `up` started (by pid files), keep the job-id counter
#   scripts/dev-slurm.sh status   exit 0 when the cluster answers and its node is up
#
# Debian's packages (installed by scripts/test-setup.sh): munge slurmctld slurmd slurm-client
# slurmdbd mariadb-server. No systemd and no cgroups: every daemon is started directly,
# with proctrack/linuxproc and task/none (the machine has no systemd and hybrid cgroups). Accounting goes through
# slurmdbd into MariaDB on 127.0.0.1:3306 (root, empty password) so that `sacct` keeps
# final states and exit codes. The configuration goes to /etc/slurm (the commands' default)
# and names this host; the partition is called "debug" and is the default.
#
# Environment: DEV_SLURM_CPUS (CPUs the node advertises; default max(nproc, 4) so that
# small multi-task test jobs fit), DEV_SLURM_MEMORY_MB (default 4000).
set -euo pipefail

CONF_DIR=/etc/slurm
STATE=/var/lib/slurm/slurmctld
SPOOL=/var/lib/slurm/slurmd
LOGS=/var/log/slurm
RUN=/run/slurm
HOST=$(hostname -s)
NPROC=$(nproc)
CPUS=${DEV_SLURM_CPUS:-$(( NPROC > 4 ? NPROC : 4 ))}
MEM=${DEV_SLURM_MEMORY_MB:-4000}
DB=slurm_acct_db

log() { echo "dev-slurm: $*" >&2; }

need() {
  for b in munged slurmctld slurmd slurmdbd sbatch sacct mariadb; do
    command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || {
      log "missing $b: install the packages first: bash scripts/test-setup.sh"; exit 1; }
  done
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local n=$(( $1 * 10 )) what=$2; shift 2
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  log "timed out waiting for $what"; return 1
}

write_config() {
  mkdir -p "$CONF_DIR" "$STATE" "$SPOOL" "$LOGS" "$RUN"
  chown slurm:slurm "$STATE" "$LOGS" "$RUN"
  cat > "$CONF_DIR/slurm.conf" <<EOF
# Written by runyard scripts/dev-slurm.sh: a single-node development cluster.
ClusterName=runyard-dev
SlurmctldHost=${HOST}(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=${STATE}
SlurmdSpoolDir=${SPOOL}
SlurmctldPidFile=${RUN}/slurmctld.pid
SlurmdPidFile=${RUN}/slurmd.pid
SlurmctldLogFile=${LOGS}/slurmctld.log
SlurmdLogFile=${LOGS}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=5
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
DefMemPerCPU=100
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
JobCompType=jobcomp/none
MinJobAge=30
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=${HOST} NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=${MEM} State=UNKNOWN
PartitionName=debug Nodes=${HOST} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
  cat > "$CONF_DIR/slurmdbd.conf" <<EOF
# Written by runyard scripts/dev-slurm.sh.
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=slurm
PidFile=${RUN}/slurmdbd.pid
LogFile=${LOGS}/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3306
StorageUser=slurm
StoragePass=runyard-dev
StorageLoc=${DB}
EOF
  chown slurm:slurm "$CONF_DIR/slurmdbd.conf"
  chmod 600 "$CONF_DIR/slurmdbd.conf"
}

start_munge() {
  if pgrep -x munged >/dev/null; then return; fi
  mkdir -p /run/munge && chown munge:munge /run/munge && chmod 755 /run/munge
  runuser -u munge -- /usr/sbin/munged
  wait_for 10 munged bash -c 'munge -n | unmunge'
}

# MariaDB as root: over TCP with an empty password (as set up here), else through the socket
# (a fresh Debian install authenticates root by unix_socket).
db_root() {
  if mariadb -h 127.0.0.1 -u root -e 'select 1' >/dev/null 2>&1; then mariadb -h 127.0.0.1 -u root "$@";
  else mariadb -u root "$@"; fi
}

start_mariadb() {
  if ! db_root -e 'select 1' >/dev/null 2>&1; then
    log "MariaDB is not answering; starting it"
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    /etc/init.d/mariadb start >/dev/null || true
    wait_for 30 MariaDB db_root -e 'select 1'
  fi
  db_root <<EOF
CREATE DATABASE IF NOT EXISTS ${DB};
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'runyard-dev';
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'runyard-dev';
GRANT ALL ON ${DB}.* TO 'slurm'@'localhost';
GRANT ALL ON ${DB}.* TO 'slurm'@'127.0.0.1';
FLUSH PRIVILEGES;
EOF
}

up() {
  need
  if status >/dev/null 2>&1; then log "already up"; return 0; fi
  write_config
  start_munge
  start_mariadb
  if ! pid_alive "$RUN/slurmdbd.pid"; then
    rm -f "$RUN/slurmdbd.pid"
    /usr/sbin/slurmdbd
  fi
  wait_for 30 slurmdbd sacctmgr -n list cluster
  sacctmgr -i -Q add cluster runyard-dev >/dev/null 2>&1 || true
  if ! pid_alive "$RUN/slurmctld.pid"; then
    rm -f "$RUN/slurmctld.pid"
    /usr/sbin/slurmctld
  fi
  wait_for 30 slurmctld scontrol ping
  if ! pid_alive "$RUN/slurmd.pid"; then
    rm -f "$RUN/slurmd.pid"
    /usr/sbin/slurmd
  fi
  # A node drained by an earlier configuration (state is kept in $STATE) is resumed.
  sleep 1
  case "$(sinfo -h -n "$HOST" -o %T 2>/dev/null)" in
    drain*|down*|inval*|fail*) scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true ;;
  esac
  wait_for 30 "node ${HOST} to be idle" bash -c "sinfo -h -n ${HOST} -o %T | grep -Eq '^(idle|mixed|allocated)$'"
  log "up: partition debug on node ${HOST} (${CPUS} CPUs, ${MEM} MB); try: sbatch --wrap hostname"
}

stop_pid() {  # stop_pid PIDFILE NAME
  local f=$1 name=$2
  if pid_alive "$f"; then
    local pid; pid=$(cat "$f")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { log "$name (pid $pid) ignored SIGTERM; SIGKILL"; kill -9 "$pid" 2>/dev/null || true; }
  fi
  rm -f "$f"
}

down() {
  # Jobs still running are cancelled first, so no task outlives the cluster.
  if scontrol ping >/dev/null 2>&1; then
    scancel --user=root >/dev/null 2>&1 || true
    scontrol shutdown >/dev/null 2>&1 || true
  fi
  stop_pid "$RUN/slurmctld.pid" slurmctld
  stop_pid "$RUN/slurmd.pid" slurmd
  stop_pid "$RUN/slurmdbd.pid" slurmdbd
  log "down (munged and MariaDB are left running; they are shared)"
}

status() {
  if ! scontrol ping 2>/dev/null | grep -q UP; then echo "slurm: controller down"; return 1; fi
  local state; state=$(sinfo -h -n "$HOST" -o %T 2>/dev/null || true)
  echo "slurm: controller up; node ${HOST}: ${state:-unknown}"
  case "$state" in idle|mixed|allocated|completing) ;; *) return 1 ;; esac
  sacctmgr -n list cluster >/dev/null 2>&1 || { echo "slurm: slurmdbd not answering"; return 1; }
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac

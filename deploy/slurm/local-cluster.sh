#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for CI and for trying the array job.
#
#   deploy/slurm/local-cluster.sh up     install slurm-wlm and munge when missing, write a single-node
#                                        slurm.conf for this host, start munged, slurmctld and slurmd,
#                                        wait until the node is idle
#   deploy/slurm/local-cluster.sh down   stop exactly the daemons `up` started
#
# Both are idempotent. Needs root and Debian (apt-get); no systemd: the daemons run in the background.
# What `up` started is recorded in $STATE (their pids); `down` stops only those and leaves daemons it
# found already running. An existing /etc/slurm/slurm.conf that `up` did not write is never replaced.
# Installed packages stay installed.
set -euo pipefail

STATE=${SLURM_LOCAL_STATE:-/run/perceiverkit-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by perceiverkit deploy/slurm/local-cluster.sh"
WAIT=${SLURM_LOCAL_WAIT:-60} # seconds to wait for the node to become idle

die() { echo "local-cluster: $*" >&2; exit 1; }
say() { echo "local-cluster: $*"; }

install_packages() {
  local missing=()
  for cmd in munged slurmctld slurmd sbatch; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
  done
  [ ${#missing[@]} -eq 0 ] && return
  say "installing slurm-wlm and munge (missing: ${missing[*]})"
  # Package scripts must not try to start the daemons (there is no init system to do it, and the
  # configuration is not written yet): a temporary policy-rc.d says no, unless one is already there.
  local policy=/usr/sbin/policy-rc.d added=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && added=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  local rc=0
  { apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null; }; } || rc=$?
  [ "$added" = 1 ] && rm -f "$policy"
  [ "$rc" = 0 ] || die "apt-get install slurm-wlm munge failed ($rc)"
}

# alive PIDFILE: the pid recorded in PIDFILE is a running process.
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

write_conf() {
  if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    die "$CONF exists and was not written by this script; refusing to replace it"
  fi
  local host node
  host=$(hostname -s)
  # slurmd -C prints this host's NodeName line (CPUs, sockets, cores, memory) as Slurm sees it.
  node=$(slurmd -C | head -n 1)
  case "$node" in NodeName=*) ;; *) die "slurmd -C printed no node line: $node" ;; esac
  mkdir -p /etc/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm
  cat >"$CONF.tmp" <<EOF
$MARK
ClusterName=perceiverkit
# Loopback addresses: the host name need not resolve (bare CI containers).
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
# Schedule every 2 s (default 60): a requeued task restarts at once in the CI check.
SchedulerParameters=sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmdTimeout=60
InactiveLimit=0
MinJobAge=300
KillWait=10
MpiDefault=none
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
  mv "$CONF.tmp" "$CONF"
}

start_munge() {
  if munge -n </dev/null >/dev/null 2>&1; then
    return # a munged is already answering: use it, and leave it alone in `down`
  fi
  if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null ||
      dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
  fi
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  chmod 755 /run/munge
  runuser -u munge -- munged --pid-file=/run/munge/munged.pid
  cp /run/munge/munged.pid "$STATE/munged.pid"
  for _ in $(seq 50); do
    munge -n </dev/null >/dev/null 2>&1 && return
    sleep 0.1
  done
  die "munged did not answer (see /var/log/munge/munged.log)"
}

node_state() { sinfo -h -N -o '%T' 2>/dev/null | head -n 1; }

up() {
  [ "$(id -u)" = 0 ] || die "needs root"
  mkdir -p "$STATE"
  install_packages
  if alive "$STATE/slurmctld.pid" && alive "$STATE/slurmd.pid"; then
    say "already up ($(node_state))"
    return
  fi
  write_conf
  start_munge
  alive "$STATE/slurmctld.pid" || slurmctld
  alive "$STATE/slurmd.pid" || slurmd
  local state=""
  for _ in $(seq "$((WAIT * 2))"); do
    state=$(node_state)
    case "$state" in
      idle) say "up: node $(hostname -s) is idle"; return ;;
      down* | drain*) scontrol update nodename="$(hostname -s)" state=resume 2>/dev/null || true ;;
    esac
    sleep 0.5
  done
  die "node not idle after ${WAIT}s (state ${state:-unknown}); see /var/log/slurm/"
}

# stop NAME: end the daemon whose pid `up` recorded, and wait for it to go.
stop() {
  local f="$STATE/$1.pid" pid
  alive "$f" || { rm -f "$f"; return; }
  pid=$(cat "$f")
  kill "$pid"
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$f"; return; }
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$f"
}

down() {
  [ -d "$STATE" ] || { say "nothing to stop"; return; }
  stop slurmd
  stop slurmctld
  stop munged
  rmdir "$STATE" 2>/dev/null || true
  say "down"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac

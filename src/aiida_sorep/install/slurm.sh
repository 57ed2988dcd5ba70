#!/usr/bin/env bash
# A one-node SLURM cluster on this machine (Debian's slurm-wlm + munge), for tests and demos of the
# `core.slurm` scheduler. Idempotent: a second run only checks that slurmctld and slurmd answer.
#
#   bash src/aiida_sorep/install/slurm.sh          # install (root), configure, start
#   bash src/aiida_sorep/install/slurm.sh stop     # stop slurmd, slurmctld and munged started by this script
#
# No systemd and no cgroups are needed: process tracking uses /proc (proctrack/linuxproc), no task
# affinity (task/none), no accounting; slurmctld and slurmd run as root. Not for production clusters.
set -euo pipefail

conf_dir=/etc/slurm
conf=$conf_dir/slurm.conf
state=/var/spool/slurmctld
spool=/var/spool/slurmd
logs=/var/log/slurm
run=/run/slurm
node=$(hostname -s)
cpus=$(nproc)
memory=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)

if [ -t 1 ]; then bold='\033[1m' red='\033[1;31m' off='\033[0m'; else bold='' red='' off=''; fi
say() { printf "${bold}==> %s${off}\n" "$*"; }
fail() { printf "${red}[FAILED]${off} %s\n" "$*" >&2; exit 1; }

# Stop a daemon by its pid file (never by name: other SLURM or munge instances are left alone).
stop_pidfile() { [ -f "$1" ] && kill "$(cat "$1")" 2>/dev/null || true; }
running_pidfile() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

if [ "${1:-start}" = stop ]; then
    stop_pidfile "$run/slurmd.pid"
    stop_pidfile "$run/slurmctld.pid"
    stop_pidfile /run/munge/munged.pid
    exit 0
fi

[ "$(id -u)" = 0 ] || fail "configuring a local SLURM needs root (it installs packages and writes $conf)."

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    say "Installing slurm-wlm and munge"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi

# munge: the key, its folders, and the daemon.
if [ ! -s /etc/munge/munge.key ]; then
    say "Creating the munge key"
    mungekey --create --force
fi
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "Starting munged"
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 20); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.5; done
    munge -n | unmunge >/dev/null || fail "munged does not answer: see /var/log/munge/munged.log"
fi

# slurm.conf: one node, one partition, no cgroups.
install -d -m 0755 "$conf_dir" "$state" "$spool" "$logs" "$run"
wanted=$(cat <<EOF
# Written by aiida-sorep's install/slurm.sh: a one-node SLURM on $node, without systemd or cgroups.
ClusterName=sorep
SlurmctldHost=$node
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
StateSaveLocation=$state
SlurmdSpoolDir=$spool
SlurmctldPidFile=$run/slurmctld.pid
SlurmdPidFile=$run/slurmd.pid
SlurmctldLogFile=$logs/slurmctld.log
SlurmdLogFile=$logs/slurmd.log
SchedulerParameters=sched_interval=1
MessageTimeout=10
InactiveLimit=0
KillWait=5
MinJobAge=60
NodeName=$node CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
)
if [ "$(cat "$conf" 2>/dev/null)" != "$wanted" ]; then
    say "Writing $conf"
    printf '%s\n' "$wanted" > "$conf"
    restart=1
else
    restart=0
fi

if [ "$restart" = 1 ]; then
    stop_pidfile "$run/slurmd.pid"
    stop_pidfile "$run/slurmctld.pid"
    sleep 1
fi
if ! running_pidfile "$run/slurmctld.pid"; then
    say "Starting slurmctld"
    slurmctld || fail "slurmctld did not start: $(tail -5 $logs/slurmctld.log 2>/dev/null)"
fi
if ! running_pidfile "$run/slurmd.pid"; then
    say "Starting slurmd"
    slurmd || fail "slurmd did not start: $(tail -5 $logs/slurmd.log 2>/dev/null)"
fi

for _ in $(seq 60); do
    node_state=$(sinfo -h -N -n "$node" -o '%t' 2>/dev/null || true)
    case "$node_state" in
        idle|mix|alloc) break ;;
        down*|drain*) scontrol update nodename="$node" state=resume 2>/dev/null || true ;;
    esac
    sleep 1
done
case "$node_state" in
    idle|mix|alloc) ;;
    *) fail "node $node is in state '${node_state:-unknown}': see $logs/slurmctld.log and $logs/slurmd.log" ;;
esac
say "SLURM is up: $(sinfo -h -o '%P %a %D %t %C' | head -1) (partition avail nodes state cpus A/I/O/T)"

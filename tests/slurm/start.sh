#!/usr/bin/env bash
# Starts a two-node Slurm on this machine for convlab's tests: munged, slurmctld and two slurmd
# (n1, n2 on 127.0.0.1, one CPU each), from Debian's slurmctld, slurmd, slurm-client and munge
# packages. Everything lives in DIR (default /tmp/convlab-slurm): the configuration, state,
# logs, and `pids` (one per daemon started), which stop.sh reads to stop exactly those.
#   tests/slurm/start.sh [DIR]; then: export SLURM_CONF=DIR/slurm.conf
set -euo pipefail
DIR="${1:-/tmp/convlab-slurm}"
mkdir -p "$DIR"/{state,spool,log,munge}
DIR="$(cd "$DIR" && pwd)"
: > "$DIR/pids"
chmod 700 "$DIR/munge"

# MUNGE, with its own key, socket and pid file (no system service needed).
SOCK="$DIR/munge/munge.socket"
[ -f "$DIR/munge/munge.key" ] || dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 2>/dev/null
chmod 400 "$DIR/munge/munge.key"
munged --force --key-file="$DIR/munge/munge.key" --socket="$SOCK" \
    --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/log/munged.log" \
    --seed-file="$DIR/munge/munged.seed"
for _ in $(seq 50); do [ -s "$DIR/munge/munged.pid" ] && break; sleep 0.1; done
cat "$DIR/munge/munged.pid" >> "$DIR/pids"

USER_NAME="$(id -un)"
cat > "$DIR/slurm.conf" <<CONF
ClusterName=convlab
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=$USER_NAME
SlurmdUser=$USER_NAME
AuthType=auth/munge
AuthInfo=socket=$SOCK
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
NodeName=n1 NodeHostname=localhost NodeAddr=127.0.0.1 Port=17001 CPUs=1
NodeName=n2 NodeHostname=localhost NodeAddr=127.0.0.1 Port=17002 CPUs=1
PartitionName=debug Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$DIR/slurm.conf"

slurmctld -c -f "$SLURM_CONF"
for _ in $(seq 100); do [ -s "$DIR/slurmctld.pid" ] && break; sleep 0.1; done
cat "$DIR/slurmctld.pid" >> "$DIR/pids"
for node in n1 n2; do
    mkdir -p "$DIR/spool/$node"
    slurmd -N "$node" -f "$SLURM_CONF"
    for _ in $(seq 100); do [ -s "$DIR/slurmd.$node.pid" ] && break; sleep 0.1; done
    cat "$DIR/slurmd.$node.pid" >> "$DIR/pids"
done

# Ready when both nodes are idle.
for _ in $(seq 300); do
    if [ "$(sinfo -h -N -o '%N %t' 2>/dev/null | grep -c ' idle')" = 2 ]; then
        sinfo -N
        exit 0
    fi
    sleep 0.2
done
echo "slurm did not come up; logs in $DIR/log" >&2
sinfo -N >&2 || true
exit 1

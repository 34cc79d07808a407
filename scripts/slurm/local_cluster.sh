#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for trying and testing sharded sweeps:
# writes a minimal slurm.conf for this host (its real CPU count and memory, from
# `slurmd -C`), starts munged, slurmctld and slurmd as root and waits until the node
# is idle. Needs root and Debian's slurm-wlm and munge packages
# (apt-get install slurm-wlm munge).
#
#   sudo scripts/slurm/local_cluster.sh start   # prints the SLURM_CONF to export
#   export SLURM_CONF=/tmp/fisheval-slurm/slurm.conf
#   sbatch ...; squeue; sinfo
#   sudo scripts/slurm/local_cluster.sh stop
#
# Everything lives in FISHEVAL_SLURM_DIR (default /tmp/fisheval-slurm): the config,
# state, logs and the daemons' pid files. /etc/slurm is not touched, so an existing
# cluster configuration on the machine is left alone.
set -euo pipefail

DIR=${FISHEVAL_SLURM_DIR:-/tmp/fisheval-slurm}
CONF=$DIR/slurm.conf
ACTION=${1:-start}

die() { echo "local_cluster: $*" >&2; exit 1; }

stop() {
  for d in slurmd slurmctld munged; do
    if [ -f "$DIR/$d.pid" ]; then
      local pid
      pid=$(cat "$DIR/$d.pid")
      if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        echo "local_cluster: stopped $d (pid $pid)"
      fi
      rm -f "$DIR/$d.pid"
    fi
  done
}

if [ "$ACTION" = stop ]; then stop; exit 0; fi
[ "$ACTION" = start ] || die "usage: $0 start|stop"
[ "$(id -u)" -eq 0 ] || die "must run as root (slurmd and munged need it)"
for tool in munged slurmctld slurmd sinfo sbatch; do
  command -v "$tool" >/dev/null || die "$tool not found: apt-get install slurm-wlm munge"
done

stop  # a cluster started earlier from this folder
for port in 6817 6818; do
  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
    die "port $port is in use: another Slurm daemon runs on this machine (stop it, or use its cluster with SLURM_CONF)"
  fi
done
mkdir -p "$DIR"/{state,spool,log,munge}
chmod 755 "$DIR"
HOST=$(hostname -s)
# The node's real hardware as slurmd sees it (CPUs, sockets, cores, threads, memory).
NODE_LINE=$(slurmd -C | head -1)
case "$NODE_LINE" in NodeName=*) ;; *) die "slurmd -C did not describe this node: $NODE_LINE" ;; esac

cat > "$CONF" <<CONF
# Written by scripts/slurm/local_cluster.sh for a one-node cluster on $HOST.
ClusterName=fisheval-local
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# No cgroups: works in containers and VMs without a delegated cgroup tree.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
$NODE_LINE State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF

# munge: one key shared by the daemons and the clients (here all on one host).
MUNGE_KEY=/etc/munge/munge.key
if [ ! -s "$MUNGE_KEY" ]; then
  mkdir -p /etc/munge
  dd if=/dev/urandom of="$MUNGE_KEY" bs=1 count=1024 status=none
fi
chown munge:munge "$MUNGE_KEY" 2>/dev/null || true
chmod 400 "$MUNGE_KEY"
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown munge:munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  if id munge >/dev/null 2>&1; then
    runuser -u munge -- munged --pid-file=/run/munge/munged.pid
  else
    munged --force --pid-file=/run/munge/munged.pid
  fi
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.2; done
  cp /run/munge/munged.pid "$DIR/munged.pid" 2>/dev/null || true
fi
munge -n | unmunge >/dev/null || die "munged does not answer"

slurmctld -f "$CONF" -i
slurmd -f "$CONF"
export SLURM_CONF=$CONF
for _ in $(seq 120); do
  state=$(sinfo -h -N -o %T 2>/dev/null | head -1 || true)
  [ "$state" = idle ] && break
  sleep 0.5
done
[ "${state:-}" = idle ] || { tail -20 "$DIR"/log/*.log >&2; die "node did not become idle (state '${state:-none}')"; }
sinfo
echo "local_cluster: one-node cluster up ($NODE_LINE)"
echo "export SLURM_CONF=$CONF"

#!/usr/bin/env bash
# Bring up a throwaway single-node SLURM cluster on 127.0.0.1 (Debian 12's slurm-wlm 22.05), as root,
# without systemd: munged + MariaDB + slurmdbd (so `sacct` works) + slurmctld + slurmd, with a fake
# GPU GRES backed by /dev/null-like device nodes, and two partitions on the one node: `debug`
# (default) and `gpu`. Used by tests/cluster/test_slurm.py; runnable by hand:
#
#   CLUSTER_DIR=/tmp/slurm-ci tests/cluster/slurm_up.sh && export SLURM_CONF=/tmp/slurm-ci/etc/slurm.conf
#   ... sinfo, sbatch, snakemake --workflow-profile profiles/slurm ...
#   CLUSTER_DIR=/tmp/slurm-ci tests/cluster/slurm_down.sh
#
# Everything the cluster writes (slurm.conf, gres.conf, slurmdbd.conf, state, logs, pid files, the
# MariaDB data directory) lives in $CLUSTER_DIR. Clients find the cluster through
# SLURM_CONF=$CLUSTER_DIR/etc/slurm.conf, and through a symlink /etc/slurm/slurm.conf made only when
# none exists (see below why) and removed by slurm_down.sh. munged is the system one (/run/munge, key
# /etc/munge/munge.key from the package): reused if already running, else started here.
# The PID of every daemon started here is written to $CLUSTER_DIR/pids/<name>.pid; slurm_down.sh
# stops exactly those. Lines "TIMING <step> <seconds>" on stdout report the time of each step.
#
# Settings (environment):
#   CLUSTER_DIR  required; created if missing
#   FAKE_GPUS    number of fake GPUs on the node (default 1)
#   NODE_CPUS    CPUs the node advertises (default: the real count). More than the real count lets
#                more small jobs run side by side (SlurmdParameters=config_overrides).
#   INSTALL      1 (default): apt-get install the packages when a program is missing; 0: fail instead
#   DB_PORT      TCP port of the private MariaDB on 127.0.0.1 (default 3316)
set -euo pipefail

CLUSTER_DIR=${CLUSTER_DIR:?set CLUSTER_DIR}
FAKE_GPUS=${FAKE_GPUS:-1}
INSTALL=${INSTALL:-1}
DB_PORT=${DB_PORT:-3316}
CLUSTER_DIR=$(mkdir -p "$CLUSTER_DIR" && cd "$CLUSTER_DIR" && pwd)
ETC=$CLUSTER_DIR/etc PIDS=$CLUSTER_DIR/pids LOG=$CLUSTER_DIR/log STATE=$CLUSTER_DIR/state
mkdir -p "$ETC" "$PIDS" "$LOG" "$STATE/ctld" "$STATE/d" "$CLUSTER_DIR/dev"
export SLURM_CONF=$ETC/slurm.conf

now() { date +%s.%N; }
timing() { awk -v a="$2" -v b="$(now)" -v s="$1" 'BEGIN { printf "TIMING %s %.1f\n", s, b - a }'; }
wait_for() {  # wait_for <tries of 0.2 s> <what> <command...>
  local tries=$1 what=$2; shift 2
  for _ in $(seq "$tries"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "slurm_up.sh: timed out waiting for $what" >&2; return 1
}
# A daemon in the foreground (-D style) in the background of this script: $! is its real PID.
# setsid: its own session, so signals meant for the caller's process group do not reach it.
start() {  # start <name> <command...>
  local name=$1; shift
  setsid "$@" </dev/null >"$LOG/$name.out" 2>&1 &
  echo $! >"$PIDS/$name.pid"
}

# --- packages -------------------------------------------------------------------------------------
t=$(now)
missing=0
for prog in slurmctld slurmd slurmdbd sbatch sacct sacctmgr munged mariadbd mariadb-install-db; do
  command -v "$prog" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin:/sbin command -v "$prog" >/dev/null 2>&1 || missing=1
done
export PATH=$PATH:/usr/sbin:/sbin
if [ "$missing" = 1 ]; then
  [ "$INSTALL" = 1 ] || { echo "slurm_up.sh: SLURM/munge/MariaDB programs missing and INSTALL=0" >&2; exit 1; }
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >"$LOG/apt-update.log" 2>&1
  timing apt-update "$t"
  t2=$(now)
  apt-get install -y -q --no-install-recommends slurm-wlm munge slurmdbd mariadb-server \
    >"$LOG/apt-install.log" 2>&1
  timing apt-install "$t2"
fi
timing packages "$t"

# --- refuse to collide with a SLURM that is already running here ---------------------------------
for port in 6817 6818 6819 "$DB_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "slurm_up.sh: port $port on 127.0.0.1 is in use (another SLURM or MariaDB?); not starting" >&2
    exit 3
  fi
done

# --- configuration --------------------------------------------------------------------------------
t=$(now)
NODE=$(hostname -s)
HW=$(slurmd -C)
MEM=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$HW")
CPUS=${NODE_CPUS:-$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$HW")}
# A GPU GRES needs File= (slurmd drops file-less GPUs and the node goes INVAL). With
# TaskPlugin=task/none no device cgroup is applied, so character devices with /dev/null's numbers do.
if [ "$FAKE_GPUS" -gt 0 ]; then
  for i in $(seq 0 $((FAKE_GPUS - 1))); do
    [ -e "$CLUSTER_DIR/dev/fakegpu$i" ] || mknod "$CLUSTER_DIR/dev/fakegpu$i" c 1 3
  done
  echo "NodeName=$NODE Name=gpu File=$CLUSTER_DIR/dev/fakegpu[0-$((FAKE_GPUS - 1))]" >"$ETC/gres.conf"
  GRES="Gres=gpu:$FAKE_GPUS"
else
  : >"$ETC/gres.conf"
  GRES=""
fi
cat >"$ETC/slurm.conf" <<EOF
ClusterName=inpcaci
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
SlurmdParameters=config_overrides
ReturnToService=2
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$CLUSTER_DIR/slurmctld.pid
SlurmdPidFile=$CLUSTER_DIR/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
AccountingStorageTRES=gres/gpu
JobAcctGatherType=jobacct_gather/linux
AccountingStoreFlags=job_comment
JobCompType=jobcomp/none
InactiveLimit=0
KillWait=5
MinJobAge=300
GresTypes=gpu
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM $GRES State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=ALL Default=NO MaxTime=INFINITE State=UP
EOF
cat >"$ETC/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
LogFile=$LOG/slurmdbd.log
PidFile=$CLUSTER_DIR/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurmdbpass
StorageLoc=slurm_acct_db
EOF
chmod 600 "$ETC/slurmdbd.conf"
# Clients in jobs need the default path too: snakemake-executor-plugin-slurm-jobstep (0.6.1) removes
# every SLURM_* variable, SLURM_CONF included, before its nested `srun`, which then finds no
# configuration ("DNS SRV lookup failed"). So /etc/slurm/slurm.conf becomes a symlink to ours, made
# only where no slurm.conf exists (or a dangling link of an earlier run), and removed by slurm_down.sh.
mkdir -p /etc/slurm
if [ -L /etc/slurm/slurm.conf ] && [ ! -e /etc/slurm/slurm.conf ]; then
  rm -f /etc/slurm/slurm.conf
fi
if [ -e /etc/slurm/slurm.conf ] && [ "$(readlink /etc/slurm/slurm.conf)" != "$ETC/slurm.conf" ]; then
  echo "slurm_up.sh: /etc/slurm/slurm.conf exists (a real SLURM here?); not touching it" >&2
  exit 3
fi
ln -sfn "$ETC/slurm.conf" /etc/slurm/slurm.conf
echo /etc/slurm/slurm.conf >"$CLUSTER_DIR/etc-link"
timing config "$t"

# --- munge ----------------------------------------------------------------------------------------
t=$(now)
if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
  echo "munged already running; reusing it (not ours to stop)"
else
  mkdir -p /run/munge && chown munge:munge /run/munge
  if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --force
    chown munge:munge /etc/munge/munge.key && chmod 600 /etc/munge/munge.key
  fi
  runuser -u munge -- /usr/sbin/munged  # daemonizes itself: take the PID from its pid file
  wait_for 50 "munged" test -s /run/munge/munged.pid
  cp /run/munge/munged.pid "$PIDS/munged.pid"
  wait_for 50 "munge round trip" bash -c 'munge -n </dev/null | unmunge'
fi
timing munged "$t"

# --- MariaDB (private data directory, TCP on 127.0.0.1 only) --------------------------------------
t=$(now)
DB=$CLUSTER_DIR/mysql
if [ ! -d "$DB/mysql" ]; then
  mariadb-install-db --no-defaults --user=root --datadir="$DB" --auth-root-authentication-method=normal \
    --skip-test-db >"$LOG/mariadb-install-db.log" 2>&1
fi
start mariadbd mariadbd --no-defaults --user=root --datadir="$DB" --socket="$CLUSTER_DIR/mysqld.sock" \
  --port="$DB_PORT" --bind-address=127.0.0.1 --pid-file="$CLUSTER_DIR/mariadbd.pid" \
  --log-error="$LOG/mariadb.log" --innodb-buffer-pool-size=64M
wait_for 150 "mariadbd" mariadb-admin --no-defaults --socket="$CLUSTER_DIR/mysqld.sock" -u root ping
mariadb --no-defaults --socket="$CLUSTER_DIR/mysqld.sock" -u root -e "
  CREATE DATABASE IF NOT EXISTS slurm_acct_db;
  CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurmdbpass';
  CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmdbpass';
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
  FLUSH PRIVILEGES;"
timing mariadb "$t"

# --- slurmdbd, slurmctld, slurmd ------------------------------------------------------------------
t=$(now)
start slurmdbd slurmdbd -D
wait_for 150 "slurmdbd" sacctmgr -n list cluster
sacctmgr -i add cluster inpcaci >/dev/null 2>&1 || true
timing slurmdbd "$t"

t=$(now)
start slurmctld slurmctld -D
start slurmd slurmd -D
node_idle() { [ "$(sinfo -h -p debug -o %T 2>/dev/null)" = idle ]; }
wait_for 150 "node $NODE idle" node_idle
# the controller registers with slurmdbd by itself; wait until accounting knows the cluster
wait_for 100 "cluster registration" bash -c 'sacctmgr -n -P list cluster format=ControlHost | grep -q .'
timing slurmctld+slurmd "$t"

sinfo -o '%P %a %D %T %C %G'
echo "SLURM_CONF=$SLURM_CONF"

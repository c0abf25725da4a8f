#!/usr/bin/env bash
# Stop the daemons that slurm_up.sh started, by the PIDs it recorded in $CLUSTER_DIR/pids, in reverse
# order of start (slurmd + slurmctld, slurmdbd, mariadbd + munged): SIGTERM, then SIGKILL after 10 s.
# Jobs still queued or running on the cluster are cancelled first. Safe to run twice, or after a
# slurm_up.sh that failed half-way: it only touches recorded PIDs (and its own /etc/slurm symlink).
set -u
CLUSTER_DIR=${CLUSTER_DIR:?set CLUSTER_DIR}
[ -d "$CLUSTER_DIR" ] && CLUSTER_DIR=$(cd "$CLUSTER_DIR" && pwd)
PIDS=$CLUSTER_DIR/pids
status=0
# Cancel what is still queued or running on this private cluster first: job steps run under
# slurmstepd, which outlives slurmd.
if [ -s "$CLUSTER_DIR/pids/slurmctld.pid" ] && [ -f "$CLUSTER_DIR/etc/slurm.conf" ]; then
  export SLURM_CONF=$CLUSTER_DIR/etc/slurm.conf PATH=$PATH:/usr/sbin
  jobs=$(timeout 10 squeue -h -o %i 2>/dev/null)
  if [ -n "$jobs" ]; then
    echo "cancelling jobs:" $jobs
    timeout 10 scancel $jobs 2>/dev/null
    for _ in $(seq 50); do [ -z "$(timeout 5 squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.2; done
  fi
fi
# SIGTERM to every daemon of a phase at once, then wait for them (SIGKILL after 10 s). Phases keep the
# order that matters: slurmctld flushes accounting to slurmdbd, which needs MariaDB, and all of them
# need munged. Each daemon takes 1-2 s to exit.
stop_phase() {
  local name pid pids=() names=()
  for name in "$@"; do
    f=$PIDS/$name.pid
    [ -s "$f" ] || continue
    pid=$(cat "$f")
    if kill "$pid" 2>/dev/null; then pids+=("$pid"); names+=("$name"); fi
    rm -f "$f"
  done
  for i in "${!pids[@]}"; do
    pid=${pids[$i]}
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      kill -9 "$pid" 2>/dev/null
      echo "killed ${names[$i]} ($pid) after 10 s"
    else
      echo "stopped ${names[$i]} ($pid)"
    fi
  done
}
stop_phase slurmd slurmctld
stop_phase slurmdbd
stop_phase mariadbd munged
# the /etc/slurm/slurm.conf symlink, if slurm_up.sh made it and it still points here
if [ -s "$CLUSTER_DIR/etc-link" ]; then
  link=$(cat "$CLUSTER_DIR/etc-link")
  [ "$(readlink "$link")" = "$CLUSTER_DIR/etc/slurm.conf" ] && rm -f "$link" && echo "removed $link"
  rm -f "$CLUSTER_DIR/etc-link"
fi
exit $status

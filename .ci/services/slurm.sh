# A one-node Slurm cluster on this machine for the Slurm executor's tests (sourced by .ci/run).
#
# Installs Debian's slurm-wlm + munge when missing, writes a one-node slurm.conf under a private folder
# (this machine's CPUs and memory from `slurmd -C`, partition "debug", no cgroups, no accounting), starts
# munged, slurmctld and slurmd in the background and waits until the node is idle. Exports SLURM_CONF and
# W2S_SLURM_PARTITION. Idempotent: daemons that already answer are reused. Runs as root (CI machines).
# Standalone: `bash .ci/services/slurm.sh` (then `export SLURM_CONF=/var/tmp/w2s-slurm/slurm.conf`).

w2s_slurm_log_tails() {
  local f
  for f in "$W2S_SLURM_HOME"/log/*.log /var/log/munge/munged.log; do
    [ -f "$f" ] || continue
    echo "---- last lines of $f" >&2
    tail -n 30 "$f" >&2
  done
}

w2s_slurm_alive() {  # pid file -> is that process running?
  local pid
  [ -f "$1" ] || return 1
  pid="$(cat "$1" 2>/dev/null || true)"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

w2s_slurm_write_conf() {
  local node hw conf tmp cpus mem
  node="$(hostname -s)"
  hw="$(slurmd -C | head -n 1)"  # NodeName=<host> CPUs=.. Boards=.. ... RealMemory=..
  cpus="$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$hw")"
  mem="$(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")"
  [ -n "$cpus" ] && [ -n "$mem" ] || { echo "slurm: cannot read CPUs/RealMemory from 'slurmd -C': $hw" >&2; return 1; }
  mem=$((mem * 95 / 100))  # a little below what slurmd reports, so the node never registers as low on memory
  conf="$W2S_SLURM_HOME/slurm.conf"
  tmp="$conf.tmp"
  cat >"$tmp" <<EOF
# written by .ci/services/slurm.sh: a one-node cluster for tests
ClusterName=w2s
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
SwitchType=switch/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,batch_sched_delay=0
MinJobAge=900
KillWait=5
ReturnToService=2
StateSaveLocation=$W2S_SLURM_HOME/state
SlurmdSpoolDir=$W2S_SLURM_HOME/spool
SlurmctldPidFile=$W2S_SLURM_HOME/slurmctld.pid
SlurmdPidFile=$W2S_SLURM_HOME/slurmd.pid
SlurmctldLogFile=$W2S_SLURM_HOME/log/slurmctld.log
SlurmdLogFile=$W2S_SLURM_HOME/log/slurmd.log
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
  if [ -f "$conf" ] && cmp -s "$tmp" "$conf"; then
    rm -f "$tmp"
    W2S_SLURM_CONF_CHANGED=0
  else
    mv "$tmp" "$conf"
    W2S_SLURM_CONF_CHANGED=1
  fi
}

w2s_slurm_start() {
  local need=() node i state
  command -v sbatch >/dev/null 2>&1 || need+=(slurm-wlm)
  command -v munged >/dev/null 2>&1 || need+=(munge)
  if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  mkdir -p "$W2S_SLURM_HOME"/{state,spool,log}
  export SLURM_CONF="$W2S_SLURM_HOME/slurm.conf"

  if [ ! -s /etc/munge/munge.key ]; then  # the package makes one; a bare image may not have it
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 2>/dev/null
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
  fi
  if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    mkdir -p /run/munge
    chown munge:munge /run/munge
    chmod 0755 /run/munge
    runuser -u munge -- /usr/sbin/munged || { echo "slurm: munged did not start" >&2; w2s_slurm_log_tails; return 1; }
  fi

  w2s_slurm_write_conf || return 1
  if w2s_slurm_alive "$W2S_SLURM_HOME/slurmctld.pid" && scontrol ping >/dev/null 2>&1; then
    echo "slurm: reusing the running slurmctld"
    if [ "$W2S_SLURM_CONF_CHANGED" = 1 ]; then
      scontrol reconfigure || { echo "slurm: scontrol reconfigure failed" >&2; w2s_slurm_log_tails; return 1; }
    fi
  else
    # no -D: both daemons fork into the background and write their pid files
    slurmctld -f "$SLURM_CONF" || { echo "slurm: slurmctld did not start" >&2; w2s_slurm_log_tails; return 1; }
  fi
  [ -e /etc/slurm/slurm.conf ] || ln -s "$SLURM_CONF" /etc/slurm/slurm.conf  # plain client commands work too
  if ! w2s_slurm_alive "$W2S_SLURM_HOME/slurmd.pid"; then
    slurmd -f "$SLURM_CONF" || { echo "slurm: slurmd did not start" >&2; w2s_slurm_log_tails; return 1; }
  fi

  node="$(hostname -s)"
  for i in $(seq 1 60); do
    state="$(sinfo -h -n "$node" -o %t 2>/dev/null || true)"
    case "$state" in
      idle|mix|alloc) echo "slurm: node $node is $state (SLURM_CONF=$SLURM_CONF)"; return 0 ;;
      down*|drain*|*fail*) scontrol update nodename="$node" state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 1
  done
  echo "slurm: node $node not idle after 60s (sinfo says '${state:-nothing}')" >&2
  sinfo -N -l >&2 || true
  w2s_slurm_log_tails
  return 1
}

export W2S_SLURM_HOME="${W2S_SLURM_HOME:-/var/tmp/w2s-slurm}"
export W2S_SLURM_PARTITION="${W2S_SLURM_PARTITION:-debug}"
if ! w2s_slurm_start; then
  echo "slurm: the one-node cluster did not come up (logs above)" >&2
  return 1 2>/dev/null || exit 1
fi

#!/usr/bin/env bash
# A sweep on a real Slurm. The test starts a one-node Slurm of its own from Debian's packages
# (munge, slurmctld, slurmd, slurm-client): a generated munge key, munged, slurmctld and
# slurmd in the foreground as background jobs of this script, a localhost slurm.conf in a
# temporary folder (SlurmUser root, as the test and CI run; proctrack/linuxproc, task/none,
# no cgroups, no accounting), ports picked free from this process's id. It submits the
# 4-cell tiny sweep of tests/fixtures/slurm/sweep.lua with --slurm, cancels the array task of
# cell 4 while that cell waits at its second decision, checks the other three results, the
# report and the job log, resubmits (only cell 4 runs, resuming from its checkpoint, and its
# file equals an uninterrupted run of that cell), resubmits again (nothing to submit), runs
# one cell as 2 srun ranks, and checks that sbatch's refusal of a bad partition is one line,
# exit 1, no file. Every wait is bounded; the daemons are stopped on any exit. When Slurm
# cannot start here the test says why and is skipped (exit 77).
. "$(dirname "$0")/lib.sh"
FIX=$SRC/tests/fixtures/slurm

skip() { echo "SKIP: test_slurm: $*"; exit 77; }
# wait_for SECONDS WHAT COMMAND...: poll COMMAND every 0.2 s; 1 after the time is up
wait_for() {
  local tries=$(($1 * 5)) what=$2
  shift 2
  while [ "$tries" -gt 0 ]; do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
    tries=$((tries - 1))
  done
  echo "timed out waiting for $what" >&2
  return 1
}

# ---- the programs ----
prog() { command -v "$1" 2>/dev/null || { [ -x "/usr/sbin/$1" ] && echo "/usr/sbin/$1"; }; }
for p in munged munge slurmctld slurmd sbatch squeue scancel scontrol sinfo srun; do
  [ -n "$(prog "$p")" ] || skip "$p not found (Debian packages munge slurmctld slurmd slurm-client; scripts/setup.sh installs them)"
done
MUNGED=$(prog munged) SLURMCTLD=$(prog slurmctld) SLURMD=$(prog slurmd)

# ---- a free pair of ports, from the pid, in 20000..59999 ----
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PORT=
for i in $(seq 0 49); do
  p=$((20000 + ($$ * 7 + i * 101) % 40000))
  if ! port_taken "$p" && ! port_taken $((p + 1)); then PORT=$p; break; fi
done
[ -n "$PORT" ] || skip "no two free ports found near $((20000 + $$ * 7 % 40000))"

# ---- start and stop ----
SL=$(mktemp -d /tmp/af-slurm.XXXXXX)  # short: the munge socket path must fit in 107 bytes
PIDS=()
stop_slurm() {
  if [ -n "${SLURM_CONF:-}" ] && [ ${#PIDS[@]} -gt 0 ]; then
    scancel --quiet --user="$(id -un)" 2>/dev/null
    wait_for 20 "the jobs to end" sh -c '[ -z "$(squeue -h 2>/dev/null)" ]' 2>/dev/null
  fi
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do
    wait_for 10 "daemon $pid to stop" sh -c "! kill -0 $pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  # whatever our jobs left (their command lines name our folders)
  for pid in $(pgrep -f "$TMP/|$SL/" 2>/dev/null); do [ "$pid" != $$ ] && kill -KILL "$pid" 2>/dev/null; done
  PIDS=()
  rm -rf "$SL"
}
trap 'stop_slurm; rm -rf "$TMP"' EXIT
trap 'exit 1' INT TERM HUP
# skip with the daemons' own last words
cannot_start() {
  echo "--- munged, slurmctld, slurmd said:" >&2
  for f in "$SL"/*.log; do [ -s "$f" ] && sed "s|^|  $(basename "$f"): |" "$f" | grep -iE "error|fatal|denied|unable|fail" | grep -v pmix | tail -5 >&2; done
  skip "Slurm could not start here: $*"
}

T0=$(date +%s)
mkdir -p "$SL/state" "$SL/spool"
head -c 1024 /dev/urandom >"$SL/munge.key" && chmod 400 "$SL/munge.key"
"$MUNGED" -F -f --key-file="$SL/munge.key" --socket="$SL/munge.sock" --pid-file="$SL/munged.pid" \
  --log-file="$SL/munged.log" --seed-file="$SL/munged.seed" >>"$SL/munged.log" 2>&1 &
PIDS+=($!)
wait_for 10 "munged" sh -c "munge -n -S '$SL/munge.sock' | unmunge -S '$SL/munge.sock'" \
  || cannot_start "munged did not answer on $SL/munge.sock$(kill -0 "${PIDS[0]}" 2>/dev/null || echo ' (it exited)')"
HOST=$(hostname -s)
cat >"$SL/slurm.conf" <<EOF
ClusterName=aftest
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SL/munge.sock
StateSaveLocation=$SL/state
SlurmdSpoolDir=$SL/spool
SlurmctldPidFile=$SL/slurmctld.pid
SlurmdPidFile=$SL/slurmd.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
KillWait=2
InactiveLimit=0
MinJobAge=600
MailProg=/bin/true
NodeName=afnode NodeAddr=127.0.0.1 NodeHostname=$HOST CPUs=2 State=UNKNOWN
PartitionName=af Nodes=afnode Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$SL/slurm.conf
"$SLURMCTLD" -D -f "$SLURM_CONF" >"$SL/slurmctld.log" 2>&1 &
PIDS+=($!)
"$SLURMD" -D -N afnode -f "$SLURM_CONF" >"$SL/slurmd.log" 2>&1 &
PIDS+=($!)
for i in $(seq 150); do  # 30 s at most, less when a daemon gives up
  [ "$(sinfo -h -N -o %T 2>/dev/null)" = idle ] && break
  kill -0 "${PIDS[1]}" 2>/dev/null || cannot_start "slurmctld exited"
  kill -0 "${PIDS[2]}" 2>/dev/null || cannot_start "slurmd exited"
  [ "$i" = 150 ] && cannot_start "the node did not come up idle within 30 s (sinfo: $(sinfo -h -N -o '%T %E' 2>&1 | head -1))"
  sleep 0.2
done
echo "slurm up in $(($(date +%s) - T0)) s: ports $PORT-$((PORT + 1)), conf $SLURM_CONF"

# wait_job ID: until none of the job's array tasks is pending or running (300 s at most: a
# 2-rank cell under ASan on 2 loaded cores once ran past 90 s)
wait_job() { wait_for 300 "job $1" sh -c "[ -z \"\$(squeue -h -j $1 2>/dev/null)\" ]" || fail "job $1 did not end in 300 s"; }
job_of() { sed -n 's/^Submitted batch job \([0-9]*\)$/\1/p' "$TMP/out"; }

make_tiny
W=$TMP/work
mkdir -p "$W/ctl"
cd "$W" || exit 1
sw=(run "$FIX/sweep.lua" --set "data=$TMP/tiny" --set out=res --set ctl=ctl)

# a refusal by the real sbatch: one line, exit 1, nothing written
expect_rc 1 "a partition Slurm does not have" -- "$BIN" "${sw[@]}" --slurm --slurm-opt=--partition=nope
[ "$(wc -l <"$TMP/err")" -eq 1 ] || fail "refusal: expected one line on stderr"
expect_in "$TMP/err" "^autofreeze run: sbatch refused the job \(exit 1\): .*[Ii]nvalid partition" "refusal message"
[ -e res ] && fail "the refused submission left files: $(find res)"

# the uninterrupted cell 4, outside Slurm
expect_rc 0 "reference run of cell 4" -- "$BIN" run "$FIX/sweep.lua" --set "data=$TMP/tiny" --set out=ref --set ctl=ctl --cell 4

# submit; cell 4 holds at its second decision and its array task is cancelled there
touch ctl/hold-4
expect_rc 0 "--slurm" -- "$BIN" "${sw[@]}" --slurm --slurm-max-parallel 2
expect_in "$TMP/out" "4 of 4 cells \(--array=1-4\), script res/slurm/sweep.sbatch" "submission line"
JOB=$(job_of)
[ -n "$JOB" ] || { fail "no job id printed"; finish test_slurm; }
expect_in res/slurm/sweep.sbatch "^#SBATCH --array=1-4%2$" "array line"
wait_for 60 "cell 4 to hold" test -e ctl/held-4 || fail "cell 4 never reached its second decision"
scancel "${JOB}_4"
wait_job "$JOB"
scontrol show job "${JOB}_4" 2>/dev/null | grep -q "JobState=CANCELLED" || fail "array task 4 is not CANCELLED"
expect_rc 0 "--list-cells after the cancel" -- "$BIN" "${sw[@]}" --list-cells
expect_in "$TMP/out" "4 cells, 3 complete" "three cells done"
expect_in "$TMP/out" "^\|    4 \| sst2-hold-s2 .*\| no +\| (running or killed|interrupted) \(resumable\)" "cell 4 resumable"
for c in 1 2 3; do [ -s "res/slurm/${JOB}_$c.out" ] || fail "no log res/slurm/${JOB}_$c.out"; done
expect_in "res/slurm/${JOB}_3.out" "^\[3/4\] sst2-hold-s1$" "cell 3's log"
expect_rc 0 "--report with a cell missing" -- "$BIN" "${sw[@]}" --report
expect_in "$TMP/out" "report: 3 of 4 cells complete in res" "report title"
expect_in "$TMP/out" "not complete: cell 4 sst2-hold-s2: .*\(resumable\)" "report names cell 4"
expect_in "$TMP/out" "script goes on with 3 rows" "the script's own report step"

# resubmit: cell 4 only, resumed, and equal to the uninterrupted run
rm -f ctl/hold-4
expect_rc 0 "--slurm again" -- "$BIN" "${sw[@]}" --slurm
expect_in "$TMP/out" "1 of 4 cells \(--array=4\)" "only cell 4 submitted"
JOB2=$(job_of)
[ -n "$JOB2" ] || { fail "no job id printed"; finish test_slurm; }
wait_job "$JOB2"
expect_in "res/slurm/${JOB2}_4.out" "sst2-hold-s2  \(previous file: (running|interrupted); resuming from its checkpoint\)" \
  "cell 4 resumed"
expect_rc 0 "resumed cell 4 = uninterrupted cell 4" -- "$BIN" run "$FIX/same_run.lua" ref/sst2-hold-s2.h5 res/sst2-hold-s2.h5
expect_in "$TMP/out" "same run: 20 steps" "same run"

# a finished sweep: nothing submitted, the report is whole
nlogs=$(ls res/slurm/*.out | wc -l)
expect_rc 0 "--slurm on the finished sweep" -- "$BIN" "${sw[@]}" --slurm
expect_in "$TMP/out" "all 4 cells of .*sweep.lua are complete in res: nothing to submit" "nothing to submit"
grep -q "Submitted" "$TMP/out" && fail "a finished sweep was submitted"
sleep 1
[ -z "$(squeue -h 2>/dev/null)" ] || fail "jobs in the queue after a finished sweep: $(squeue -h)"
[ "$(ls res/slurm/*.out | wc -l)" = "$nlogs" ] || fail "a job ran for a finished sweep"
expect_rc 0 "--report, all complete" -- "$BIN" "${sw[@]}" --report
expect_in "$TMP/out" "report: 4 of 4 cells complete in res" "complete report"

# one cell as 2 ranks under srun (cells 1-3 copied as complete). Where this Slurm has PMIx
# (srun --mpi=list) the script runs srun --mpi=pmix and, autofreeze built with MPI, the ranks
# are one MPI job: the cell trains data-parallel (same decisions, values within fp32 reduction
# order). Otherwise rank 0 runs the cell alone (the same run bit for bit) and rank 1 idles.
mkdir -p res2 && cp res/sst2-none-s*.h5* res/sst2-hold-s1.h5* res2/ 2>/dev/null
expect_rc 0 "--slurm --slurm-ntasks 2" -- "$BIN" run "$FIX/sweep.lua" --set "data=$TMP/tiny" --set out=res2 \
  --set ctl=ctl --slurm --slurm-ntasks 2
expect_in "$TMP/out" "1 of 4 cells \(--array=4\)" "one cell with 2 ranks"
JOB3=$(job_of)
dp=
srun --mpi=list 2>&1 | grep -qw pmix && ldd "$BIN" | grep -q libmpi && dp=dp  # PMIx here, autofreeze with MPI
if [ -n "$JOB3" ]; then
  wait_job "$JOB3"
  expect_in "res2/slurm/${JOB3}_4.out" "^\[4/4\] sst2-hold-s2$" "rank 0 ran the cell"
  if [ -n "$dp" ]; then
    expect_in res2/slurm/sweep.sbatch "^exec srun \\\$AF_SRUN_MPI " "srun line"
    grep -q "rank 1 idle" "res2/slurm/${JOB3}_4.out" && fail "srun --mpi=pmix: rank 1 idled instead of joining the MPI job"
    expect_rc 0 "the 2-rank cell = cell 4, data-parallel" -- "$BIN" run "$FIX/same_run.lua" ref/sst2-hold-s2.h5 \
      res2/sst2-hold-s2.h5 dp
    echo "srun --mpi=pmix: $(tail -1 "$TMP/out")"
  else
    expect_in "res2/slurm/${JOB3}_4.out" "cell 4: rank 1 idle" "rank 1 under srun"
    expect_rc 0 "the 2-rank cell = uninterrupted cell 4" -- "$BIN" run "$FIX/same_run.lua" ref/sst2-hold-s2.h5 res2/sst2-hold-s2.h5
  fi
else
  fail "no job id printed for the 2-rank cell"
fi

stop_slurm
for pid in $(pgrep -x "munged|slurmctld|slurmd" 2>/dev/null); do
  grep -qs "$SL" "/proc/$pid/cmdline" && fail "daemon $pid still running after the stop"
done
echo "test_slurm: $(($(date +%s) - T0)) s with Slurm"
finish test_slurm

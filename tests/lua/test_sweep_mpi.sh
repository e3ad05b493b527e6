#!/bin/bash
# af.sweep as a data-parallel job (`mpirun -np 2 autofreeze run sweep.lua`): the ranks follow
# rank 0's decision for every cell (af.broadcast), so a cell another run holds is skipped by
# every rank, and the next cell is run by both ranks together. Before, a rank > 0 that found
# the cell claimed took the claim for rank 0's own and went in alone: rank 0 was in the next
# cell, and the two ranks' collectives met across cells (a hang, or numbers from the wrong
# cell). Also af.broadcast itself: every rank gets rank 0's string. Skips (77) without mpirun
# or an autofreeze built with MPI.
. "$(dirname "$0")/lib.sh"
command -v mpirun >/dev/null || { echo "no mpirun: skipped"; exit 77; }
ldd "$BIN" | grep -q libmpi || { echo "autofreeze built without MPI: skipped"; exit 77; }
MPIRUN="timeout 300 mpirun --allow-run-as-root --oversubscribe -np 2 -x OMP_NUM_THREADS=1 -x OMP_WAIT_POLICY=PASSIVE
        -x ASAN_OPTIONS=detect_leaks=0 -x AF_SOURCE_DIR"
cd "$TMP" || exit 1

cat >bcast.lua <<'LUA'
local af = require "autofreeze"
local got = af.broadcast("from rank " .. af.rank .. "\0with a zero byte")
print(("rank %d of %d: %s"):format(af.rank, af.ranks, (got:gsub("%z", "|"))))
LUA
if ! $MPIRUN "$BIN" run bcast.lua >out 2>err || ! grep -q "rank 1 of 2" out; then
  sed 's/^/  | /' out err | head -20
  echo "mpirun cannot start 2 ranks of autofreeze here: skipped"
  exit 77
fi
[ "$(grep -c '^rank [01] of 2: from rank 0|with a zero byte$' out)" = 2 ] || fail "af.broadcast: both ranks get rank 0's string"
expect_rc 0 "af.broadcast without MPI" -- "$BIN" run bcast.lua
expect_in "$TMP/out" '^rank 0 of 1: from rank 0\|with a zero byte$' "af.broadcast alone returns its argument"

make_tiny
cat >sweep.lua <<'LUA'
local af = require "autofreeze"
local rows = af.sweep{
  tasks = {af.task.glue("sst2", "tiny")}, policies = {af.policy.none(), af.policy.adaptive{}}, seeds = {1},
  out_dir = "sweep",
  train = {model = os.getenv("AF_SOURCE_DIR") .. "/tests/fixtures/bert_tiny/cls", epochs = 2, batch = 16, seq = 12,
           intervals = 4, threads = 1, quiet = true, checkpoints = false, max_train_rows = 160, max_eval_rows = 40},
}
for _, r in ipairs(rows) do print(("rank %d: %s %s"):format(af.rank, r.id, r.state)) end
LUA
mkdir -p sweep
# another run holds the first cell: the lock file af.writer reads, flock'ed by a sleeper
echo "pid 4242 on elsewhere since now" >sweep/sst2-none-s1.h5.lock
flock -o -x sweep/sst2-none-s1.h5.lock sleep 600 >/dev/null 2>&1 &
holder=$!
trap 'pkill -P "$holder" 2>/dev/null; kill "$holder" 2>/dev/null; rm -rf "$TMP"' EXIT
for _ in $(seq 50); do "$BIN" run <(echo 'local af = require "autofreeze"; print(af.writer("sweep/sst2-none-s1.h5"))') 2>/dev/null | grep -q 4242 && break; sleep 0.1; done
expect_rc 0 "2-rank sweep with a cell held by another run" -- $MPIRUN "$BIN" run sweep.lua
pkill -P "$holder" 2>/dev/null
kill "$holder" 2>/dev/null
wait "$holder" 2>/dev/null
for r in 0 1; do
  expect_in "$TMP/out" "^rank $r: sst2-none-s1 busy$" "rank $r leaves the held cell to the other run"
  expect_in "$TMP/out" "^rank $r: sst2-adaptive-p50-s1 ran$" "rank $r runs the next cell"
done
[ "$(grep -c 'busy, left to the other run (pid 4242 on elsewhere' "$TMP/out")" -ge 1 ] || fail "the held cell named its holder"
[ ! -e sweep/sst2-none-s1.h5 ] || fail "a rank wrote the held cell's results file"
[ "$("$BIN" run <(echo 'local af = require "autofreeze"; print(af.results.status("sweep/sst2-adaptive-p50-s1.h5"))'))" = complete ] ||
  fail "the 2-rank cell is complete"

# the holder gone: the same command runs the first cell on both ranks and skips the second
expect_rc 0 "2-rank sweep again" -- $MPIRUN "$BIN" run sweep.lua
for r in 0 1; do
  expect_in "$TMP/out" "^rank $r: sst2-none-s1 ran$" "rank $r runs the freed cell"
  expect_in "$TMP/out" "^rank $r: sst2-adaptive-p50-s1 skipped$" "rank $r skips the complete cell"
done
finish test_sweep_mpi

#!/usr/bin/env bash
# A sweep as cells, without Slurm: the 4-cell sweep of tests/fixtures/slurm/sweep.lua is
# numbered the same way every time and after some cells finished (--list-cells and
# af.sweep{..., run = false}); --cell I runs that cell only, a complete one is skipped, a
# killed one resumes from its checkpoint to the same numbers as an uninterrupted run;
# --slurm-dry-run writes exactly tests/fixtures/slurm/sweep.sbatch (the binary and the
# folder as @BIN@ and @CWD@); --slurm submits through whatever sbatch is on PATH (fakes
# here: tests/lua/test_slurm.sh uses a real Slurm); --report names what is missing. Bad
# input: a cell out of range, no sbatch, a refused job are one line on stderr, exit 1 and
# no file left behind; flags that do not go together are usage errors (exit 2).
. "$(dirname "$0")/lib.sh"
make_tiny
FIX=$SRC/tests/fixtures/slurm
W=$TMP/work
mkdir -p "$W/ctl" "$TMP/fakebin" "$TMP/nobin"
cd "$W" || exit 1
sw=(run "$FIX/sweep.lua" --set "data=$TMP/tiny" --set out=res --set ctl=ctl)
one_line() { # one_line WHAT: stderr is exactly one line
  [ "$(wc -l <"$TMP/err")" -eq 1 ] || { fail "$1: expected one line on stderr, found:"; sed 's/^/  | /' "$TMP/err" >&2; }
}
cells_of() { awk -F'|' '/^\| +[0-9]/ {gsub(/ /, "", $2); gsub(/ /, "", $3); gsub(/ /, "", $8); print $2, $3, $8}' "$1"; }

# enumeration: the same twice, with nothing run; nothing written by listing
expect_rc 0 "--list-cells" -- "$BIN" "${sw[@]}" --list-cells
cp "$TMP/out" "$TMP/list1"
expect_in "$TMP/out" "4 cells, 0 complete" "list title"
expect_in "$TMP/out" "^\|    1 \| sst2-none-s1 +\| sst2 \| none +\|    1 \| res/sst2-none-s1.h5 \| no +\| missing" "cell 1"
expect_in "$TMP/out" "^\|    4 \| sst2-hold-s2 +\| sst2 \| hold +\|    2 \| res/sst2-hold-s2.h5 \| no " "cell 4"
[ -e res ] && fail "--list-cells created res/"
expect_rc 0 "--list-cells again" -- "$BIN" "${sw[@]}" --list-cells
cmp -s "$TMP/out" "$TMP/list1" || fail "--list-cells differs between two runs"

# --cell 2 runs that cell only; the numbering stays, cell 2 is done
expect_rc 0 "--cell 2" -- "$BIN" "${sw[@]}" --cell 2
expect_in "$TMP/out" "^\[2/4\] sst2-none-s2$" "cell 2 progress line"
grep -q "script goes on" "$TMP/out" && fail "--cell: the script went on after the cell"
[ "$(cd res && ls *.h5)" = "sst2-none-s2.h5" ] || fail "--cell 2 wrote: $(ls res)"
expect_rc 0 "--cell 2 again" -- "$BIN" "${sw[@]}" --cell 2
expect_in "$TMP/out" "sst2-none-s2: complete, skipped" "complete cell skipped"
expect_rc 0 "--list-cells after cell 2" -- "$BIN" "${sw[@]}" --list-cells
[ "$(cells_of "$TMP/list1" | cut -d' ' -f1,2)" = "$(cells_of "$TMP/out" | cut -d' ' -f1,2)" ] \
  || fail "the cells' numbers changed after one finished"
[ "$(cells_of "$TMP/out" | cut -d' ' -f3 | tr '\n' ' ')" = "no yes no no " ] || fail "done column: $(cells_of "$TMP/out")"

# the Lua side: af.sweep{..., run = false} and sw:cell(i)
cat >"$TMP/api.lua" <<'LUA'
local af = require "autofreeze"
local data, fix = arg[1], os.getenv("AF_SOURCE_DIR") .. "/tests/fixtures/bert_tiny/cls"
local function grid()
  return af.sweep{tasks = {af.task.glue("sst2", data)}, policies = {af.policy.none(), af.policy.adaptive{}},
                  knobs = {{lr = 1e-3}, {lr = 2e-3, label = "fast"}}, seeds = {1, 2}, out_dir = "api", run = false,
                  quiet = true, train = {model = fix, epochs = 1, batch = 16, seq = 12, intervals = 2, threads = 1,
                                         quiet = true, max_train_rows = 64, max_eval_rows = 16}}
end
local sw = grid()
assert(#sw == 8 and not af.exists("api"), "8 cells, nothing run")
local ids = {}
for i, c in ipairs(sw) do
  assert(c.cell == i and c.out == "api/" .. c.id .. ".h5")
  ids[i] = c.id
end
assert(ids[1] == "sst2-none-lr_0.001-s1" and ids[4] == "sst2-adaptive-p50-lr_0.001-s2" and ids[5] == "sst2-none-fast-s1",
       table.concat(ids, " "))
assert(#sw:pending() == 8)
local row = sw:cell(6)
assert(row.state == "ran" and row.status == "complete" and row.id == "sst2-none-fast-s2", row.state)
local again = grid()
for i, c in ipairs(again) do assert(c.id == ids[i], "same cells in the same order") end
local p = again:pending()
assert(#p == 7 and p[5] == 5 and p[6] == 7, table.concat(p, ","))
assert(again:cell(6).state == "skipped")
local ok, err = pcall(again.cell, again, 9)
assert(not ok and err:find("cell 9 is out of range: the sweep has 8 cells", 1, true), err)
local rows = again:report()
assert(#rows == 1 and rows[1].id == "sst2-none-fast-s2")
-- a cell's disk cache lives in CACHE_DIR/ID (here out_dir/cache/ID), seen from inside the run
local seen
local probe = af.policy.custom(function(s)
  local ls = io.popen("ls apic/cache/sst2-cached-s1 2>/dev/null")
  seen = seen or ls:read("a"):match("afcache%-[%x]+%-%d+%.h5")
  ls:close()
  return math.max(s.depth, 1)
end, {name = "probe"})
local c = af.sweep{tasks = {af.task.glue("sst2", data)}, policies = {{policy = probe, label = "cached", cache = "disk"}},
                   out_dir = "apic", quiet = true, print = false,
                   train = {model = fix, epochs = 1, batch = 16, seq = 12, intervals = 4, threads = 1, quiet = true,
                            max_train_rows = 64, max_eval_rows = 16}}
assert(c[1].state == "ran" and seen, "the disk cache file in apic/cache/sst2-cached-s1")
assert(not af.exists("apic/cache"), "the cell's empty cache folder is removed")
print("api ok")
LUA
expect_rc 0 "af.sweep{run = false}, sw:cell(i)" -- "$BIN" run "$TMP/api.lua" "$TMP/tiny"
expect_in "$TMP/out" "api ok" "api script"
expect_in "$TMP/out" "not complete: cell 8 sst2-adaptive-p50-fast-s2: missing" "sw:report names the missing cells"

# a killed cell (SIGKILL from inside its policy) resumes and equals an uninterrupted run
expect_rc 0 "reference cell 4" -- "$BIN" run "$FIX/sweep.lua" --set "data=$TMP/tiny" --set out=ref --set ctl=ctl --cell 4
touch ctl/kill-4
( "$BIN" "${sw[@]}" --cell 4; echo "exit status $?" ) >"$TMP/out" 2>&1  # the subshell says "Killed"
expect_in "$TMP/out" "^exit status 137$" "cell 4 killed itself"
expect_rc 0 "--list-cells with a killed cell" -- "$BIN" "${sw[@]}" --list-cells
expect_in "$TMP/out" "^\|    4 \| sst2-hold-s2 .*\| no +\| running or killed \(resumable\)" "killed cell listed as resumable"
expect_rc 0 "--cell 4 resumed" -- "$BIN" "${sw[@]}" --cell 4
expect_in "$TMP/out" "sst2-hold-s2  \(previous file: running; resuming from its checkpoint\)" "resume named"
expect_rc 0 "resumed cell = uninterrupted cell" -- "$BIN" run "$FIX/same_run.lua" ref/sst2-hold-s2.h5 res/sst2-hold-s2.h5
expect_in "$TMP/out" "same run: 20 steps" "same run"

# --report: the finished rows go on to the script; the missing cells are named
expect_rc 0 "--report" -- "$BIN" "${sw[@]}" --report
expect_in "$TMP/out" "report: 2 of 4 cells complete in res" "report title"
expect_in "$TMP/out" "^\| sst2-hold-s2 +\| sst2 \| hold " "report row"
expect_in "$TMP/out" "not complete: cell 1 sst2-none-s1: missing" "missing cell named"
expect_in "$TMP/out" "script goes on with 2 rows" "the script went on with the finished rows"

# the sbatch script, exactly (cells 1 and 3 pending)
PATH="$TMP/nobin" expect_rc 0 "--slurm-dry-run" -- "$BIN" "${sw[@]}" --set extra=1 --slurm-dry-run \
  --slurm-opt=--time=0:10:00 --slurm-opt "--partition=short" --slurm-max-parallel 2 -- first "two words"
expect_in "$TMP/out" "^wrote res/slurm/sweep.sbatch: 2 of 4 cells \(--array=1,3\); submit it with: sbatch res/slurm/sweep.sbatch$" \
  "dry run message"
got=$(cat res/slurm/sweep.sbatch)
got=${got//"$BIN"/@BIN@}
got=${got//"$W"/@CWD@}
got=${got//"$TMP/tiny"/@DATA@}
got=${got//"$FIX"/@FIX@}
if [ "$got" != "$(cat "$FIX/sweep.sbatch")" ]; then
  fail "res/slurm/sweep.sbatch differs from tests/fixtures/slurm/sweep.sbatch:"
  diff <(echo "$got") "$FIX/sweep.sbatch" | sed 's/^/  | /' >&2
fi
expect_rc 0 "--slurm-dry-run --slurm-ntasks 2" -- "$BIN" "${sw[@]}" --slurm-dry-run --slurm-ntasks 2
expect_in res/slurm/sweep.sbatch "^#SBATCH --ntasks=2$" "ntasks line"
expect_in res/slurm/sweep.sbatch "^exec srun \\\$AF_SRUN_MPI $BIN run " "ranks launched with srun"
# srun gets --mpi=pmix where `srun --mpi=list` shows pmix (decided on the node, by the script),
# srun's default otherwise or when SLURM_MPI_TYPE says what to use (fake sruns here)
mkdir -p "$TMP/srunbin"
grep -E '^(AF_SRUN_MPI=|if .*srun --mpi=list)' res/slurm/sweep.sbatch >"$TMP/pick.sh"
echo 'echo "[$AF_SRUN_MPI]"' >>"$TMP/pick.sh"
pick() { # pick "LINES srun --mpi=list prints" [SLURM_MPI_TYPE]
  printf '#!/bin/sh\nprintf "%%b" "%s" >&2\n' "$1" >"$TMP/srunbin/srun" && chmod +x "$TMP/srunbin/srun"
  PATH="$TMP/srunbin:$PATH" SLURM_MPI_TYPE=${2:-} sh "$TMP/pick.sh"
}
[ "$(pick 'srun: MPI types are...\nsrun: none\nsrun: pmi2\nsrun: pmix\nsrun: pmix_v4\n')" = "[--mpi=pmix]" ] ||
  fail "srun with pmix: $(pick 'srun: none\nsrun: pmix\n')"
[ "$(pick 'MPI plugin types are...\n\tnone\n\tpmi2\n')" = "[]" ] || fail "srun without pmix: $(pick 'none\npmi2\n')"
[ "$(pick 'srun: pmix\n' pmi2)" = "[]" ] || fail "SLURM_MPI_TYPE set: --mpi=pmix added anyway"
# ... and rank 1 of a cell has nothing to do while the engine trains in one process
SLURM_PROCID=1 expect_rc 0 "rank 1" -- "$BIN" "${sw[@]}" --cell 1
expect_in "$TMP/out" "cell 1: rank 1 idle" "rank 1 message"
[ -e res/sst2-none-s1.h5 ] && fail "rank 1 ran the cell"

# --slurm through a fake sbatch that takes the job
cat >"$TMP/fakebin/sbatch" <<EOF
#!/bin/sh
echo "\$@" >"$TMP/sbatch-args"
echo "4242;fake"
EOF
chmod +x "$TMP/fakebin/sbatch"
PATH="$TMP/fakebin:$PATH" expect_rc 0 "--slurm (fake sbatch)" -- "$BIN" "${sw[@]}" --slurm --slurm-max-parallel 1
expect_in "$TMP/out" "^Submitted batch job 4242$" "job id printed"
expect_in "$TMP/out" "2 of 4 cells \(--array=1,3\), script res/slurm/sweep.sbatch" "submission line"
expect_in "$TMP/sbatch-args" "^--parsable res/slurm/sweep.sbatch$" "sbatch arguments"
expect_in res/slurm/sweep.sbatch "^#SBATCH --array=1,3%1$" "array line"

# bad input, in a fresh folder: one line, exit 1, nothing written
bad=(run "$FIX/sweep.lua" --set "data=$TMP/tiny" --set out=fresh/res)
expect_rc 1 "--cell out of range" -- "$BIN" "${bad[@]}" --cell 5
one_line "--cell 5"
expect_in "$TMP/err" "^autofreeze run: --cell 5 is out of range: the sweep of .*sweep.lua has 4 cells \(1..4; see --list-cells\)$" \
  "out of range message"
PATH="$TMP/nobin" expect_rc 1 "--slurm without sbatch" -- "$BIN" "${bad[@]}" --slurm
one_line "no sbatch"
expect_in "$TMP/err" "^autofreeze run: --slurm: sbatch not found on PATH" "no sbatch message"
cat >"$TMP/fakebin/sbatch" <<'EOF'
#!/bin/sh
echo "sbatch: error: invalid partition specified: nope" >&2
echo "sbatch: error: Batch job submission failed: Invalid partition name specified" >&2
exit 1
EOF
PATH="$TMP/fakebin:$PATH" expect_rc 1 "sbatch refusing" -- "$BIN" "${bad[@]}" --slurm
one_line "sbatch refusal"
expect_in "$TMP/err" "^autofreeze run: sbatch refused the job \(exit 1\): invalid partition specified: nope; Batch job submission failed: Invalid partition name specified$" \
  "refusal message"
[ -e fresh ] && fail "bad input left files behind: $(find fresh)"
expect_rc 2 "--cell x" -- "$BIN" "${bad[@]}" --cell x
expect_rc 2 "--cell 0" -- "$BIN" "${bad[@]}" --cell 0
expect_rc 2 "two cluster flags" -- "$BIN" "${bad[@]}" --cell 1 --list-cells
expect_in "$TMP/err" "--cell and --list-cells do not go together" "two flags message"
expect_rc 2 "--slurm-opt without --slurm" -- "$BIN" "${bad[@]}" --slurm-opt=--time=1 --list-cells
expect_in "$TMP/err" "--slurm-opt needs --slurm" "needs --slurm"
expect_rc 2 "--slurm-opt not an option" -- "$BIN" "${bad[@]}" --slurm --slurm-opt time=1
expect_rc 2 "--slurm-max-parallel 0" -- "$BIN" "${bad[@]}" --slurm --slurm-max-parallel 0
# a script that trains outside af.sweep is stopped before training; one with no sweep is an error
cat >"$TMP/nosweep.lua" <<'LUA'
local af = require "autofreeze"
af.train{model = "x", task = "sst2", data = "y", out = "fresh/never.h5"}
LUA
expect_rc 1 "af.train outside a sweep under --slurm" -- "$BIN" run "$TMP/nosweep.lua" --slurm
expect_in "$TMP/err" "af.train: under --slurm the script runs only af.sweep cells" "guard message"
echo 'print("no sweep here")' >"$TMP/plain.lua"
expect_rc 1 "--list-cells on a script without af.sweep" -- "$BIN" run "$TMP/plain.lua" --list-cells
expect_in "$TMP/err" "--list-cells: .*plain.lua called no af.sweep" "no sweep message"
[ -e fresh ] && fail "bad input left files behind: $(find fresh)"

# every cell complete: nothing to submit (sbatch not even called), the report is whole
expect_rc 0 "cell 1" -- "$BIN" "${sw[@]}" --cell 1
expect_rc 0 "cell 3" -- "$BIN" "${sw[@]}" --cell 3
rm -f "$TMP/sbatch-args"
PATH="$TMP/fakebin:$PATH" expect_rc 0 "--slurm on a finished sweep" -- "$BIN" "${sw[@]}" --slurm
expect_in "$TMP/out" "all 4 cells of .*sweep.lua are complete in res: nothing to submit" "nothing to submit"
[ -e "$TMP/sbatch-args" ] && fail "sbatch was called for a finished sweep"
expect_rc 0 "--report, all complete" -- "$BIN" "${sw[@]}" --report
expect_in "$TMP/out" "report: 4 of 4 cells complete in res" "complete report"
grep -q "not complete" "$TMP/out" && fail "a complete sweep's report names a missing cell"
expect_rc 0 "the script itself, all complete" -- "$BIN" "${sw[@]}"
expect_in "$TMP/out" "script goes on with 4 rows" "plain run"
[ "$(grep -c "complete, skipped" "$TMP/out")" -eq 4 ] || fail "plain run of a finished sweep trained"
finish test_slurm_cells

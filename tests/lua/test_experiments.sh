#!/usr/bin/env bash
# Every script in experiments/ runs end to end, shrunk to seconds: the tiny fixture model
# (tests/fixtures/bert_tiny/cls, 64-token vocab, 16 positions), a tiny learnable task in the
# default task's format and as a GLUE SST-2 folder, one epoch of 64 rows. Each must exit 0
# and leave its summary table and figures. The real sizes are the scripts' own defaults.
. "$(dirname "$0")/lib.sh"

cat >"$TMP/make.lua" <<'LUA'
local make = dofile(os.getenv("AF_SOURCE_DIR") .. "/tests/lua/tiny_task.lua")
local dir = arg[1]
make(dir .. "/glue/SST-2", 96, 48, 5)
-- the default task's layout: sentence<TAB>label with label names, plus labels.txt
os.execute("mkdir -p '" .. dir .. "/default'")
for _, split in ipairs{"train", "dev"} do
  local out = assert(io.open(dir .. "/default/" .. split .. ".tsv", "w"))
  local first = true
  for line in io.lines(dir .. "/glue/SST-2/" .. split .. ".tsv") do
    if first then out:write(line, "\n") else out:write((line:gsub("\t1$", "\tpos"):gsub("\t0$", "\tneg")), "\n") end
    first = false
  end
  out:close()
end
local l = assert(io.open(dir .. "/default/labels.txt", "w"))
l:write("neg\npos\n")
l:close()
LUA
expect_rc 0 "make the tiny tasks" -- "$BIN" run "$TMP/make.lua" "$TMP"

small=(--set "model=$TINY" --set seq=16 --set epochs=1 --set train_rows=64 --set eval_rows=32 --set batch=16
       --set threads=1 --set intervals=4)
run_exp() { # run_exp NAME [extra args...]
  local name=$1; shift
  expect_rc 0 "experiments/$name.lua" -- "$BIN" run "$SRC/experiments/$name.lua" "${small[@]}" \
    --set "out=$TMP/res/$name" --set "plots=$TMP/fig/$name" "$@"
  [ -s "$TMP/fig/$name/summary.md" ] || fail "experiments/$name.lua wrote no $TMP/fig/$name/summary.md"
  ls "$TMP/fig/$name"/*.png >/dev/null 2>&1 || fail "experiments/$name.lua wrote no figure"
}
run_exp quickstart --set "data=$TMP/default"
run_exp bench_policies --set "data=$TMP/default"
run_exp custom_policy --set "data=$TMP/default"
run_exp ablation_percentile --set "data=$TMP/default" --set task=default
run_exp ablation_intervals --set "data=$TMP/default" --set task=default
run_exp static_depth --set "data=$TMP/default" --set task=default
run_exp bench_time --set "data=$TMP/default" --set rounds=1
run_exp paper --set "glue=$TMP/glue" --set tasks=sst2 --set seeds=1 --set policies=adaptive+cache,auto
# --set policies: the baseline and the named policies only; an unknown label names the known ones
[ "$(cd "$TMP/res/paper" && ls *.h5 | tr '\n' ' ')" = "sst2-adaptive+cache-s1.h5 sst2-auto-s1.h5 sst2-none-s1.h5 " ] \
  || fail "paper.lua --set policies=adaptive+cache,auto ran: $(ls "$TMP/res/paper")"
# quickstart runs its four by default (checked above); auto+cache when named, recorded as the preset
expect_rc 0 "quickstart.lua --set policies=auto+cache" -- "$BIN" run "$SRC/experiments/quickstart.lua" "${small[@]}" \
  --set "data=$TMP/default" --set "out=$TMP/res/quick-auto" --set "plots=$TMP/fig/quick-auto" --set policies=auto+cache
[ "$(cd "$TMP/res/quick-auto" && ls *.h5 | tr '\n' ' ')" = "default-auto+cache-s1.h5 default-full-s1.h5 " ] \
  || fail "quickstart.lua --set policies=auto+cache ran: $(ls "$TMP/res/quick-auto")"
[ "$(cd "$TMP/res/quickstart" && ls *.h5 | wc -l)" = 4 ] || fail "quickstart.lua by default: $(ls "$TMP/res/quickstart")"
# the policy lab: two tasks (the default layout and a GLUE folder), two seeds, every policy; a
# table, a CSV and a Pareto figure per task; run again, every cell is skipped
lab=(--set "data=$TMP/default" --set "glue=$TMP/glue" --set tasks=default,sst2 --set seeds=1,2 --set runs_figures=false
     --set "out=$TMP/res/policy_lab" --set "plots=$TMP/fig/policy_lab")
expect_rc 0 "experiments/policy_lab.lua" -- "$BIN" run "$SRC/experiments/policy_lab.lua" "${small[@]}" "${lab[@]}"
for f in policy_lab_default.md policy_lab_default.csv pareto_default.png pareto_default.svg \
         policy_lab_sst2.md policy_lab_sst2.csv pareto_sst2.png pareto_sst2.svg \
         policy_lab_tradeoff_sst2.md policy_lab_tradeoff_sst2.csv tradeoff_sst2.png tradeoff_sst2.svg; do
  [ -s "$TMP/fig/policy_lab/$f" ] || fail "experiments/policy_lab.lua wrote no $f"
done
expect_in "$TMP/fig/policy_lab/policy_lab_sst2.md" "^\| adaptive-p25 +\| +2 \|" "policy lab table: a row per policy, 2 seeds"
expect_in "$TMP/fig/policy_lab/policy_lab_default.csv" "^default,static-last,static,accuracy,2,2," "policy lab CSV"
expect_rc 0 "experiments/policy_lab.lua again" -- "$BIN" run "$SRC/experiments/policy_lab.lua" "${small[@]}" "${lab[@]}"
cells=$(grep -Ec '^\[[0-9]+/[0-9]+\] ' "$TMP/out")
[ "$cells" -ge 20 ] && [ "$(grep -c 'complete, skipped' "$TMP/out")" = "$cells" ] \
  || fail "policy_lab.lua again: not every cell skipped ($cells cells)"
ls "$TMP/res/policy_lab/default" | grep -q bf16 && fail "policy_lab.lua ran a bf16 line it was not asked for"
# issue 16's precision lines run only when named, and --set base=adaptive pairs them with the
# fp32 rule: the table's first row is then the adaptive rule, the bf16 line compared with it
prec=(--set "data=$TMP/default" --set tasks=default --set seeds=1 --set runs_figures=false
      --set policies=adaptive,adaptive-frozen-bf16 --set "out=$TMP/res/prec" --set "plots=$TMP/fig/prec")
expect_rc 0 "policy_lab.lua, a precision line" -- "$BIN" run "$SRC/experiments/policy_lab.lua" "${small[@]}" "${prec[@]}"
[ "$(cd "$TMP/res/prec/default" && ls *.h5 | tr '\n' ' ')" = \
  "default-adaptive-frozen-bf16-s1.h5 default-adaptive-s1.h5 default-full-s1.h5 " ] \
  || fail "policy_lab.lua --set policies=adaptive,adaptive-frozen-bf16 ran: $(ls "$TMP/res/prec/default")"
expect_rc 0 "policy_lab.lua --set base=adaptive --report" -- "$BIN" run "$SRC/experiments/policy_lab.lua" \
  "${small[@]}" "${prec[@]}" --set base=adaptive --report
expect_in "$TMP/fig/prec/policy_lab_default.csv" "^default,adaptive-frozen-bf16,adaptive,accuracy,1,1," \
  "precision line paired with the fp32 rule"
expect_rc 1 "bench_policies with an unknown policy label" -- "$BIN" run "$SRC/experiments/bench_policies.lua" \
  "${small[@]}" --set "data=$TMP/default" --set policies=adaptive,nope
expect_in "$TMP/err" "unknown policy label 'nope' in --set policies \(known: none, static-last, adaptive, adaptive\+cache\)" \
  "unknown label message"
echo "ran: quickstart bench_policies custom_policy ablation_percentile ablation_intervals static_depth bench_time paper policy_lab"
finish test_experiments

#!/usr/bin/env bash
# `autofreeze train` and `autofreeze export` through the real binary, on the tiny fixture
# model (tests/fixtures/bert_tiny/cls: L=3, C=32, V=64, P=16) and a small generated task:
# usage errors (exit 2, one line), runtime errors (exit 1, one line naming the file), a run's
# results file, a quiet progress line off a terminal, SIGTERM + --resume equal to an
# uninterrupted run, a SIGKILLed run's file, and the exported Hugging Face folder.
# Checks that read HDF5 or safetensors need /usr/bin/python3 with h5py and numpy
# (tests/e2e/train_cli_check.py); without them they are skipped and the rest still runs.
# shellcheck disable=SC2015  # "A && ok || fail": ok only echoes, so it never fails
set -u
if [ -z "${AF_BIN:-}" ] || [ ! -x "$AF_BIN" ]; then
  echo "SKIPPED: AF_BIN (the autofreeze binary) is not built"
  exit 77
fi
if ! command -v awk >/dev/null; then
  echo "SKIPPED: awk (used to generate the data) is not installed"
  exit 77
fi
SRC=${AF_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
MODEL=$SRC/tests/fixtures/bert_tiny/cls
CHECK=$SRC/tests/e2e/train_cli_check.py
PY=/usr/bin/python3
T=$(mktemp -d "${TMPDIR:-/tmp}/aftraincli.XXXXXX")
bg=""
cleanup() {
  [ -n "$bg" ] && kill -KILL "$bg" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }
havepy=0
if [ -x "$PY" ] && "$PY" -c 'import h5py, numpy' 2>/dev/null; then havepy=1
elif [ -n "${CI:-}" ]; then  # scripts/setup.sh installs them: in CI their absence is a fault
  fail "$PY with h5py/numpy not found (CI is set): results-file and export contents cannot be checked"
else
  echo "note: $PY with h5py/numpy not found: results-file and export contents are not checked"
fi
pycheck() { # pycheck WHAT ARGS... : run train_cli_check.py when python is there
  [ "$havepy" = 1 ] || return 0
  if "$PY" "$CHECK" "$@" >"$T/py.out" 2>&1; then
    sed 's/^/  /' "$T/py.out"
    ok "$1 ${2##*/}"
  else
    sed 's/^/  /' "$T/py.out" | head -30
    fail "train_cli_check.py $*"
  fi
}

# ---- data: label 1 iff the sentence contains "you" (as tests/e2e/test_train_tiny.c) ----
# Park-Miller LCG (products stay below 2^53, so mawk and gawk agree).
gen_split() { # gen_split FILE ROWS SEED
  awk -v n="$2" -v x="$3" 'BEGIN {
    split("the of and to a in is it that was for on are as with his they at be this from have or by one", w, " ")
    print "sentence\tlabel"
    for (i = 0; i < n; i++) {
      x = (x * 16807) % 2147483647; len = 4 + x % 7
      x = (x * 16807) % 2147483647; pos = x % len
      lab = i % 2; s = ""
      for (k = 0; k < len; k++) {
        x = (x * 16807) % 2147483647
        s = s (k ? " " : "") ((lab && k == pos) ? "you" : w[1 + x % 25])
      }
      print s "\t" lab
    }
  }' >"$1"
}
# MNLI-shaped pairs with 3 labels (the fixture's classifier is [3, 32], so it is loaded, not
# initialised): the first word of sentence2 is "not" (contradiction), "you" (entailment) or other.
gen_mnli() { # gen_mnli FILE ROWS SEED
  awk -v n="$2" -v x="$3" 'BEGIN {
    split("the of and to a in is it that was for on are as with his they at be this from have or by one", w, " ")
    split("contradiction entailment neutral", L, " ")
    print "index\tsentence1\tsentence2\tgold_label"
    for (i = 0; i < n; i++) {
      lab = i % 3
      for (p = 1; p <= 2; p++) {
        x = (x * 16807) % 2147483647; len = 3 + x % 5; s = ""
        for (k = 0; k < len; k++) {
          x = (x * 16807) % 2147483647; t = w[1 + x % 25]
          if (p == 2 && k == 0 && lab < 2) t = lab ? "you" : "not"
          s = s (k ? " " : "") t
        }
        sent[p] = s
      }
      print i "\t" sent[1] "\t" sent[2] "\t" L[lab + 1]
    }
  }' >"$1"
}
D=$T/data
mkdir -p "$D" "$T/mnli"
gen_split "$D/train.tsv" 200 1
gen_split "$D/dev.tsv" 48 2
gen_mnli "$T/mnli/train.tsv" 120 3
gen_mnli "$T/mnli/dev_matched.tsv" 24 4
gen_mnli "$T/mnli/dev_mismatched.tsv" 24 5
# --threads 1: fast and deterministic on a loaded 2-core machine (OpenMP spin-waits badly there)
RUN=(--model "$MODEL" --task sst2 --data "$D" --seq 16 --batch 16 --threads 1)

# ---- 1. help, usage errors, runtime errors ----
if "$AF_BIN" train --help >"$T/out" 2>"$T/err"; then
  miss=""
  for w in "run:" "freezing:" "activation cache:" "checkpoints:" "output:" --model --task --data --out --epochs \
    --batch --seq --lr --seed --eval-every --policy --frozen --percentile --max-depth --cache --cache-budget \
    --resume --no-checkpoints --skip-bad-rows --progress --quiet SIGTERM; do
    grep -qF -- "$w" "$T/out" || miss+=" $w"
  done
  [ -z "$miss" ] && ok "train --help lists every option group" || fail "train --help lacks:$miss"
else
  fail "train --help exited $?"
fi

# expect RC WHAT SUBSTRING ARGS... : exit RC, nothing on stdout, exactly one stderr line
# "autofreeze train: ..." containing SUBSTRING.
expect() {
  local want=$1 what=$2 sub=$3
  shift 3
  "$AF_BIN" train "$@" >"$T/out" 2>"$T/err"
  local rc=$? n
  n=$(wc -l <"$T/err")
  if [ "$rc" -ne "$want" ] || [ "$n" -ne 1 ] || [ -s "$T/out" ] || ! grep -q '^autofreeze train: ' "$T/err" ||
    ! grep -qF -- "$sub" "$T/err"; then
    fail "$what: exit $rc, $n stderr line(s); want exit $want and one line containing '$sub'"
    sed 's/^/  stderr: /' "$T/err" | head -5
    sed 's/^/  stdout: /' "$T/out" | head -3
  else
    ok "$what (exit $rc): $(cat "$T/err")"
  fi
}
O=$T/u.h5
expect 2 "no arguments" "required"
expect 2 "missing --out" "required" --model "$MODEL" --task sst2 --data "$D"
expect 2 "--policy bogus" "bogus" "${RUN[@]}" --out "$O" --policy bogus
expect 2 "--policy static without --frozen" "--frozen" "${RUN[@]}" --out "$O" --policy static
expect 2 "--cache bogus" "bogus" "${RUN[@]}" --out "$O" --cache bogus
expect 2 "--epochs 0" "--epochs" "${RUN[@]}" --out "$O" --epochs 0
expect 2 "--percentile 150" "--percentile" "${RUN[@]}" --out "$O" --percentile 150
expect 2 "--cache-budget 12Q" "12Q" "${RUN[@]}" --out "$O" --cache-budget 12Q
expect 2 "--cache-compress 12" "--cache-compress" "${RUN[@]}" --out "$O" --cache-compress 12
expect 2 "--lr -1" "--lr" "${RUN[@]}" --out "$O" --lr -1
expect 2 "--lr inf" "--lr" "${RUN[@]}" --out "$O" --lr inf
expect 2 "--batch x" "--batch" "${RUN[@]}" --out "$O" --batch x
expect 2 "unknown option" "--frobnicate" "${RUN[@]}" --out "$O" --frobnicate
expect 2 "unknown short option" "-Z" "${RUN[@]}" --out "$O" -Z
expect 2 "option without its value" "--seed" "${RUN[@]}" --out "$O" --seed
expect 2 "stray argument" "stray" "${RUN[@]}" --out "$O" stray
expect 2 "--device tpu" "--device" "${RUN[@]}" --out "$O" --device tpu
[ -e "$O" ] && fail "a usage error left a results file"

cp -r "$MODEL" "$T/badmodel"
truncate -s 3000 "$T/badmodel/model.safetensors"
mkdir -p "$T/baddata"
cp "$D/dev.tsv" "$T/baddata/"
{ head -6 "$D/train.tsv"; printf 'is it seven\tseven\n'; tail -n +7 "$D/train.tsv"; printf 'no tab here\n'; } >"$T/baddata/train.tsv"
Q=(--task sst2 --seq 16 --batch 16 --threads 1 --epochs 1 --quiet)
expect 1 "missing model dir" "$T/nomodel" --model "$T/nomodel" --data "$D" --out "$O" "${Q[@]}"
expect 1 "truncated model.safetensors" "badmodel/model.safetensors" --model "$T/badmodel" --data "$D" --out "$O" "${Q[@]}"
expect 1 "missing data dir" "$T/nodata/train.tsv" --model "$MODEL" --data "$T/nodata" --out "$O" "${Q[@]}"
expect 1 "bad data rows" "baddata/train.tsv:" --model "$MODEL" --data "$T/baddata" --out "$O" "${Q[@]}"
grep -qF -- "--skip-bad-rows" "$T/err" || fail "the bad-row error does not mention --skip-bad-rows"
expect 1 "results in a missing folder" "$T/nodir" --model "$MODEL" --data "$D" --out "$T/nodir/r.h5" "${Q[@]}"
expect 1 "--seq 32 > max_position_embeddings 16" "config.json" --model "$MODEL" --data "$D" --out "$O" \
  --task sst2 --seq 32 --threads 1 --quiet
: >"$T/plainfile"  # --cache disk asked for a folder that cannot be made: no run, one line naming it
expect 1 "--cache disk, a cache dir that cannot be created" "$T/plainfile/cache" --model "$MODEL" --data "$D" \
  --out "$O" "${Q[@]}" --cache disk --cache-dir "$T/plainfile/cache"
[ -e "$O" ] && fail "a run that failed before training left $O"
# a cache dir that does not exist yet is made, and the run ends with the cache's state
if "$AF_BIN" train "${RUN[@]}" --epochs 1 --no-checkpoints --out "$T/cachedir.h5" --cache disk \
  --cache-dir "$T/new/cache/dir" >"$T/out" 2>"$T/err" && [ -d "$T/new/cache/dir" ] &&
  grep -q '^autofreeze: activation cache (disk): disk tier on (' "$T/err"; then
  ok "--cache disk made its folder: $(grep '^autofreeze: activation cache' "$T/err")"
else
  fail "--cache disk --cache-dir (not there yet): exit $?, folder $([ -d "$T/new/cache/dir" ] && echo made || echo missing)"
  sed 's/^/  stderr: /' "$T/err" | head -5
fi

if "$AF_BIN" train --model "$MODEL" --data "$T/baddata" --out "$T/skip.h5" "${Q[@]}" --skip-bad-rows \
  >"$T/out" 2>"$T/err"; then
  ok "--skip-bad-rows runs ($(head -c 120 "$T/err"))"
  if [ "$havepy" = 1 ]; then
    n=$("$PY" "$CHECK" attr "$T/skip.h5" config train_bad_rows 2>&1)
    [ "$n" = 2 ] && ok "/config@train_bad_rows = 2" || fail "/config@train_bad_rows is '$n', want 2"
  elif command -v h5dump >/dev/null; then
    h5dump -a /config/train_bad_rows "$T/skip.h5" | grep -q '(0): 2$' && ok "/config@train_bad_rows = 2 (h5dump)" ||
      fail "/config@train_bad_rows is not 2"
  fi
else
  fail "--skip-bad-rows: exit $?"
  sed 's/^/  stderr: /' "$T/err" | head -5
fi

# ---- 2. a small run: results file, summary line, quiet progress off a terminal ----
R1=$T/run.h5
if "$AF_BIN" train "${RUN[@]}" --epochs 2 --lr 1e-3 --out "$R1" >"$T/out" 2>"$T/err"; then
  ok "small run: $(cat "$T/out")"
  grep -q "complete, 26 steps" "$T/out" || fail "the summary line does not say 'complete, 26 steps'"
  grep -q $'\r' "$T/err" && fail "stderr of a non-terminal run holds '\\r' (the progress line is not quiet)" ||
    ok "no progress line on a non-terminal stderr ($(wc -l <"$T/err") log lines)"
  [ -s "$R1.ckpt/last.safetensors" ] && ok "checkpoint $R1.ckpt/last.safetensors" || fail "no checkpoint in $R1.ckpt"
  pycheck layout "$R1" complete 3
  if command -v h5dump >/dev/null; then
    h5dump -H "$R1" >"$T/h5" 2>&1 && grep -q 'DATASET "l1"' "$T/h5" && grep -q 'DATASET "accuracy"' "$T/h5" &&
      ok "h5dump -H reads it" || fail "h5dump -H $R1"
  fi
else
  fail "small run: exit $?"
  sed 's/^/  stderr: /' "$T/err" | head -10
fi
# --progress forces it: the check above would see the '\r' of a progress line
"$AF_BIN" train "${RUN[@]}" --epochs 1 --out "$T/prog.h5" --progress --no-checkpoints >/dev/null 2>"$T/err"
grep -q $'\r' "$T/err" && ok "--progress draws the progress line" || fail "--progress wrote no progress line"
[ -e "$T/prog.h5.ckpt" ] && fail "--no-checkpoints wrote $T/prog.h5.ckpt"

# ---- 3. SIGTERM, then --resume: identical to an uninterrupted run ----
# 780 steps, 20 intervals, a checkpoint at each boundary (the default, every 10 minutes,
# would give this short run none before its end)
LONG=("${RUN[@]}" --epochs 60 --lr 1e-3 --policy adaptive --checkpoint-every intervals)
I=$T/int.h5
"$AF_BIN" train "${LONG[@]}" --out "$I" >"$T/int.out" 2>"$T/int.err" &
bg=$!
# the first interval's checkpoint, then at once: the whole run takes under a second on a
# fast machine
for _ in $(seq 1 1500); do [ -e "$I.ckpt/last.safetensors" ] && break; sleep 0.02; done
if kill -0 "$bg" 2>/dev/null; then
  # one writer per results file: a second run aimed at it while the first is held still
  # stops at once, naming the holder, and leaves the first one's file alone
  kill -STOP "$bg"
  "$AF_BIN" train "${LONG[@]}" --out "$I" >"$T/out" 2>"$T/err"
  rc=$?
  if [ "$rc" = 1 ] && [ ! -s "$T/out" ] && grep -q "int.h5 is being written by another run (pid $bg on " "$T/err"; then
    ok "a second run on the same --out: $(cat "$T/err")"
  else
    fail "a second run on the same --out: exit $rc, want 1 and 'is being written by another run (pid $bg ...'"
    sed 's/^/  stderr: /' "$T/err" | head -3
  fi
  grep -q "^pid $bg on " "$I.lock" && ok "the lock file names the run" || fail "the lock file: $(cat "$I.lock" 2>&1)"
  kill -CONT "$bg"
  t0=$(date +%s%N)
  kill -TERM "$bg"
  wait "$bg"
  rc=$?
  bg=""
  ms=$((($(date +%s%N) - t0) / 1000000))
  msg=$(grep '^autofreeze train: ' "$T/int.err")
  if [ "$rc" = 1 ] && grep -q "interrupted" <<<"$msg" && grep -q -- "--resume" <<<"$msg" && [ "$ms" -lt 5000 ]; then
    ok "SIGTERM: exit 1 after $ms ms: $msg"
  else
    fail "SIGTERM: exit $rc after $ms ms, want 1 soon with 'interrupted ... --resume'"
    sed 's/^/  stderr: /' "$T/int.err" | tail -5
  fi
  [ -s "$I.ckpt/last.safetensors" ] && ok "SIGTERM left a checkpoint" || fail "SIGTERM left no checkpoint"
  [ -e "$I.lock" ] && fail "the interrupted run left its lock file $I.lock"
  if [ "$havepy" = 1 ]; then
    st=$("$PY" "$CHECK" attr "$I" summary status 2>&1)
    [ "$st" = interrupted ] && ok "interrupted run's /summary@status = interrupted" || fail "/summary@status is '$st'"
  fi
  if "$AF_BIN" train "${LONG[@]}" --out "$I" --resume >"$T/out" 2>"$T/err"; then
    ok "--resume: $(grep resuming "$T/err") -> $(cat "$T/out")"
  else
    fail "--resume: exit $?"
    sed 's/^/  stderr: /' "$T/err" | tail -5
  fi
  "$AF_BIN" train "${LONG[@]}" --out "$T/ref.h5" --quiet >/dev/null 2>"$T/err" || fail "uninterrupted run: exit $?"
  pycheck same "$I" "$T/ref.h5"
  if [ "$havepy" = 1 ]; then
    st=$("$PY" "$CHECK" attr "$I" summary status 2>&1)
    [ "$st" = complete ] && ok "resumed run's /summary@status = complete" || fail "resumed /summary@status is '$st'"
  fi
else
  wait "$bg"
  fail "the long run ended (exit $?) before it could be interrupted"
  bg=""
fi
# SIGINT takes the same path (bash starts background jobs with SIGINT ignored; the run's own
# handler replaces that)
"$AF_BIN" train "${LONG[@]}" --out "$T/sigint.h5" --quiet >/dev/null 2>"$T/err" &
bg=$!
for _ in $(seq 1 1500); do [ -e "$T/sigint.h5.ckpt/last.safetensors" ] && break; sleep 0.02; done
kill -INT "$bg" 2>/dev/null
wait "$bg"
rc=$?
bg=""
[ "$rc" = 1 ] && grep -q "interrupted by signal 2" "$T/err" && ok "SIGINT: exit 1: $(cat "$T/err")" ||
  fail "SIGINT: exit $rc: $(cat "$T/err")"
"$AF_BIN" train "${LONG[@]}" --out "$T/none.h5" --checkpoint-dir "$T/nockpt" --resume --quiet >"$T/out" 2>"$T/err"
rc=$?
[ "$rc" = 1 ] && grep -q "nockpt/last.safetensors" "$T/err" && ok "--resume without a checkpoint: $(cat "$T/err")" ||
  fail "--resume without a checkpoint: exit $rc: $(cat "$T/err")"

# ---- 4. SIGKILL at a random moment: the file opens and its columns are consistent ----
for try in 1 2; do
  K=$T/kill$try.h5
  "$AF_BIN" train "${LONG[@]}" --out "$K" --quiet >/dev/null 2>&1 &
  bg=$!
  # from the first interval's checkpoint on, rows are being written
  for _ in $(seq 1 500); do [ -e "$K.ckpt/last.safetensors" ] && break; sleep 0.02; done
  # The whole run takes well under a second on a fast machine: kill early enough to
  # land mid-run, and if it finished first anyway, expect a complete file instead.
  delay=$((RANDOM % 300))
  sleep "0.$(printf %03d "$delay")"
  want=running
  kill -0 "$bg" 2>/dev/null || want=complete
  kill -KILL "$bg" 2>/dev/null
  wait "$bg" 2>/dev/null
  bg=""
  echo "  SIGKILL $delay ms after the first checkpoint (run $want at the kill)"
  if [ ! -e "$K" ]; then
    fail "no results file at the kill"
    continue
  fi
  if command -v h5dump >/dev/null; then
    h5dump -H "$K" >/dev/null 2>&1 && ok "h5dump -H opens the killed run's file" || fail "h5dump -H cannot open $K"
  fi
  pycheck killed "$K" "$want" "$T/ref.h5"
done

# ---- 5. export: Hugging Face layout, loadable by autofreeze info ----
E=$T/export
if "$AF_BIN" export "$R1.ckpt" "$E" >"$T/out" 2>"$T/err"; then
  ok "export: $(cat "$T/out")"
  for f in config.json vocab.txt model.safetensors; do [ -s "$E/$f" ] || fail "export wrote no $f"; done
  cmp -s "$E/vocab.txt" "$MODEL/vocab.txt" || fail "exported vocab.txt differs from the model's"
  grep -q '"BertForSequenceClassification"' "$E/config.json" || fail "config.json: no BertForSequenceClassification"
  if "$AF_BIN" info "$E" >"$T/out" 2>"$T/err"; then
    grep -q "labels: 2" "$T/out" && ok "info loads the export ($(grep 'labels:' "$T/out" | sed 's/^ *//'))" ||
      fail "info on the export does not say 'labels: 2'"
  else
    fail "info on the export: exit $?: $(cat "$T/err")"
  fi
  pycheck export "$E" 2 3
else
  fail "export: exit $?: $(cat "$T/err")"
fi
# export from another working folder finds the base model (recorded as an absolute path)
mkdir -p "$T/cwd"
cp -r "$MODEL" "$T/cwd/tiny"
(cd "$T/cwd" && "$AF_BIN" train --model tiny --data "$D" --out m.h5 "${Q[@]}" >/dev/null 2>&1) || fail "run with a relative --model"
(cd "$T" && "$AF_BIN" export cwd/m.h5.ckpt relexport >"$T/out" 2>"$T/err") &&
  ok "export from another folder: $(cat "$T/out")" || fail "export of a run with a relative --model: $(cat "$T/err")"
# 3 labels: the run starts from the fixture's own classifier; static --frozen 2 keeps the
# embeddings and layers 0-1 bit-identical, layer 2, pooler and classifier move
M3=$T/mnli.h5
if "$AF_BIN" train --model "$MODEL" --task mnli --data "$T/mnli" --out "$M3" --seq 16 --batch 16 --threads 1 \
  --epochs 2 --lr 1e-3 --policy static --frozen 2 --quiet >/dev/null 2>"$T/err" &&
  "$AF_BIN" export "$M3.ckpt" "$T/export3" >"$T/out" 2>>"$T/err"; then
  ok "mnli run + export: $(cat "$T/out")"
  pycheck export "$T/export3" 3 3 "$MODEL" 2
  grep -q '"entailment"' "$T/export3/config.json" && grep -q '"contradiction"' "$T/export3/config.json" &&
    ok "exported id2label carries the task's label names" || fail "exported config.json lacks MNLI's label names"
else
  fail "mnli run or its export failed: $(cat "$T/err")"
fi
# export usage and runtime errors
"$AF_BIN" export --help >/dev/null 2>&1 || fail "export --help: exit $?"
"$AF_BIN" export "$R1.ckpt" >/dev/null 2>&1
[ $? = 2 ] && ok "export with one argument: exit 2" || fail "export with one argument: not exit 2"
"$AF_BIN" export "$R1" "$T/x" >"$T/out" 2>"$T/err"
rc=$?
[ "$rc" = 1 ] && [ "$(wc -l <"$T/err")" = 1 ] && grep -qF "$R1/last.safetensors" "$T/err" &&
  ok "export of a results file instead of its checkpoint (exit 1): $(cat "$T/err")" ||
  fail "export of a non-checkpoint: exit $rc: $(cat "$T/err")"

# ---- generic task: a CSV with named columns and a label list; resuming a finished run ----
mkdir -p "$T/generic"
{ echo "id,text,verdict"; awk -F'\t' 'NR > 1 { gsub(/"/, ""); print NR "," "\"" $1 "\"," ($2 ? "yes" : "no") }' "$D/train.tsv"; } >"$T/generic/train.csv"
{ echo "id,text,verdict"; awk -F'\t' 'NR > 1 { print NR "," "\"" $1 "\"," ($2 ? "yes" : "no") }' "$D/dev.tsv"; } >"$T/generic/dev.csv"
G=$T/generic.h5
if "$AF_BIN" train --model "$MODEL" --task generic --data "$T/generic" --text-cols text --label-col verdict \
  --labels no,yes --out "$G" --seq 16 --batch 16 --epochs 1 --threads 1 --quiet >/dev/null 2>"$T/err"; then
  ok "generic CSV task from the command line"
  "$AF_BIN" train --model "$MODEL" --task generic --data "$T/generic" --text-cols text --label-col verdict \
    --labels no,yes --out "$G" --seq 16 --batch 16 --epochs 1 --threads 1 --quiet --resume >/dev/null 2>"$T/err" &&
    ok "--resume of a finished run" || fail "--resume of a finished run: $(cat "$T/err")"
  pycheck evals_unique "$G"
else
  fail "generic CSV task: $(cat "$T/err")"
fi

if [ "$fails" -ne 0 ]; then
  echo "test_train_cli: $fails failure(s)"
  exit 1
fi
echo "test_train_cli: all passed"

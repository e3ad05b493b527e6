#!/usr/bin/env bash
# `autofreeze bench step`'s gradient all-reduce table: per frozen depth k, the trainable
# parameters and the bytes a data-parallel step all-reduces, checked against the parameter
# count worked out here from the shape (embeddings V*C + P*C + 2*C + 2*C; a layer 4C^2 + 2CI +
# 9C + I; pooler and 2-label classifier C^2 + C + 2C + 2; trainable at depth k: the head, layers
# k..L-1 and, at k = 0, the embeddings; bytes = 4 x that). One process (MiniLM and BERT-base
# shapes: the bytes a rank would send), then `mpirun -np 2` (MiniLM shape: the bytes the ranks
# sent, with the all-reduce times present). Times are not checked: a loaded machine runs this.
# Precision entries: bf16 runs on its own model with the bf16 activation layout (two models,
# two all-reduces in one process, also under mpirun), bf16-fp32-storage on the fp32 one; each
# entry gets its table and ratio line, the arena line names both layouts, a bad entry is a
# usage error (exit 2).
# The mpirun part is skipped (not failed) when autofreeze was built without MPI or mpirun is
# missing or cannot start 2 ranks.
set -u
BIN=${AF_BIN:?AF_BIN not set}
T=$(mktemp -d "${TMPDIR:-/tmp}/afbenchcomm.XXXXXX")
trap 'rm -rf "$T"' EXIT
fail=0
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE

# expected SHAPE K: trainable parameters at depth K
expected() {
  local L C I V P
  case $1 in
    minilm-l6) L=6 C=384 I=1536 V=30522 P=512 ;;
    bert-base) L=12 C=768 I=3072 V=30522 P=512 ;;
  esac
  local emb=$((V * C + P * C + 2 * C + 2 * C)) layer=$((4 * C * C + 2 * C * I + 9 * C + I)) head=$((C * C + C + 2 * C + 2))
  echo $(((L - $2) * layer + head + ($2 == 0 ? emb : 0)))
}

# check SHAPE LAYERS OUTPUT LABEL: the table's rows against expected
check() {
  local shape=$1 L=$2 out=$3 label=$4 rows=0 bad=0 k tr by want
  while read -r k tr by _; do
    rows=$((rows + 1))
    want=$(expected "$shape" "$k")
    if [ "$tr" != "$want" ] || [ "$by" != $((4 * want)) ]; then
      echo "FAIL $label: depth $k: trainable $tr, bytes $by; expected $want and $((4 * want))"; fail=1 bad=1
    fi
  done < <(sed -n '/^frozen *trainable *comm_bytes/,/^load average/p' "$out" | grep -E '^[0-9]+ ')
  if [ "$rows" != "$L" ]; then
    echo "FAIL $label: $rows rows in the all-reduce table, expected $L (one per depth)"; sed 's/^/  | /' "$out"; fail=1
  elif [ "$bad" = 0 ]; then
    echo "$label: $rows depths, trainable parameters and bytes as the shape says"
  fi
}

bench() { "$BIN" bench step --batch 2 --seq 8 --frozen all --steps 1 --warmup 0 --threads 1 "$@"; }

for shape in minilm-l6:6 bert-base:12; do
  if ! bench --config "${shape%:*}" >"$T/one.txt" 2>&1; then
    echo "FAIL one process, ${shape%:*}: bench step failed"; sed 's/^/  | /' "$T/one.txt"; fail=1; continue
  fi
  grep -q "one process, nothing sent" "$T/one.txt" || { echo "FAIL one process: no 'nothing sent' line"; fail=1; }
  check "${shape%:*}" "${shape#*:}" "$T/one.txt" "one process, ${shape%:*}"
done

# precision entries, one process (MiniLM shape, depth 0)
if bench --config minilm-l6 --frozen 0 --precision fp32,bf16,bf16-fp32-storage,frozen-bf16 >"$T/prec.txt" 2>&1; then
  for line in "^precision bf16:" "^precision bf16-fp32-storage:" "^precision fp32\+frozen-bf16:" \
      "^ratio bf16 / fp32 at frozen 0: " "^ratio bf16-fp32-storage / fp32 at frozen 0: " \
      "^activation arena .* MiB with fp32 storage, .* MiB \([0-9]+% less\) with the bf16"; do
    grep -Eq "$line" "$T/prec.txt" || { echo "FAIL precision entries: no line /$line/"; sed 's/^/  | /' "$T/prec.txt"; fail=1; }
  done
  echo "precision entries: fp32, bf16 (bf16 layout), bf16-fp32-storage, frozen-bf16 each timed"
else
  echo "FAIL precision entries: bench step failed"; sed 's/^/  | /' "$T/prec.txt"; fail=1
fi
bench --config minilm-l6 --precision fp32,bf17 >"$T/badprec.txt" 2>&1
rc=$?
if [ "$rc" != 2 ] || ! grep -q "bf16-fp32-storage" "$T/badprec.txt"; then
  echo "FAIL --precision fp32,bf17: exit $rc (expected 2) or no list of the entries:"; sed 's/^/  | /' "$T/badprec.txt"; fail=1
fi

# (Open MPI's own allocations outlive the ranks: no leak report for them under ASan)
MPI=(timeout 300 mpirun --allow-run-as-root --oversubscribe -np 2 -x OMP_NUM_THREADS=1 -x OMP_WAIT_POLICY=PASSIVE
     -x ASAN_OPTIONS=detect_leaks=0)
if ! command -v mpirun >/dev/null 2>&1; then
  echo "SKIP the 2-rank part: no mpirun"
elif ! "${MPI[@]}" true >"$T/probe.txt" 2>&1; then
  echo "SKIP the 2-rank part: mpirun cannot start 2 ranks here: $(head -c 300 "$T/probe.txt")"
elif ! "${MPI[@]}" "$BIN" bench step --config minilm-l6 --batch 2 --seq 8 --frozen all --steps 1 --warmup 0 \
    --threads 1 --precision fp32,bf16 >"$T/two.txt" 2>&1; then
  echo "FAIL mpirun -np 2 bench step failed:"; sed 's/^/  | /' "$T/two.txt"; fail=1
elif grep -q "one process, nothing sent" "$T/two.txt"; then
  echo "SKIP the 2-rank part: the ranks did not join one MPI job (autofreeze built without MPI?)"
else
  grep -q "over 2 ranks .*transport mpi" "$T/two.txt" || { echo "FAIL 2 ranks: no 'over 2 ranks ... transport mpi' line"; fail=1; }
  check minilm-l6 6 "$T/two.txt" "mpirun -np 2, minilm-l6"
  # the times are there: step_ms comm_ms comm% allreduce_ms alone% after the bytes
  bad=$(sed -n '/^frozen *trainable *comm_bytes/,/^load average/p' "$T/two.txt" | grep -E '^[0-9]+ ' |
    awk 'NF != 8 || $4 <= 0 || $5 < 0 || $7 < 0' | head -3)
  [ -z "$bad" ] || { echo "FAIL 2 ranks: rows without times: $bad"; fail=1; }
fi

if [ "$fail" = 0 ]; then echo "test_bench_comm: all checks passed"; else echo "test_bench_comm: FAILED"; fi
exit $fail

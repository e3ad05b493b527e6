#!/usr/bin/env bash
# `autofreeze info` on broken model directories: each must exit 1 with exactly one error
# line on stderr that names the offending file, and nothing on stdout. Builds a tiny valid
# model directory in pure bash (no Python), then breaks copies of it one way each.
set -u
if [ -z "${AF_BIN:-}" ] || [ ! -x "$AF_BIN" ]; then
  echo "SKIPPED: AF_BIN (the autofreeze binary) is not built"
  exit 77
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/afmodelerr.XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0

# A tiny BERT: L=1, C=4, NH=1, I=8, V=8, P=8, TV=2, F32 zeros, with pooler, no classifier.
make_model() {
  local dir=$1
  mkdir -p "$dir"
  cat >"$dir/config.json" <<'EOF'
{"model_type": "bert", "hidden_size": 4, "num_hidden_layers": 1, "num_attention_heads": 1,
 "intermediate_size": 8, "vocab_size": 8, "max_position_embeddings": 8, "type_vocab_size": 2,
 "hidden_act": "gelu"}
EOF
  printf '[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\nb\nc\n' >"$dir/vocab.txt"
  local L=encoder.layer.0
  local specs=(
    "embeddings.word_embeddings.weight 8 4" "embeddings.position_embeddings.weight 8 4"
    "embeddings.token_type_embeddings.weight 2 4" "embeddings.LayerNorm.weight 4" "embeddings.LayerNorm.bias 4"
    "$L.attention.self.query.weight 4 4" "$L.attention.self.query.bias 4"
    "$L.attention.self.key.weight 4 4" "$L.attention.self.key.bias 4"
    "$L.attention.self.value.weight 4 4" "$L.attention.self.value.bias 4"
    "$L.attention.output.dense.weight 4 4" "$L.attention.output.dense.bias 4"
    "$L.attention.output.LayerNorm.weight 4" "$L.attention.output.LayerNorm.bias 4"
    "$L.intermediate.dense.weight 8 4" "$L.intermediate.dense.bias 8"
    "$L.output.dense.weight 4 8" "$L.output.dense.bias 4"
    "$L.output.LayerNorm.weight 4" "$L.output.LayerNorm.bias 4"
    "pooler.dense.weight 4 4" "pooler.dense.bias 4"
  )
  local off=0 hdr='{"__metadata__":{"format":"pt"}' s name n shape d end
  for s in "${specs[@]}"; do
    set -- $s
    name=$1
    shift
    n=1
    shape=""
    for d in "$@"; do
      n=$((n * d))
      shape+="${shape:+,}$d"
    done
    end=$((off + 4 * n))
    hdr+=",\"$name\":{\"dtype\":\"F32\",\"shape\":[$shape],\"data_offsets\":[$off,$end]}"
    off=$end
  done
  hdr+='}'
  while ((${#hdr} % 8)); do hdr+=' '; done
  local len=${#hdr}
  {
    printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x\\x00\\x00\\x00\\x00' $((len & 255)) $(((len >> 8) & 255)) \
      $(((len >> 16) & 255)) $(((len >> 24) & 255)))"
    printf '%s' "$hdr"
    head -c "$off" /dev/zero
  } >"$dir/model.safetensors"
}

# expect_fail WHAT SUBSTRING ARGS...: exit 1, one stderr line "autofreeze info: ..." with SUBSTRING.
expect_fail() {
  local what=$1 want=$2
  shift 2
  "$AF_BIN" info "$@" >"$T/out" 2>"$T/err"
  local rc=$? nerr
  nerr=$(wc -l <"$T/err")
  if [ "$rc" -ne 1 ] || [ "$nerr" -ne 1 ] || [ -s "$T/out" ] || ! grep -q '^autofreeze info: ' "$T/err" ||
    ! grep -qF -- "$want" "$T/err"; then
    echo "FAIL: $what: exit $rc, $nerr stderr line(s), want exit 1 and one line containing '$want'"
    sed 's/^/  stderr: /' "$T/err"
    sed 's/^/  stdout: /' "$T/out" | head -5
    fails=$((fails + 1))
  else
    echo "ok: $what: $(cat "$T/err")"
  fi
}

# expect_rc WHAT RC ARGS...
expect_rc() {
  local what=$1 want=$2
  shift 2
  "$AF_BIN" info "$@" >"$T/out" 2>"$T/err"
  local rc=$?
  if [ "$rc" -ne "$want" ]; then
    echo "FAIL: $what: exit $rc, want $want"
    sed 's/^/  stderr: /' "$T/err"
    fails=$((fails + 1))
  else
    echo "ok: $what (exit $rc)"
  fi
}

make_model "$T/good"

# A binary without the subcommand linked in fails every case below for one reason: say it once.
if "$AF_BIN" info --help 2>&1 | grep -q 'not part of this build'; then
  echo "FAIL: $AF_BIN has no 'info' subcommand linked in (main.c references subcommands weakly;"
  echo "      the static afcore archive member is not pulled unless the link uses --whole-archive)"
  exit 1
fi

# Usage.
expect_rc "--help" 0 --help
grep -q '^usage: autofreeze info' "$T/out" || { echo "FAIL: --help prints no usage on stdout"; fails=$((fails + 1)); }
expect_rc "no MODEL_DIR" 2
expect_rc "unknown option" 2 "$T/good" --frobnicate
expect_rc "bad --labels" 2 "$T/good" --labels zero
expect_rc "two directories" 2 "$T/good" "$T/good"

# The good tiny model: exit 0, counts printed (needs the backend).
expect_rc "tiny model" 0 "$T/good" --labels 3
if [ "$(cat "$T/err")" = "" ] && grep -q 'total' "$T/out"; then
  # embeddings (8+8+2)*4+8 = 80, layer 3*(16+4)+(16+4)+8+(32+8)+(32+4)+8 = 172, pooler 20,
  # classifier 3*4+3 = 15.
  grep -q 'total *287 ' "$T/out" || { echo "FAIL: tiny total is not 287"; cat "$T/out"; fails=$((fails + 1)); }
fi

# Broken directories.
expect_fail "missing directory" "$T/nope" "$T/nope"

cp -r "$T/good" "$T/novocab"
rm "$T/novocab/vocab.txt"
expect_fail "missing vocab.txt" "$T/novocab/vocab.txt" "$T/novocab"

cp -r "$T/good" "$T/noweights"
rm "$T/noweights/model.safetensors"
expect_fail "missing model.safetensors" "$T/noweights/model.safetensors" "$T/noweights"

cp -r "$T/good" "$T/truncated"
size=$(stat -c %s "$T/truncated/model.safetensors")
truncate -s $((size - 100)) "$T/truncated/model.safetensors"
expect_fail "truncated model.safetensors" "$T/truncated/model.safetensors" "$T/truncated"

cp -r "$T/good" "$T/corrupt"
printf 'garbage!garbage!' | dd of="$T/corrupt/model.safetensors" bs=1 seek=8 conv=notrunc status=none
expect_fail "corrupt header" "$T/corrupt/model.safetensors" "$T/corrupt"

cp -r "$T/good" "$T/hugelen"
printf '\xff\xff\xff\x00\x00\x00\x00\x00' | dd of="$T/hugelen/model.safetensors" bs=1 conv=notrunc status=none
expect_fail "header length past EOF" "$T/hugelen/model.safetensors" "$T/hugelen"

cp -r "$T/good" "$T/shortfile"
printf 'abc' >"$T/shortfile/model.safetensors"
expect_fail "3-byte model.safetensors" "$T/shortfile/model.safetensors" "$T/shortfile"

cp -r "$T/good" "$T/disagree"
sed -i 's/"intermediate_size": 8/"intermediate_size": 16/' "$T/disagree/config.json"
expect_fail "config disagrees with weights" "$T/disagree/model.safetensors" "$T/disagree"
grep -q 'disagree' "$T/err" || { echo "FAIL: disagreement not called one"; fails=$((fails + 1)); }

cp -r "$T/good" "$T/badcfg"
sed -i 's/"hidden_act": "gelu"/"hidden_act": "relu"/' "$T/badcfg/config.json"
expect_fail "unsupported hidden_act" "$T/badcfg/config.json" "$T/badcfg"

cp -r "$T/good" "$T/notjson"
printf '{"hidden_size": 4,,}' >"$T/notjson/config.json"
expect_fail "config.json not JSON" "$T/notjson/config.json" "$T/notjson"

# The real model, when present.
if [ -n "${AF_MODEL_DIR:-}" ] && [ -f "$AF_MODEL_DIR/model.safetensors" ]; then
  expect_rc "real model" 0 "$AF_MODEL_DIR"
  # BertModel MiniLM-L6: 22,713,216 parameters; + a 2-label classifier (770).
  grep -q 'total *22,713,986 ' "$T/out" || { echo "FAIL: MiniLM total"; cat "$T/out"; fails=$((fails + 1)); }
else
  echo "SKIPPED part: real model (AF_MODEL_DIR has no model.safetensors)"
fi

if [ "$fails" -ne 0 ]; then
  echo "test_model_errors: $fails check(s) FAILED"
  exit 1
fi
echo "test_model_errors: all checks passed"

# `autofreeze data`: help and usage exits, build-default from a Packages fixture (and from
# the machine's apt lists when apt-cache is there), stats on a fixture task with a tiny
# vocabulary, runtime errors as one line with exit 1.
set -u
BIN=${AF_BIN:?AF_BIN not set}
T=$(mktemp -d "${TMPDIR:-/tmp}/afdatacli.XXXXXX")
trap 'rm -rf "$T"' EXIT
fail=0
check() { # check NAME WANT_RC CMD... ; output in $T/out
  local name=$1 want=$2; shift 2
  "$@" >"$T/out" 2>&1
  local rc=$?
  if [ "$rc" != "$want" ]; then
    echo "FAIL $name: exit $rc, want $want"; sed 's/^/  | /' "$T/out" | head -20; fail=1
  else
    echo "ok   $name"
  fi
}
has() { # has NAME TEXT : $T/out contains TEXT
  if grep -qF -- "$2" "$T/out"; then echo "ok   $1"; else echo "FAIL $1: no '$2' in:"; sed 's/^/  | /' "$T/out" | head -20; fail=1; fi
}

check "data --help" 0 "$BIN" data --help
has "help lists build-default" "build-default"
check "data stats --help" 0 "$BIN" data stats --help
check "data (no subcommand)" 2 "$BIN" data
check "data unknown subcommand" 2 "$BIN" data frobnicate
check "stats without --task" 2 "$BIN" data stats --data "$T" --model "$T"
check "stats bad --max-len" 2 "$BIN" data stats --task rte --data "$T" --model "$T" --max-len 2
check "stats unknown task" 2 "$BIN" data stats --task nope --data "$T" --model "$T"
has "unknown task message" "unknown task 'nope'"
check "build-default bad --min-count" 2 "$BIN" data build-default --min-count x
check "build-default unknown option" 2 "$BIN" data build-default --frob 1

# build-default from a fixture
cat >"$T/Packages" <<'EOF'
Package: libfoo1
Source: foo (1.0-1)
Section: libs
Description: foo runtime library
 Long text
 .
 more.

Package: libbar1
Section: non-free/libs
Description: bar runtime library

Package: foo-tools
Source: foo
Section: utils
Description: tools for foo

Package: baz
Section: contrib/utils
Description: baz utility

Package: dupe
Section: utils
Description: baz utility

Package: odd
Section: games
Description: a lone game
EOF
check "build-default fixture" 0 "$BIN" data build-default --packages "$T/Packages" --out "$T/def" --min-count 2
has "prints section table" "section"
has "reports duplicates" "1 duplicate descriptions"
for f in train.tsv dev.tsv labels.txt; do
  [ -f "$T/def/$f" ] || { echo "FAIL build-default: no $f"; fail=1; }
done
if [ "$(cat "$T/def/labels.txt")" != "$(printf 'libs\nutils')" ]; then echo "FAIL labels.txt: $(cat "$T/def/labels.txt")"; fail=1; fi
if [ "$(head -1 "$T/def/train.tsv")" != "$(printf 'sentence\tlabel')" ]; then echo "FAIL train.tsv header"; fail=1; fi
rows=$(( $(wc -l <"$T/def/train.tsv") + $(wc -l <"$T/def/dev.tsv") - 2 ))
[ "$rows" = 4 ] || { echo "FAIL build-default: $rows rows, want 4"; fail=1; }
grep -q "foo runtime library Long text more." "$T/def/train.tsv" "$T/def/dev.tsv" || { echo "FAIL long description not joined"; fail=1; }
check "build-default missing packages file" 1 "$BIN" data build-default --packages "$T/nope" --out "$T/x"
has "missing file message" "nope: expected a Packages-format file"
[ "$(wc -l <"$T/out")" = 1 ] || { echo "FAIL runtime error is not one line"; fail=1; }

# stats with a tiny vocabulary as the model
mkdir -p "$T/model" "$T/rte"
printf '[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\ncat\nsat\n.\n' >"$T/model/vocab.txt"
printf 'index\tsentence1\tsentence2\tlabel\n0\tThe cat sat.\tThe cat.\tentailment\n1\tcat\tsat\tnot_entailment\n' >"$T/rte/train.tsv"
printf 'index\tsentence1\tsentence2\tlabel\n0\tThe cat sat.\tThe cat.\tentailment\n' >"$T/rte/dev.tsv"
check "stats rte fixture" 0 "$BIN" data stats --task rte --data "$T/rte" --model "$T/model" --max-len 6
has "stats rows" "rows 2"
has "stats labels" "entailment 1 (50.0%)"
has "stats truncation" "truncated 1 (50.00%)"
has "stats percentiles" "p50 5  p90 6  p99 6  max 6"
check "stats again (cache)" 0 "$BIN" data stats --task rte --data "$T/rte" --model "$T/model" --max-len 6
has "stats from cache" "tokens from the cache"
printf '2\tx\ty\tmaybe\n3\ta\tb\n' >>"$T/rte/train.tsv"
check "stats bad rows fail" 1 "$BIN" data stats --task rte --data "$T/rte" --model "$T/model"
has "bad row listed" "train.tsv:4: expected a label in {entailment, not_entailment}, found 'maybe'"
check "stats --skip-bad-rows" 0 "$BIN" data stats --task rte --data "$T/rte" --model "$T/model" --skip-bad-rows
has "skipped counted" "bad rows skipped 2"
check "stats missing data" 1 "$BIN" data stats --task rte --data "$T/none" --model "$T/model"
has "missing split named" "none/train.tsv: expected the train split file"
check "stats generic" 0 "$BIN" data stats --task generic --data "$T/rte" --model "$T/model" --text-cols sentence1,sentence2 \
  --label-col label --labels entailment,not_entailment --skip-bad-rows --splits train

# the machine's own package lists (optional)
if command -v apt-cache >/dev/null 2>&1 && [ -n "$(ls /var/lib/apt/lists/ 2>/dev/null | grep _Packages)" ]; then
  check "build-default from apt" 0 "$BIN" data build-default --out "$T/apt" --max-per-class 40
  has "apt total" "total"
else
  echo "skip build-default from apt: no apt lists on this machine"
fi
exit $fail

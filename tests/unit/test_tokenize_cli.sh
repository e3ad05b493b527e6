#!/usr/bin/env bash
# `autofreeze tokenize` through $AF_BIN: text and pair output, TSV mode, --help, and the
# exit codes (2 usage, 1 runtime with one "autofreeze tokenize: ..." line). Uses a temp
# model dir holding only tests/fixtures/vocab-uncased.txt, so no download is needed.
set -u
: "${AF_BIN:?AF_BIN must point at the autofreeze binary}"
: "${AF_SOURCE_DIR:?AF_SOURCE_DIR must point at the source tree}"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/aftokcli.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

mkdir "$tmp/model"
cp "$AF_SOURCE_DIR/tests/fixtures/vocab-uncased.txt" "$tmp/model/vocab.txt"
M="$tmp/model"

if "$AF_BIN" tokenize --help 2>&1 | grep -q "not part of this build"; then
  echo "SKIPPED: this autofreeze binary was built without the tokenize command"
  exit 77
fi

# run EXPECTED_RC CMD...: stdout -> $tmp/out, stderr -> $tmp/err
run() {
  local want=$1; shift
  "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  [ "$rc" -eq "$want" ] || fail "exit $rc (want $want): $* -- stderr: $(head -c 300 "$tmp/err")"
}

run 0 "$AF_BIN" tokenize --help
grep -q "usage: autofreeze tokenize" "$tmp/out" || fail "--help prints no usage"

run 0 "$AF_BIN" tokenize "$M" "Hello, world!"
grep -qx "tokens:   \[CLS\] hello , world ! \[SEP\]" "$tmp/out" || fail "tokens line: $(cat "$tmp/out")"
grep -qx "ids:      101 7592 1010 2088 999 102" "$tmp/out" || fail "ids line: $(cat "$tmp/out")"
grep -qx "type_ids: 0 0 0 0 0 0" "$tmp/out" || fail "type_ids line"

run 0 "$AF_BIN" tokenize "$M" "Hello" "world"
grep -qx "ids:      101 7592 102 2088 102" "$tmp/out" || fail "pair ids: $(cat "$tmp/out")"
grep -qx "type_ids: 0 0 0 1 1" "$tmp/out" || fail "pair type ids"

run 0 "$AF_BIN" tokenize "$M" "a b c d e f" --max-len 4
grep -qx "ids:      101 1037 1038 102" "$tmp/out" || fail "--max-len: $(cat "$tmp/out")"
grep -q "(truncated)" "$tmp/out" || fail "truncation not reported"

# TSV: header, a tab inside the row, CRLF, column pairs.
printf 'sentence\tother\tlabel\nHello, world!\tworld\t1\r\nnaïve café\tHello\t0\n' >"$tmp/d.tsv"
run 0 "$AF_BIN" tokenize "$M" --tsv "$tmp/d.tsv" --column 0 --skip-header
printf '101 7592 1010 2088 999 102\n101 15743 7668 102\n' >"$tmp/want"
cmp -s "$tmp/out" "$tmp/want" || fail "TSV single column: $(cat "$tmp/out")"
run 0 "$AF_BIN" tokenize "$M" --tsv "$tmp/d.tsv" --column 0 --column2 1 --skip-header --max-len 5
printf '101 7592 102 2088 102\n101 15743 102 7592 102\n' >"$tmp/want"
cmp -s "$tmp/out" "$tmp/want" || fail "TSV pair + max-len: $(cat "$tmp/out")"
run 0 "$AF_BIN" tokenize "$M" --tsv - --column 0 < "$tmp/d.tsv"
[ "$(wc -l < "$tmp/out")" -eq 3 ] || fail "TSV from stdin"

# Usage errors: exit 2.
run 2 "$AF_BIN" tokenize
run 2 "$AF_BIN" tokenize "$M"
run 2 "$AF_BIN" tokenize "$M" "x" --bogus
run 2 "$AF_BIN" tokenize "$M" "x" --max-len abc
run 2 "$AF_BIN" tokenize "$M" "x" --max-len 1
run 2 "$AF_BIN" tokenize "$M" "x" "y" --max-len 2
run 2 "$AF_BIN" tokenize "$M" --tsv "$tmp/d.tsv"
run 2 "$AF_BIN" tokenize "$M" "x" --column 0

# Runtime errors: exit 1 and one line naming the problem.
run 1 "$AF_BIN" tokenize "$tmp/nonexistent" "x"
[ "$(wc -l < "$tmp/err")" -eq 1 ] && grep -q "^autofreeze tokenize: .*nonexistent/vocab.txt" "$tmp/err" ||
  fail "missing vocab message: $(cat "$tmp/err")"
run 1 "$AF_BIN" tokenize "$M" --tsv "$tmp/missing.tsv" --column 0
[ "$(wc -l < "$tmp/err")" -eq 1 ] && grep -q "^autofreeze tokenize: .*missing.tsv" "$tmp/err" ||
  fail "missing TSV message: $(cat "$tmp/err")"
run 1 "$AF_BIN" tokenize "$M" --tsv "$tmp/d.tsv" --column 5
grep -q "^autofreeze tokenize: .*d.tsv:1: no column 5" "$tmp/err" || fail "short row message: $(cat "$tmp/err")"
mkdir "$tmp/bad" && printf '[PAD]\n[UNK]\nhello\n' >"$tmp/bad/vocab.txt"
run 1 "$AF_BIN" tokenize "$tmp/bad" "x"
grep -q "^autofreeze tokenize: .*vocab.txt.*\[CLS\], \[SEP\]" "$tmp/err" || fail "bad vocab message: $(cat "$tmp/err")"

if [ "$fails" -ne 0 ]; then
  echo "test_tokenize_cli: $fails check(s) FAILED"
  exit 1
fi
echo "test_tokenize_cli: all checks passed"

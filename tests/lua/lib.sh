# Shared by the tests/lua/test_*.sh scripts: the binary, a scratch folder, check helpers.
# Every check that fails is counted; the script ends with `finish`, which exits 1 when any did.
set -u
BIN=${AF_BIN:-}
SRC=${AF_SOURCE_DIR:-}
if [ -z "$BIN" ] || [ ! -x "$BIN" ]; then echo "AF_BIN is not set to the autofreeze binary" >&2; exit 1; fi
if [ -z "$SRC" ] || [ ! -d "$SRC/tests/lua" ]; then echo "AF_SOURCE_DIR is not set to the source tree" >&2; exit 1; fi
export AF_SOURCE_DIR=$SRC OMP_NUM_THREADS=1
TMP=$(mktemp -d "${TMPDIR:-/tmp}/af-lua-test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
FAILS=0
TINY=$SRC/tests/fixtures/bert_tiny/cls

fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
# expect_rc WANT DESCRIPTION -- command...   (stdout -> $TMP/out, stderr -> $TMP/err)
expect_rc() {
  local want=$1 what=$2; shift 3
  "$@" >"$TMP/out" 2>"$TMP/err"
  local rc=$?
  if [ "$rc" != "$want" ]; then
    fail "$what: exit $rc, expected $want"
    sed 's/^/  stdout: /' "$TMP/out" | head -20 >&2
    sed 's/^/  stderr: /' "$TMP/err" | head -20 >&2
  fi
}
# expect_in FILE REGEX DESCRIPTION
expect_in() {
  if ! grep -Eq -- "$2" "$1"; then
    fail "$3: /$2/ not found in $(basename "$1")"
    sed 's/^/  | /' "$1" | head -20 >&2
  fi
}
finish() {
  if [ "$FAILS" -gt 0 ]; then echo "$1: $FAILS check(s) failed" >&2; exit 1; fi
  echo "$1: all checks passed"
  exit 0
}
# The tiny task: data in $TMP/tiny (400 train, 100 dev rows).
make_tiny() {
  cat >"$TMP/mk.lua" <<LUA
local make = dofile(os.getenv("AF_SOURCE_DIR") .. "/tests/lua/tiny_task.lua")
make(arg[1], 400, 100)
LUA
  "$BIN" run "$TMP/mk.lua" "$TMP/tiny" || { echo "could not make the tiny task" >&2; exit 1; }
}

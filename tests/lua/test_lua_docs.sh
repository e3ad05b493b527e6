# The examples of docs/lua-api.md run: every ```lua block is written to a file and run with
# `autofreeze run` in a folder holding models/tiny (the test model) and data/tiny-sst2 (the
# generated task). Blocks starting with "-- needs: model" or "-- needs: glue" are skipped
# (they need the real model or GLUE and minutes of CPU).
. "$(dirname "$0")/lib.sh"
DOC=$SRC/docs/lua-api.md
[ -f "$DOC" ] || { echo "missing $DOC" >&2; exit 1; }
make_tiny
BOX=$TMP/box
mkdir -p "$BOX/models" "$BOX/data"
cp -r "$TINY" "$BOX/models/tiny"
cp -r "$TMP/tiny" "$BOX/data/tiny-sst2"
awk -v dir="$BOX" '
  /^```lua[[:space:]]*$/ { n++; file = sprintf("%s/block_%02d.lua", dir, n); inb = 1; next }
  /^```/ && inb { inb = 0; close(file); next }
  inb { print > file }
' "$DOC"
ran=0 skipped=0
for f in "$BOX"/block_*.lua; do
  [ -e "$f" ] || { fail "no lua blocks found in $DOC"; break; }
  if head -1 "$f" | grep -Eq '^-- needs: (model|glue)'; then skipped=$((skipped + 1)); continue; fi
  (cd "$BOX" && "$BIN" run "$f") >"$TMP/out" 2>"$TMP/err"
  rc=$?
  if [ $rc -ne 0 ]; then
    fail "docs example $(basename "$f") exited $rc"
    sed 's/^/  | /' "$f" | head -40 >&2
    sed 's/^/  stderr: /' "$TMP/err" | head -20 >&2
  fi
  ran=$((ran + 1))
done
echo "docs examples: $ran run, $skipped skipped (need the real model or GLUE)"
[ "$ran" -ge 8 ] || fail "expected at least 8 runnable examples, found $ran"
finish test_lua_docs

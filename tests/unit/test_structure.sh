# The code's shape, as docs/architecture.md states it:
#  - calls point one way: each room of the engine includes only the rooms below it
#    (base <- model, data, results <- run), never a front-end (cli, bench, lua, plots);
#  - nothing outside kernels/ (and the tests of the backends) includes a backend's own
#    headers: front-ends and engine reach a backend only through kernels/ops.h (and the run
#    its device collectives through kernels/comm.h, which includes no NCCL or CUDA header);
#  - no function outside tests/ is longer than 120 lines.
# Each rule is checked against a planted violation too, so the checks cannot pass vacuously.
set -u
SRC=${AF_SOURCE_DIR:?AF_SOURCE_DIR not set}
cd "$SRC" || exit 1
T=$(mktemp -d "${TMPDIR:-/tmp}/afstruct.XXXXXX")
trap 'rm -rf "$T"' EXIT
fail=0

# room -> the include prefixes it may use
allowed() {
  case $1 in
    base) echo "core/base/" ;;
    model) echo "core/base/ core/model/ kernels/ops.h" ;;
    data) echo "core/base/ core/data/ kernels/ops.h" ;;
    results) echo "core/base/ core/results/" ;;
    run) echo "core/base/ core/model/ core/data/ core/results/ core/run/ kernels/ops.h kernels/comm.h" ;;
  esac
}

# layering FILE ROOM: prints the includes of FILE that ROOM may not use
layering() {
  local ok inc p good
  ok=$(allowed "$2")
  grep -o '#include "[^"]*"' "$1" | sed 's/#include "//; s/"$//' | while read -r inc; do
    good=0
    for p in $ok; do case $inc in "$p"*) good=1 ;; esac; done
    [ "$good" = 1 ] || echo "$1 includes $inc"
  done
}

for room in base model data results run; do
  for f in core/$room/*.c core/$room/*.h; do
    [ -e "$f" ] || continue
    layering "$f" "$room"
  done
done >"$T/layering"
if [ -s "$T/layering" ]; then
  echo "FAIL layering: an engine room includes a higher room or a front-end:"; sed 's/^/  /' "$T/layering"; fail=1
fi
printf '#include "core/run/train.h"\n' >"$T/planted.c"
[ -n "$(layering "$T/planted.c" model)" ] || { echo "FAIL layering check: a planted model -> run include passed"; fail=1; }

# backends only through kernels/ops.h
grep -rln --include='*.c' --include='*.h' --include='*.cu' -e '#include "kernels/cpu/' -e '#include "kernels/cuda/' \
  core lua plots >"$T/backend" 2>/dev/null
if [ -s "$T/backend" ]; then
  echo "FAIL backend reached around kernels/ops.h by:"; sed 's/^/  /' "$T/backend"; fail=1
fi

# function length: a body starts where brace depth goes 0 -> 1 after a ')' (a signature),
# and ends where it returns to 0; strings, characters and comments are blanked first
cat >"$T/len.awk" <<'AWK'
function strip(s) { gsub(/"([^"\\]|\\.)*"/, "\"\"", s); gsub(/'([^'\\]|\\.)*'/, "''", s); sub(/\/\/.*/, "", s); return s }
FNR == 1 { depth = 0; incom = 0; start = 0; sig = "" }
{
  line = $0
  if (incom) { if (index(line, "*/")) { line = substr(line, index(line, "*/") + 2); incom = 0 } else next }
  while (match(line, /\/\*/)) {
    rest = substr(line, RSTART + 2)
    if (index(rest, "*/")) line = substr(line, 1, RSTART - 1) substr(rest, index(rest, "*/") + 2)
    else { line = substr(line, 1, RSTART - 1); incom = 1 }
  }
  line = strip(line)
  if (depth == 0 && line ~ /[A-Za-z_]/) sig = sig " " line
  n = split(line, ch, "")
  for (i = 1; i <= n; i++) {
    if (ch[i] == "{") {
      if (depth == 0) start = (sig ~ /\)[^;=]*\{?[ \t]*$/ && sig !~ /=[ \t]*\{?[ \t]*$/) ? FNR : 0
      depth++
    } else if (ch[i] == "}") {
      depth--
      if (depth == 0) { if (start && FNR - start + 1 > LIM) printf "%s:%d: %d lines\n", FILENAME, start, FNR - start + 1; start = 0; sig = "" }
    } else if (ch[i] == ";" && depth == 0) sig = ""
  }
}
AWK
files=$(find core kernels lua plots -name '*.c' -o -name '*.cu' -o -name '*.h' -o -name '*.cuh' | sort)
awk -v LIM=120 -f "$T/len.awk" $files >"$T/long"
if [ -s "$T/long" ]; then
  echo "FAIL functions over 120 lines (split them):"; sed 's/^/  /' "$T/long"; fail=1
fi
{ echo "static int planted(void) {"; for i in $(seq 1 130); do echo "  x();"; done; echo "}"; } >"$T/long.c"
[ -n "$(awk -v LIM=120 -f "$T/len.awk" "$T/long.c")" ] || { echo "FAIL length check: a planted 132-line function passed"; fail=1; }

nfiles=$(echo "$files" | wc -w)
if [ "$fail" = 0 ]; then
  echo "structure: layering, backend access and function length hold over $nfiles files"
  echo "1 passed, 0 failed"
else
  echo "0 passed, 1 failed"
fi
exit $fail

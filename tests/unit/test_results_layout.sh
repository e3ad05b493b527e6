#!/usr/bin/env bash
# The results file layout, structure only: `h5dump -H` of the small deterministic file that
# test_results writes (argv[1] mode) must match tests/fixtures/results_layout.txt. Row counts
# and the file name are normalised away. AF_UPDATE_FIXTURES=1 rewrites the fixture.
set -u
src=${AF_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
fixture="$src/tests/fixtures/results_layout.txt"
writer=${AF_TEST_RESULTS:-./test_results}
command -v h5dump >/dev/null 2>&1 || { echo "SKIPPED: h5dump not installed (apt-get install hdf5-tools)"; exit 77; }
[ -x "$writer" ] || { echo "FAIL: $writer not built (run from the build directory)"; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/aflayout.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
"$writer" "$tmp/layout.h5" || { echo "FAIL: $writer could not write the layout file"; exit 1; }
h5dump -H "$tmp/layout.h5" > "$tmp/raw.txt" || { echo "FAIL: h5dump cannot read the file"; exit 1; }
sed -e '1s/^HDF5 ".*" {$/HDF5 "FILE" {/' -e 's/SIMPLE { ( [0-9][0-9]*/SIMPLE { ( n/' "$tmp/raw.txt" > "$tmp/layout.txt"
if [ "${AF_UPDATE_FIXTURES:-0}" = 1 ]; then
  cp "$tmp/layout.txt" "$fixture" && echo "updated $fixture" && exit 0
fi
[ -f "$fixture" ] || { echo "FAIL: missing fixture $fixture"; exit 1; }
if ! diff -u "$fixture" "$tmp/layout.txt"; then
  echo "FAIL: results layout differs from $fixture (update docs/results-format.md, bump AF_RESULTS_FORMAT_VERSION if readers break, then AF_UPDATE_FIXTURES=1)"
  exit 1
fi
echo "test_results_layout: layout matches ($(wc -l < "$fixture") lines)"

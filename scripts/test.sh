#!/usr/bin/env bash
# Builds and runs the whole test suite: the release build under ctest, the same tests
# under AddressSanitizer + UndefinedBehaviorSanitizer, the cache test under
# ThreadSanitizer, and each fuzz target for a few seconds on its committed corpus.
# Exits non-zero if anything fails.
#   usage: scripts/test.sh [--quick]   (--quick: release build only)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
quick=0; [ "${1:-}" = "--quick" ] && quick=1
status=0

echo "== release build + tests"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs") || status=1

if [ "$quick" = 0 ]; then
  echo "== sanitizer build (ASan + UBSan) + tests"
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DAF_SANITIZE=ON -DAF_CUDA=OFF >/dev/null
  cmake --build build-asan -j"$jobs"
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j"$jobs") || status=1

  echo "== thread sanitizer on the activation cache (its prefetch reader thread)"
  # Only test_cache: TSan cannot see libgomp's barriers, so OpenMP code reports false races.
  cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DAF_TSAN=ON -DAF_CUDA=OFF >/dev/null
  cmake --build build-tsan -j"$jobs" --target test_cache
  (cd build-tsan && TSAN_OPTIONS=halt_on_error=1 ./test_cache >tsan.log 2>&1) \
    || { tail -60 build-tsan/tsan.log; echo "test_cache under TSan failed (build-tsan/tsan.log)"; status=1; }

  echo "== fuzz targets (a few seconds each)"
  CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DAF_FUZZ=ON -DAF_CUDA=OFF >/dev/null
  cmake --build build-fuzz -j"$jobs" --target $(cd tests/fuzz && ls fuzz_*.c | sed 's/\.c$//' | tr '\n' ' ')
  (cd build-fuzz && ctest --output-on-failure -L fuzz) || status=1
fi
exit $status

#!/usr/bin/env bash
# Builds autofreeze (release) and runs the main job on the built-in default: the default
# model (all-MiniLM-L6-v2) and the default task. Assumes scripts/setup.sh has run.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)"
model=models/all-MiniLM-L6-v2
if [ ! -s "$model/model.safetensors" ]; then
  echo "main: the default model is missing from $model (scripts/setup.sh fetches it)" >&2
  exit 1
fi
exec build/autofreeze run experiments/quickstart.lua "$@"

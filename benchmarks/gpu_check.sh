#!/usr/bin/env bash
# The one prepared GPU run (issue 13): benchmarks/gpu_check.py under the machine's own python3 and torch.
#
#   bash benchmarks/gpu_check.sh --out "$OUT"      # on the lent GPU machine (benchmarks/README.md, "GPU check")
#   bash benchmarks/gpu_check.sh --cpu-smoke       # every part tiny, on a CPU (tests/test_gpu_check.py)
#
# Before it, here: benchmarks/prepare_gpu_check.sh (or `make gpu-check-prepare`) copies the data into
# .device-data/ and the missing pure-Python wheels into .whl/; the `run` call carries both folders.
# Python: $PYTHON, else this checkout's .venv (here), else python3 (the GPU machine: its preinstalled torch;
# the project's pins are not installed there). The wheels in .whl/ are installed into a folder of their own
# (/tmp/prunebench-site) only when the interpreter lacks jsonschema, and put first on PYTHONPATH.
set -uo pipefail
export GPU_CHECK_T0="${GPU_CHECK_T0:-$(date +%s.%N)}"   # the budget counts from here (wheel install included)
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
    if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
if ! "$PY" -c "import jsonschema, referencing" 2>/dev/null; then
    if ls .whl/*.whl >/dev/null 2>&1; then
        SITE=/tmp/prunebench-site
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl \
            || { echo "gpu_check.sh: installing .whl/*.whl failed" >&2; exit 2; }
        export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
    else
        echo "gpu_check.sh: $PY lacks jsonschema and there is no .whl/ (run benchmarks/prepare_gpu_check.sh, carry .whl)" >&2
        exit 2
    fi
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec "$PY" benchmarks/gpu_check.py "$@"

# The two commands of the README: `make figures` (quick preset) and `make test`.
# Each (re)builds .venv from the pins in pyproject.toml when it is missing or older than the pins.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.prunebench-installed
CORES  ?= all
PRESET ?= quick
# Local copies of the data sets (see README "Data"): used when present, else the official download.
SHARED_DATA := $(wildcard ../shared/data)
export PRUNEBENCH_DATA_SOURCES ?= $(abspath $(SHARED_DATA))

.PHONY: figures results test test-fast bench venv clean-venv

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

figures: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) figures --configfile config/$(PRESET).yaml

results: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) results --configfile config/$(PRESET).yaml

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not e2e and not slurm"

bench: $(STAMP)
	$(BIN)/prunebench bench

clean-venv:
	rm -rf $(VENV)

# The one prepared GPU run (benchmarks/README.md, "GPU check"): gpu-check-prepare copies the data into
# .device-data/ and the wheels the GPU machine lacks into .whl/ (the two folders the device run carries);
# gpu-check-cpu runs the script's CPU smoke mode on that data (every part, tiny).
.PHONY: gpu-check-prepare gpu-check-cpu
gpu-check-prepare:
	bash benchmarks/prepare_gpu_check.sh

gpu-check-cpu: $(STAMP) gpu-check-prepare
	PYTHON=$(BIN)/python bash benchmarks/gpu_check.sh --cpu-smoke --data-sources .device-data

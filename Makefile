# The two commands of the README: `make figures` (quick preset) and `make test`.
# Each (re)builds .venv when it is missing or older than pyproject.toml / requirements/constraints.txt:
# prunebench with every extra, at the exact versions of requirements/constraints.txt.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.prunebench-installed
CORES  ?= all
PRESET ?= quick
LOCK   := requirements/constraints.txt
REMOTE ?= store
# Local copies of the data sets (see README "Data"): used when present, else the official download.
SHARED_DATA := $(wildcard ../shared/data)
export PRUNEBENCH_DATA_SOURCES ?= $(abspath $(SHARED_DATA))
# The Python floor (pyproject.toml requires-python; the locked numpy, pandas, snakemake need it).
PY_FLOOR := 3.11
PY_OK = import sys; sys.exit(sys.version_info[:2] < tuple(map(int, "$(PY_FLOOR)".split("."))))

.PHONY: figures results test test-fast bench venv clean-venv lock wheel-check remote publish pull

$(STAMP): pyproject.toml $(LOCK)
	@test -x $(BIN)/python || { $(PYTHON) -c '$(PY_OK)' 2>/dev/null || { echo "make: prunebench needs Python >= $(PY_FLOOR); $(PYTHON) is $$($(PYTHON) --version 2>/dev/null || echo "not found") (try: make PYTHON=python$(PY_FLOOR) ...)" >&2; exit 2; }; $(PYTHON) -m venv $(VENV); }
	@$(BIN)/python -c '$(PY_OK)' || { echo "make: $(VENV) has Python $$($(BIN)/python --version 2>&1); prunebench needs >= $(PY_FLOOR): make clean-venv, then make PYTHON=python$(PY_FLOOR) ..." >&2; exit 2; }
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -c $(LOCK) -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

# `prunebench grid` validates the whole preset first (and refuses what Snakemake itself would choke on while
# reading it, e.g. YAML aliases that expand without bound); then Snakemake runs it.
figures: $(STAMP)
	$(BIN)/prunebench grid --config config/$(PRESET).yaml
	$(BIN)/snakemake --cores $(CORES) figures --configfile config/$(PRESET).yaml

results: $(STAMP)
	$(BIN)/prunebench grid --config config/$(PRESET).yaml
	$(BIN)/snakemake --cores $(CORES) results --configfile config/$(PRESET).yaml

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not e2e and not slurm"

bench: $(STAMP)
	$(BIN)/prunebench bench

clean-venv:
	rm -rf $(VENV)

# Rewrite requirements/constraints.txt from .venv after upgrading a package there and running `make test`.
lock: $(STAMP)
	$(BIN)/python requirements/lock.py

# The package as a pip user gets it: build the wheel, install it into a fresh venv, run the commands from
# outside the checkout (what CI runs; .ci/wheel-check).
wheel-check: $(STAMP)
	PYTHON=$(BIN)/python bash .ci/wheel-check

# Publishing results with DVC (docs/dvc-remote.md). Once per lab: a remote everyone can read, its address
# committed in .dvc/config (credentials stay out of git: dvc remote modify --local $(REMOTE) ...).
#   make remote URL=s3://bucket/prunebench     (or ssh://host/path/prunebench, or /shared/folder/prunebench)
#   make publish PRESET=quick                  after `make figures PRESET=quick`: dvc commit + push, stage dvc.lock
#   make pull PRESET=quick                     on another clone; `make figures PRESET=quick` then trains nothing
HAS_REMOTE = $(BIN)/dvc remote default >/dev/null 2>&1 || { echo "make: no DVC remote configured; add one first: make remote URL=<s3://bucket/path | ssh://host/path | /shared/folder>" >&2; exit 2; }

remote: $(STAMP)
	@test -n "$(URL)" || { echo "make: usage: make remote URL=<s3://bucket/path | ssh://host/path | /shared/folder>" >&2; exit 2; }
	$(BIN)/dvc remote add --default --force $(REMOTE) '$(URL)'
	@echo "DVC remote '$(REMOTE)' -> $(URL) written to .dvc/config; commit that file so that every clone pulls from it."

publish: $(STAMP)
	@$(HAS_REMOTE)
	$(BIN)/dvc commit --force $(PRESET)
	$(BIN)/dvc push $(PRESET)
	git add dvc.lock
	@for p in paper/replication-$(PRESET).md paper/figures/$(PRESET); do \
	  if [ -e $$p ] && ! git check-ignore -q $$p; then git add $$p; fi; done
	@echo "Pushed preset $(PRESET) to the DVC remote and staged dvc.lock (and its report, when git tracks it); now: git commit -m 'results: $(PRESET)' && git push"

pull: $(STAMP)
	@$(HAS_REMOTE)
	$(BIN)/dvc pull $(PRESET)
	@echo "Pulled preset $(PRESET); 'make figures PRESET=$(PRESET)' runs no training (only what is missing or changed)."

# The one prepared GPU run (benchmarks/README.md, "GPU check"): gpu-check-prepare copies the data into
# .device-data/ and the wheels the GPU machine lacks into .whl/ (the two folders the device run carries);
# gpu-check-cpu runs the script's CPU smoke mode on that data (every part, tiny).
.PHONY: gpu-check-prepare gpu-check-cpu
gpu-check-prepare:
	bash benchmarks/prepare_gpu_check.sh

gpu-check-cpu: $(STAMP) gpu-check-prepare
	PYTHON=$(BIN)/python bash benchmarks/gpu_check.sh --cpu-smoke --data-sources .device-data

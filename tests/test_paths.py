"""Artifact paths: readable, one pattern for every cell file (prunebench.pipeline.paths)."""
from prunebench.pipeline import paths
from prunebench.report import data
from prunebench.pipeline.paths import CELL_FILES, CELL_PATTERN, cell_dir, fmt_sparsity, init_path, train_init_path

CELL = {"preset": "p", "dataset": "mnist", "model": "lenet300", "init": "orthogonal", "arm": "snip_ai",
        "sparsity": 0.995, "seed": 2, "seeds": {"init": 2, "reinit": 40002}}


def test_cell_and_init_paths_are_readable():
    assert cell_dir(CELL) == "results/p/mnist/lenet300/orthogonal/snip_ai/s0.995/seed2"
    assert cell_dir(CELL, "/x") == "/x/p/mnist/lenet300/orthogonal/snip_ai/s0.995/seed2"
    assert init_path(CELL) == "results/p/mnist/lenet300/orthogonal/init/seed2.safetensors"
    assert train_init_path(CELL) == init_path(CELL)
    assert train_init_path({**CELL, "reinit": True}) == "results/p/mnist/lenet300/orthogonal/init/seed40002.safetensors"
    assert [fmt_sparsity(s) for s in (0.0, 0.9, 0.995, 0.999)] == ["0", "0.9", "0.995", "0.999"]


def test_one_pattern_for_every_cell_file():
    wild = {k: "{" + k + "}" for k in ("dataset", "model", "init", "arm", "sparsity", "seed")}
    assert CELL_PATTERN.format(**wild) == CELL_PATTERN
    assert set(CELL_FILES) >= {"mask.safetensors", "metrics.json", "weights_ai.safetensors"}
    assert sorted(set(CELL_FILES.values())) == [3, 4, 5]


def test_the_report_data_files_are_what_the_report_exports():
    """The report rule declares paper/data/<preset>/ file by file (paths.REPORT_DATA_FILES): the same names as
    prunebench.report.data exports."""
    exported = {n for t in data.TABLES for n in (t, t + ".sha256")} | {data.CONFIG_FILE, data.RUN_FILE, data.SUMS}
    assert set(paths.REPORT_DATA_FILES) == exported and len(paths.REPORT_DATA_FILES) == len(exported)

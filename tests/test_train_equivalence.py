"""The trainer gives the bytes of the loop it replaced, on the CPU (issue 19, issue 18 section 5).

tests/golden/training.json holds the sha256 of what the training loop of commit 7ba29fc (before the
restructuring) produced for every case of tests/golden/cases.py: metrics.json, checkpoint.safetensors (weights,
momentum buffers, mask, loop state), final_mask.safetensors of pruning during training, the returned metrics and
the trained weights, and of its batch streams. The current trainer must give the same bytes. The cases cover
what the presets use: dense and masked training, momentum / Nesterov / weight decay / label smoothing, step,
cosine and constant schedules, crop + flip augmentation with a partial last batch, BatchNorm, masks over biases
(SPP's SNIP), FGGP / GMP pruning during training (dense and ERK starts, pre- and post-step magnitudes), SPP's step
budget with evaluation every N steps across epoch boundaries and a validation split, resumption after an
interruption (the checkpoint written at the interruption is the old loop's, byte for byte, so resuming covers
resuming from a checkpoint the old loop wrote), and a diverging run.
"""
from __future__ import annotations

import pytest

from golden import cases
from golden.cases import TRAIN_CASES, batch_digests, file_digest, run_case, run_digests
from prunebench.library.data.batches import epoch_batches, epoch_order, eval_batches, train_batches
from prunebench.library.train import train


@pytest.fixture(scope="module")
def golden():
    return cases.golden("training.json")


@pytest.mark.parametrize("case", sorted(TRAIN_CASES))
def test_same_bytes_as_the_old_loop(tmp_path, golden, case):
    want = golden["runs"][case]
    assert cases.same_case(want["case"], TRAIN_CASES[case]), f"{case} is not the case recorded: record the hashes again"
    m, model = run_case(train, case, tmp_path)
    assert run_digests(tmp_path, m, model) == want["sha256"]
    if "during" in TRAIN_CASES[case]:
        assert (tmp_path / "final_mask.safetensors").exists()


@pytest.mark.parametrize("case, stop", cases.RESUMES)
def test_resumed_runs_end_in_the_old_loops_bytes(tmp_path, golden, case, stop):
    """Interrupted, the trainer leaves the old loop's checkpoint there, byte for byte (so resuming from one the
    old loop wrote is this resume); resumed, it ends in the bytes of the old loop's uninterrupted run."""
    cut = run_case(train, case, tmp_path, **stop)[0]
    assert set(cut) == {"interrupted_at_epoch"} or set(cut) == {"interrupted_at_step"}
    assert run_digests(tmp_path, cut) == golden["interrupted"][cases.resume_id(case, stop)]
    m, model = run_case(train, case, tmp_path)
    assert run_digests(tmp_path, m, model) == golden["runs"][case]["sha256"]


def test_a_diverging_run_is_recorded_alike(tmp_path, golden):
    m, _ = cases.diverging_run(train, tmp_path)
    assert m["diverged"]["epoch"] == golden["diverging"]["epoch"] == 1
    assert file_digest(tmp_path / "metrics.json") == golden["diverging"]["metrics.json"]


@pytest.mark.parametrize("dataset, n, batch, drop_last", cases.FEEDS)
def test_epoch_feed_gives_the_old_batches(golden, dataset, n, batch, drop_last):
    """The whole-epoch draws and chunked gathering give the old per-batch stream's values, from any starting
    batch and with any chunk size (a chunk of one batch, a few, the whole epoch)."""
    data = cases.feed_data(dataset, n)
    for epoch in cases.FEED_EPOCHS:
        old = golden["train_batches"][cases.feed_id(dataset, n, batch, drop_last, epoch)]
        seed = cases.FEED_SEED
        assert batch_digests(train_batches(data, batch, epoch=epoch, seed=seed, drop_last=drop_last)) == old
        order = epoch_order(data, batch, epoch, seed, drop_last=drop_last)
        for start in (0, 1, 2):
            for chunk in (1, 3 * batch * 3 * 32 * 32 * 4, 1 << 30):
                assert batch_digests(epoch_batches(data, order, start=start, chunk_bytes=chunk)) == old[start:]
    limited = epoch_order(data, batch, 1, 7, limit=2)
    assert limited.batches == 2 and list(epoch_batches(data, limited))[1][0].shape[0] == batch


def test_eval_batches_from_the_normalised_copy_are_the_old_ones(golden):
    data = cases.eval_data()
    for cache in (False, True, False):  # without, making the copy, then reading the copy made
        new = list(eval_batches(data, cases.EVAL_SPLIT, cases.EVAL_BATCH, cache=cache))
        assert [b[0].shape[0] for b in new] == [10, 10, 10, 7]
        assert batch_digests(new) == golden["eval_batches"]

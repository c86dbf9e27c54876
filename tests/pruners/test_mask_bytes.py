"""Mask bytes stay what they were before the pruning-time work of issue 19 (the masks are pinned to the official
codes' behaviour, so a speed-up must not move a single bit).

tests/golden/masks.json holds the sha256 of every mask file the pruners of commit 7ba29fc saved for the cases of
tests/golden/cases.py (every at-init method, with its exact and official keep rules, global and layer-wise
scopes, the iterative methods at several step counts and schedules, SynFlow in float64 and float32, and the
sanity-check ablations, on a convolutional net with BatchNorm and an MLP); the current pruners must save the
same bytes. The during-training pruners (whose events share the selection code) are covered by
tests/test_train_equivalence.py.
"""
from __future__ import annotations

import pytest

from golden import cases


@pytest.fixture(scope="module")
def golden():
    return cases.golden("masks.json")["cases"]


@pytest.fixture(scope="module")
def nets():
    return cases.mask_nets()


@pytest.mark.parametrize("scope", cases.SCOPES)
@pytest.mark.parametrize("cid, case", list(zip(cases.MASK_IDS, cases.MASK_CASES)), ids=cases.MASK_IDS)
def test_mask_bytes_unchanged(tmp_path, golden, nets, cid, case, scope):
    want = golden[f"{cid}/{scope}"]
    assert cases.same_case(want["case"], case), f"{cid} is not the case recorded: record the hashes again"
    method, sparsity, options = case
    got = cases.mask_file_digests(nets, method, sparsity, options, scope, tmp_path)
    assert got == want["sha256"], f"{method} {options} ({scope}): the mask changed"

"""Issue 17 §8: the Python API (`prunebench.prune`, `scores`, `Mask`, `initialize`) answers bad input with one
line saying what is wrong (PrunebenchError), never a raw torch error from deep inside a scoring pass. And
SPP's "one epoch of batches" rule is the library's (`num_batches="epoch"`), not only the command line's."""
import copy

import pytest
import torch

from prunebench import Mask, build_model, initialize, prune
from prunebench.library.errors import PrunebenchError
from prunebench.library.pruners import scores


def model():
    return initialize(build_model("lenet300", "mnist"), "kaiming_normal", 0)


def batch(n=8, shape=(1, 28, 28), labels=None, dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    x = torch.randn((n, *shape), generator=g).to(dtype)
    y = torch.randint(0, 10, (n,), generator=g) if labels is None else labels
    return x, y


BAD_BATCHES = {
    "wrong input shape": ([batch(shape=(3, 32, 32))], "do not fit the model"),
    "label out of range": ([batch(labels=torch.full((8,), 10))], "batch label 10 is outside 0..9"),
    "negative label": ([batch(labels=torch.full((8,), -1))], "batch label -1 is outside 0..9"),
    "float labels": ([batch(labels=torch.zeros(8))], "batch targets are float32"),
    "length mismatch": ([batch(labels=torch.zeros(5, dtype=torch.long))], "batch targets of shape (5,) for 8 inputs"),
    "uint8 inputs": ([(torch.zeros(8, 1, 28, 28, dtype=torch.uint8), torch.zeros(8, dtype=torch.long))],
                     "batch inputs are uint8"),
    "float64 inputs, float32 model": ([batch(dtype=torch.float64)], "batch inputs are float64, the model's weights float32"),
    "not a pair": ([(torch.zeros(8, 784),)], "every batch must be a pair (inputs, targets)"),
    "not an iterable": (42, "batches must be an iterable"),
    "empty batch": ([batch(n=0)], "at least one example"),
}


@pytest.mark.parametrize("case", list(BAD_BATCHES))
@pytest.mark.parametrize("method", ["snip", "force", "grasp"])
def test_bad_batches_are_one_line_errors(case, method):
    batches, needle = BAD_BATCHES[case]
    m = model()
    before = copy.deepcopy(m.state_dict())
    with pytest.raises(PrunebenchError) as e:
        prune(m, method, 0.9, batches, **({"steps": 2} if method == "force" else {}))
    assert needle in str(e.value) and "\n" not in str(e.value), str(e.value)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())  # the model is never modified


def test_bad_batches_from_an_iterator_and_for_scores():
    with pytest.raises(PrunebenchError, match="batch label 10"):
        prune(model(), "snip", 0.9, iter([batch(labels=torch.full((8,), 10))]))
    with pytest.raises(PrunebenchError, match="do not fit the model"):
        scores(model(), "snip", [batch(shape=(3, 32, 32))])


def test_integer_labels_of_any_width_are_accepted():
    x, y = batch()
    a = prune(model(), "snip", 0.9, [(x, y)])
    b = prune(model(), "snip", 0.9, [(x, y.to(torch.int32))])
    assert a == b


@pytest.mark.parametrize("bad, needle", [
    (None, "model must be an nn.Module, got NoneType"),
    ("lenet300", "model must be an nn.Module, got str"),
    (lambda: model().half(), "parameters are float16"),
    (lambda: model().bfloat16(), "parameters are bfloat16"),
    (lambda: model().to("meta"), "meta device"),
])
def test_bad_models_are_one_line_errors(bad, needle):
    m = bad() if callable(bad) else bad
    for method, batches in (("magnitude", None), ("snip", [batch()])):
        with pytest.raises(PrunebenchError, match=needle.replace("(", r"\(").replace(")", r"\)")):
            prune(m, method, 0.9, batches)


def test_seed_and_mask_and_initialize_errors(tmp_path):
    with pytest.raises(PrunebenchError, match="invalid seed"):
        prune(model(), "random", 0.9, seed=2**70)
    with pytest.raises(PrunebenchError, match="invalid seed"):
        prune(model(), "random", 0.9, seed=-1)
    mask = prune(model(), "magnitude", 0.9)
    with pytest.raises(PrunebenchError, match="a mask applies to an nn.Module, got NoneType"):
        mask.apply(None)
    with pytest.raises(PrunebenchError, match="initialize needs an nn.Module"):
        initialize(None)
    with pytest.raises(PrunebenchError, match="meta device"):
        initialize(build_model("lenet300", "mnist").to("meta"))
    with pytest.raises(PrunebenchError, match="is a folder, not a file"):
        Mask.load(tmp_path)
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    with pytest.raises(PrunebenchError, match="cannot read mask file .*symbolic links"):
        Mask.load(tmp_path / "loop")


def test_one_epoch_of_batches_is_the_librarys_rule():
    """num_batches="epoch" reads a sized `batches` once, in order, and averages over all of them: the mask of
    SNIP with num_batches equal to their number; the count is recorded in the mask's options."""
    bs = [batch(n=4 + i) for i in range(3)]
    m = prune(model(), "snip", 0.9, bs, num_batches="epoch")
    assert m.metadata["options"]["num_batches"] == 3
    assert m == prune(model(), "snip", 0.9, bs, num_batches=3)
    assert m != prune(model(), "snip", 0.9, bs)  # the default: one batch
    with pytest.raises(PrunebenchError, match="needs batches with a length"):
        prune(model(), "snip", 0.9, iter(bs), num_batches="epoch")
    with pytest.raises(PrunebenchError, match="has no option num_batches"):
        prune(model(), "magnitude", 0.9, bs, num_batches="epoch")

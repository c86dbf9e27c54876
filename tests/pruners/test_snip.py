"""SNIP against hand computations (docs/methods.md A.1)."""
import math

import pytest
import torch
import torch.nn as nn

from prunebench.library.errors import PrunebenchError
from prunebench.library.models import prunable_parameters
from prunebench.library.pruners import prune, scores
from prunebench.library.pruners.topk import keep_count
from toys import X, Y, close, data, small, toy


def test_snip_hand_computed_cross_entropy():
    # p = softmax([7, 5]); dL/dz = p - onehot(0) = [-tau, tau] with tau = p1 = 1 / (1 + e^2).
    # dL/dW2 = dz h^T = [[-4tau, -1.5tau], [4tau, 1.5tau]]    -> |W2 * g| = [[4tau, 3tau], [8tau, 3tau]]
    # dL/dh  = W2^T dz = [-tau + 2tau, -2tau - 2tau] = [tau, -4tau]  (ReLU active on both units)
    # dL/dW1 = dh x^T  = [[2tau, tau], [-8tau, -4tau]]          -> |W1 * g| = [[2tau, 2tau], [8tau, 2tau]]
    tau = 1.0 / (1.0 + math.exp(2.0))
    s = scores(toy(), "snip", [(X, Y)])
    close(s, {"0.weight": [[2 * tau, 2 * tau], [8 * tau, 2 * tau]],
              "2.weight": [[4 * tau, 3 * tau], [8 * tau, 3 * tau]]})


def test_snip_hand_computed_neg_logit_and_uniform_labels():
    # neg_logit: L = -z_0, dL/dz = [-1, 0]
    #   dL/dW2 = [[-4, -1.5], [0, 0]] -> [[4, 3], [0, 0]];  dL/dh = [-1, -2] -> dL/dW1 = [[-2, -1], [-4, -2]]
    #   |W1 * g| = [[2, 2], [4, 1]]
    s = scores(toy(), "snip", [(X, Y)], loss="neg_logit")
    close(s, {"0.weight": [[2, 2], [4, 1]], "2.weight": [[4, 3], [0, 0]]})
    # uniform labels (SPP A.7): L = -mean_c log p_c, dL/dz = p - 1/2 = [u, -u] with u = 1/2 - tau:
    # the true-label pattern with tau -> u (dz is again proportional to [-1, 1], with the opposite sign).
    u = 0.5 - 1.0 / (1.0 + math.exp(2.0))
    s = scores(toy(), "snip", [(X, Y)], labels="uniform")
    close(s, {"0.weight": [[2 * u, 2 * u], [8 * u, 2 * u]], "2.weight": [[4 * u, 3 * u], [8 * u, 3 * u]]})


def test_snip_averages_batches():
    # Two batches: the gradient is averaged, so the score is |theta * (g_a + g_b) / 2|.
    xb = torch.tensor([[1.0, 3.0]])
    a = scores(toy(), "snip", [(X, Y)], loss="neg_logit")
    b = scores(toy(), "snip", [(xb, Y)], loss="neg_logit")
    ab = scores(toy(), "snip", [(X, Y), (xb, Y)], num_batches=2, loss="neg_logit")
    for n in ab:  # every gradient has the same sign in both batches here, so |mean| = mean of |.|
        torch.testing.assert_close(ab[n], (a[n] + b[n]) / 2)


def test_snip_prune_bias_ranks_biases_too():
    net = small()
    with torch.no_grad():
        net.fc.bias.copy_(torch.tensor([5.0, -5.0, 0.0]))
    b = data()
    mask = prune(net, "snip", 0.5, b, prune_bias=True)
    assert list(mask)[-2:] == ["conv2.bias", "fc.bias"]
    n = sum(p.numel() for p in prunable_parameters(net).values()) + 6 + 3
    assert mask.total == n and mask.kept == keep_count(n, 0.5) and mask.metadata["biases_in_mask"]
    s = scores(net, "snip", b, prune_bias=True)
    assert s["fc.bias"][2] == 0 and s["fc.bias"][0] > 0  # |b * g|: the zero bias scores 0
    assert not prune(net, "snip", 0.5, b).metadata["biases_in_mask"]


def test_snip_reinit_scores_a_redrawn_copy():
    net = small()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    b = data()
    a = scores(net, "snip", b, reinit="xavier_normal", seed=3)
    assert all(torch.equal(a[k], v) for k, v in scores(net, "snip", b, reinit="xavier_normal", seed=3).items())
    assert not torch.equal(a["fc.weight"], scores(net, "snip", b, reinit="xavier_normal", seed=4)["fc.weight"])
    assert not torch.equal(a["fc.weight"], scores(net, "snip", b)["fc.weight"])
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    with pytest.raises(PrunebenchError, match="invalid option reinit='default'"):
        prune(net, "snip", 0.5, b, reinit="default")


def test_spp_epoch_sensitivity_is_abs_of_the_summed_gradient_with_biases():
    """SPP's connection sensitivity: |sum over the epoch's batches of dL/dc| for weights AND biases
    (docs/methods.md A.7) — not the sum of per-batch |dL/dc|. Two batches whose gradients of one weight
    cancel: that weight's score is 0 under SPP, positive under sum |g|."""
    net = nn.Sequential(nn.Linear(1, 1), nn.Linear(1, 2))
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[0].bias.fill_(0.5)
        net[1].weight.copy_(torch.tensor([[1.0], [-1.0]]))
        net[1].bias.zero_()
    b1 = (torch.tensor([[1.0]]), torch.tensor([0]))
    b2 = (torch.tensor([[-1.0]]), torch.tensor([0]))
    got = scores(net, "snip", [b1, b2], num_batches=2, prune_bias=True, loss="neg_logit")
    # neg_logit, target 0: L = -(w1 (w0 x + b0) + c1); dL/dw0 = -w1 x, dL/db0 = -w1, dL/dw1 = -(w0 x + b0)
    # batch 1 (x = 1):  g_w0 = -1, g_b0 = -1, g_w1 = [-1.5, 0];  batch 2 (x = -1): g_w0 = +1, g_b0 = -1, g_w1 = [0.5, 0]
    # mean g: w0 0, b0 -1, w1 [-0.5, 0]  ->  |theta * mean g|: w0 0, b0 0.5, w1 [0.5, 0]
    close(got, {"0.weight": [[0.0]], "0.bias": [0.5], "1.weight": [[0.5], [0.0]], "1.bias": [0.0, 0.0]})

"""Toy networks and batches shared by the pruner tests (hand-computable values)."""
import torch
import torch.nn as nn

FEW = {"iter_snip": {"steps": 2}, "force": {"steps": 2}, "synflow": {"iterations": 2},
       "prospr": {"inner_steps": 1}}


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.conv2(x))
        return self.fc(x.mean((2, 3)))


def small():
    torch.manual_seed(0)
    return SmallCNN()


def data(n=2, bs=6, shape=(1, 6, 6), classes=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(bs, *shape, generator=g), torch.randint(0, classes, (bs,), generator=g))
            for _ in range(n)]


def toy(act=nn.ReLU):
    net = nn.Sequential(nn.Linear(2, 2, bias=False), act(), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 2.0], [1.0, -0.5]]))
        net[2].weight.copy_(torch.tensor([[1.0, 2.0], [2.0, -2.0]]))
    return net


X = torch.tensor([[2.0, 1.0]])

Y = torch.tensor([0])


def close(scores, expected):
    for name, value in expected.items():
        torch.testing.assert_close(scores[name].double(), torch.tensor(value, dtype=torch.float64),
                                   rtol=1e-6, atol=1e-7)

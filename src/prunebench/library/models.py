"""Model zoo: the exact variants of docs/methods.md B.1.

Every model is built from nn.Conv2d / nn.Linear (prunable weights), BatchNorm, activations, pooling
and residual adds, so that every pruner works on it through `prunable_parameters`.

| name            | definition (docs/methods.md B.1)                                                     |
|-----------------|----------------------------------------------------------------------------------|
| lenet300        | LeNet-300-100: 784-300-100-C, ReLU                                               |
| lenet5          | LeNet-5-Caffe (SNIP): conv5x5(20) pool conv5x5(50) pool fc500 fc C               |
| mlp-D-ACT       | MLP of D linear layers of width 100 (SPP, A.7), ACT in linear/tanh/relu          |
| conv4           | small 4-conv CIFAR/MNIST net for the quick preset (not from a paper)             |
| vgg16, vgg19    | CIFAR VGG (FORCE/GraSP/ProsPr): 3x3 convs, BN, no conv bias, global avg-pool, one Linear(512, C) |
| vgg19_bn_bias   | FGGP's vgg19_bn: same topology, conv with bias                                   |
| resnet20/32/56  | CIFAR ResNet, widths 16/32/64, option-A (zero-pad) shortcuts                     |
| resnet32_grasp  | GraSP's ResNet-32: widths 32/64/128, 1x1 conv + BN shortcut when downsampling    |
| resnet18/50     | ResNet-18/50 with a 3x3 stride-1 stem and no max-pool, 1x1 conv+BN shortcuts     |
"""
from __future__ import annotations

import re

import torch
import torch.nn as nn
import torch.nn.functional as F

from prunebench.library.errors import PrunebenchError
from prunebench.library.datasets import dataset_spec

# ---------------------------------------------------------------------------------------------------
# Building blocks


class GlobalAvgPool(nn.Module):
    """Mean over H and W (as AdaptiveAvgPool2d(1)), but with a deterministic CUDA backward: PyTorch's
    adaptive_avg_pool2d backward has no deterministic CUDA kernel and raises under deterministic mode."""

    def forward(self, x):
        return x.mean(dim=(2, 3), keepdim=True)


# ---------------------------------------------------------------------------------------------------
# MLPs and LeNets


class MLP(nn.Module):
    def __init__(self, in_features, num_classes, widths, activation="relu", bias=True):
        super().__init__()
        acts = {"relu": nn.ReLU, "tanh": nn.Tanh, "linear": nn.Identity}
        if activation not in acts:
            raise PrunebenchError(f"unknown activation {activation!r}; choose one of: linear, relu, tanh")
        layers, prev = [], in_features
        for w in widths:
            layers += [nn.Linear(prev, w, bias=bias), acts[activation]()]
            prev = w
        layers.append(nn.Linear(prev, num_classes, bias=bias))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(torch.flatten(x, 1))


class LeNet5(nn.Module):
    """LeNet-5-Caffe as used by SNIP on MNIST: 430,500 prunable weights for C=10."""

    def __init__(self, in_ch, size, num_classes):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_ch, 20, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(20, 50, 5), nn.ReLU(), nn.MaxPool2d(2),
        )
        s = ((size - 4) // 2 - 4) // 2
        self.classifier = nn.Sequential(nn.Linear(50 * s * s, 500), nn.ReLU(), nn.Linear(500, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


class Conv4(nn.Module):
    """A small conv net (32-32-64-64, BN) for quick CPU runs; not a paper model."""

    def __init__(self, in_ch, size, num_classes):
        super().__init__()

        def block(i, o):
            return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU()]

        self.features = nn.Sequential(*block(in_ch, 32), *block(32, 32), nn.MaxPool2d(2),
                                      *block(32, 64), *block(64, 64), nn.MaxPool2d(2),
                                      GlobalAvgPool())
        self.classifier = nn.Linear(64, num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


# ---------------------------------------------------------------------------------------------------
# VGG

VGG_CFG = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512],
}


class VGG(nn.Module):
    """CIFAR VGG: 3x3 convs (+BN, +ReLU), 4 max-pools, global average pool, one Linear(512, C).

    On 32x32 inputs the global average pool equals FORCE/GraSP's AvgPool2d(2) (the map is 2x2);
    it also makes the model valid on 64x64 Tiny-ImageNet.
    """

    def __init__(self, cfg, in_ch, num_classes, batch_norm=True, conv_bias=False):
        super().__init__()
        layers, c = [], in_ch
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            layers.append(nn.Conv2d(c, v, 3, padding=1, bias=conv_bias))
            if batch_norm:
                layers.append(nn.BatchNorm2d(v))
            layers.append(nn.ReLU(inplace=True))
            c = v
        layers.append(GlobalAvgPool())
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


# ---------------------------------------------------------------------------------------------------
# ResNets


class ShortcutA(nn.Module):
    """Option-A shortcut: subsample spatially and zero-pad channels (no parameters)."""

    def __init__(self, planes_out, planes_in):
        super().__init__()
        self.pad = planes_out - planes_in

    def forward(self, x):
        x = x[:, :, ::2, ::2]
        return F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))


def shortcut_b(cin, cout, stride, expansion=1):
    return nn.Sequential(nn.Conv2d(cin, cout * expansion, 1, stride=stride, bias=False),
                         nn.BatchNorm2d(cout * expansion))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride=1, option="B"):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != planes:
            self.shortcut = ShortcutA(planes, cin) if option == "A" else shortcut_b(cin, planes, stride)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride=1, option="B"):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != planes * 4:
            self.shortcut = shortcut_b(cin, planes, stride, 4)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """Generic ResNet with a 3x3 stride-1 stem (CIFAR style), no max-pool, global average pool."""

    def __init__(self, block, blocks, widths, in_ch, num_classes, option="B"):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        stages, cin = [], widths[0]
        for i, (n, w) in enumerate(zip(blocks, widths)):
            layers = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                layers.append(block(cin, w, stride, option))
                cin = w * block.expansion
            stages.append(nn.Sequential(*layers))
        self.layers = nn.Sequential(*stages)
        self.pool = GlobalAvgPool()
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.pool(self.layers(out))
        return self.fc(torch.flatten(out, 1))


# ---------------------------------------------------------------------------------------------------
# Registry


def _cifar_resnet(depth, width=16, option="A"):
    n = (depth - 2) // 6
    return lambda c, s, k: ResNet(BasicBlock, [n] * 3, [width, 2 * width, 4 * width], c, k, option)


MODELS = {
    "lenet300": lambda c, s, k: MLP(c * s * s, k, [300, 100], "relu"),
    "lenet5": lambda c, s, k: LeNet5(c, s, k),
    "conv4": lambda c, s, k: Conv4(c, s, k),
    "vgg16": lambda c, s, k: VGG(VGG_CFG["vgg16"], c, k),
    "vgg19": lambda c, s, k: VGG(VGG_CFG["vgg19"], c, k),
    "vgg19_bn_bias": lambda c, s, k: VGG(VGG_CFG["vgg19"], c, k, conv_bias=True),
    "resnet20": _cifar_resnet(20),
    "resnet32": _cifar_resnet(32),
    "resnet56": _cifar_resnet(56),
    "resnet32_grasp": _cifar_resnet(32, width=32, option="B"),
    "resnet18": lambda c, s, k: ResNet(BasicBlock, [2, 2, 2, 2], [64, 128, 256, 512], c, k),
    "resnet50": lambda c, s, k: ResNet(Bottleneck, [3, 4, 6, 3], [64, 128, 256, 512], c, k),
}
_MLP_RE = re.compile(r"^mlp-(\d+)-(linear|tanh|relu)$")


def model_names():
    return sorted(MODELS) + ["mlp-<depth>-<linear|tanh|relu>"]


def build_model(name: str, dataset: str = "cifar10", num_classes: int | None = None) -> nn.Module:
    """Build model `name` for `dataset`'s input shape. Weights use PyTorch defaults: call `initialize`."""
    spec = dataset_spec(dataset)
    k = num_classes or spec.num_classes
    m = _MLP_RE.match(name)
    if m:
        depth = int(m.group(1))
        if depth < 1:
            raise PrunebenchError(f"invalid model {name!r}: depth must be >= 1")
        return MLP(spec.channels * spec.size * spec.size, k, [100] * (depth - 1), m.group(2))
    if name not in MODELS:
        raise PrunebenchError(f"unknown model {name!r}; choose one of: {', '.join(model_names())}")
    return MODELS[name](spec.channels, spec.size, k)


def prunable_modules(model: nn.Module) -> dict:
    """Conv2d and Linear modules by qualified name, in registration order."""
    return {n: m for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


def prunable_parameters(model: nn.Module) -> dict:
    """Parameter name -> weight tensor of every Conv2d and Linear (the default prunable set, A.0)."""
    return {f"{n}.weight" if n else "weight": m.weight for n, m in prunable_modules(model).items()}


def count_prunable(model: nn.Module) -> int:
    return sum(p.numel() for p in prunable_parameters(model).values())

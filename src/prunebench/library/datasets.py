"""Static facts about the supported data sets (shape, classes, normalisation)."""
from dataclasses import dataclass

from prunebench.library.errors import choose


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    channels: int
    size: int
    num_classes: int
    mean: tuple
    std: tuple
    augment: bool  # random crop (pad 4) + horizontal flip during training
    display: str   # the name in labels and source notes


DATASETS = {
    "mnist": DatasetSpec("mnist", 1, 28, 10, (0.1307,), (0.3081,), False, "MNIST"),
    "cifar10": DatasetSpec("cifar10", 3, 32, 10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), True, "CIFAR-10"),
    "cifar100": DatasetSpec("cifar100", 3, 32, 100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), True, "CIFAR-100"),
    "tiny-imagenet": DatasetSpec("tiny-imagenet", 3, 64, 200, (0.4802, 0.4481, 0.3975), (0.2770, 0.2691, 0.2821), True, "Tiny-ImageNet"),
}


def dataset_spec(name: str) -> DatasetSpec:
    return DATASETS[choose("dataset", name, DATASETS)]

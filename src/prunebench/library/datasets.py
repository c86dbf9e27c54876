"""The data-set table: every supported data set and its static facts, in one place (imports no torch).

One row per data set: shape, classes, normalisation, augmentation, display name, the layout of its official
distribution, the official files with their mirrors and published MD5s, and the names searched for it in a
local source folder (`PRUNEBENCH_DATA_SOURCES`). Everything that needs a list of data sets reads this table:
the data package, the preset schema and validation, the Snakemake wildcards and the figures' labels.
"""
from dataclasses import dataclass

from prunebench.library.errors import choose

# The layouts of the official distributions (prunebench.library.data.formats reads each).
IDX, CIFAR_PYTHON, TINY_IMAGENET = "idx", "cifar-python", "tiny-imagenet"


@dataclass(frozen=True)
class OfficialFile:
    """One file of an official distribution, with its mirrors (tried in order) and published MD5s."""

    name: str
    urls: tuple
    md5: str
    content_md5: str | None = None  # MD5 of the decompressed content, for .gz files (MNIST)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    channels: int
    size: int
    num_classes: int
    mean: tuple
    std: tuple
    augment: bool               # random crop (pad 4) + horizontal flip during training
    display: str                # the name in labels and source notes
    layout: str = IDX           # the official distribution's layout: idx | cifar-python | tiny-imagenet
    official_files: tuple = ()  # OfficialFile, ...
    source_names: tuple = ()    # names searched in each local source folder, lossless official files first
    sizes: tuple = (0, 0)       # examples in the official train and test splits
    prepare_s: float = 60.0     # about how long preparing its cache takes on a 2-core CPU (`prunebench plan`)


_MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")


def _mnist_file(name, md5, content_md5):
    return OfficialFile(name, tuple(m + name for m in _MNIST_MIRRORS), md5, content_md5)


def _copies(stem: str) -> tuple:
    """The names a local copy of a data set may carry: a folder or an archive named after it, and the JPEG copy."""
    return (stem, f"{stem}.tar", f"{stem}.tar.gz", f"{stem}.tar.xz", f"{stem}.zip")


_CIFAR = "https://www.cs.toronto.edu/~kriz/"
TABLE = (
    DatasetSpec("mnist", 1, 28, 10, (0.1307,), (0.3081,), False, "MNIST", IDX,
                (_mnist_file("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                             "6bbc9ace898e44ae57da46a324031adb"),
                 _mnist_file("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432",
                             "a25bea736e30d166cdddb491f175f624"),
                 _mnist_file("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3",
                             "2646ac647ad5339dbf082846283269ea"),
                 _mnist_file("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c",
                             "27ae3e4e09519cfbb04c329615203637")),
                ("mnist", "MNIST/raw", "."),
                (60000, 10000), 5.0),
    DatasetSpec("cifar10", 3, 32, 10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), True, "CIFAR-10",
                CIFAR_PYTHON,
                (OfficialFile("cifar-10-python.tar.gz", (_CIFAR + "cifar-10-python.tar.gz",),
                              "c58f30108f718f92721af3b95e74349a"),),
                ("cifar-10-python.tar.gz", "cifar-10-batches-py", *_copies("cifar10"), "cifar10-jpeg.tar.xz",
                 "cifar10-jpeg"),
                (50000, 10000), 60.0),
    DatasetSpec("cifar100", 3, 32, 100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), True, "CIFAR-100",
                CIFAR_PYTHON,
                (OfficialFile("cifar-100-python.tar.gz", (_CIFAR + "cifar-100-python.tar.gz",),
                              "eb9058c3a382ffc7106e4002c42a8d85"),),
                ("cifar-100-python.tar.gz", "cifar-100-python", *_copies("cifar100"), "cifar100-jpeg.tar.xz",
                 "cifar100-jpeg"),
                (50000, 10000), 60.0),
    DatasetSpec("tiny-imagenet", 3, 64, 200, (0.4802, 0.4481, 0.3975), (0.2770, 0.2691, 0.2821), True,
                "Tiny-ImageNet", TINY_IMAGENET,
                (OfficialFile("tiny-imagenet-200.zip", ("http://cs231n.stanford.edu/tiny-imagenet-200.zip",),
                              "90528d7ca1a48142e341f4ef8d21d0de"),),
                ("tiny-imagenet-200.zip", "tiny-imagenet-200", *_copies("tiny-imagenet")),
                (100000, 10000), 300.0),
)
DATASETS = {d.name: d for d in TABLE}


def dataset_spec(name: str) -> DatasetSpec:
    return DATASETS[choose("dataset", name, DATASETS)]

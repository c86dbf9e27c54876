"""prunebench.library.data.archives: folders, tar archives (any compression) and zip archives as sorted file trees."""
from __future__ import annotations

import hashlib
import zipfile

import pytest

from prunebench.library import data as D
from prunebench.library.data.archives import DirTree, TarTree, ZipTree, open_tree
from prunebench.library.errors import PrunebenchError
from synthetic import CIFAR_CLASSES, assert_cache_equals, files_under, image_tree, make_tar


@pytest.fixture(scope="module")
def png_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("trees") / "cifar10"
    shuffled = CIFAR_CLASSES[5:] + CIFAR_CLASSES[:5]
    return root, image_tree(root, classes=shuffled, n_train=2, n_test=1)


@pytest.mark.parametrize("mode,suffix", [("w", ".tar"), ("w:gz", ".tar.gz"), ("w:xz", ".tar.xz"), ("zip", ".zip")])
def test_image_archives(png_tree, tmp_path, mode, suffix):
    root, expected = png_tree
    archive = tmp_path / f"copy{suffix}"
    if mode == "zip":
        with zipfile.ZipFile(archive, "w") as zf:
            for f in files_under(root):
                zf.write(f, f"nested/cifar10/{f.relative_to(root).as_posix()}")
    else:
        make_tar(root, archive, "nested/cifar10", mode)
    path = D.prepare("cifar10", tmp_path / "cache", source=archive, progress=False)
    d = assert_cache_equals(path, expected)
    assert d.metadata["source"]["name"] == archive.name
    assert d.metadata["source"]["kind"] == ("zip" if mode == "zip" else "tar")
    assert d.metadata["source"]["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert d.metadata["source"]["sha256_of"] == "file"
    # the same images in a folder give the same content key
    folder = D.load("cifar10", D.prepare("cifar10", tmp_path / "c2", source=root, progress=False))
    assert folder.metadata["content_sha256"] == d.metadata["content_sha256"]


def test_trees_list_sorted_visible_files(tmp_path):
    src = tmp_path / "src"
    for name in ("b/2.txt", "b/10.txt", "a.txt", ".hidden/x.txt", "b/.dot.txt"):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(name.encode())
    make_tar(src, tmp_path / "t.tar.gz", ".", "w:gz")
    with zipfile.ZipFile(tmp_path / "z.zip", "w") as zf:
        for f in files_under(src):
            zf.write(f, f.relative_to(src).as_posix())
    for path, cls in ((src, DirTree), (tmp_path / "t.tar.gz", TarTree), (tmp_path / "z.zip", ZipTree)):
        tree = open_tree(path)
        try:
            assert isinstance(tree, cls) and tree.names == ["a.txt", "b/10.txt", "b/2.txt"], path
            assert tree.read("b/2.txt") == b"b/2.txt"
        finally:
            tree.close()
    # a folder's fingerprint covers exactly the files read (what the data came from)
    tree = open_tree(src)
    tree.read("a.txt")
    want = hashlib.sha256(f"{hashlib.sha256(b'a.txt').hexdigest()}  a.txt\n".encode()).hexdigest()
    assert tree.fingerprint() == (want, "manifest")


def test_corrupt_and_unsupported_archives(tmp_path):
    (tmp_path / "junk.tar.xz").write_bytes(b"not an archive at all")
    with pytest.raises(PrunebenchError, match=r"corrupt archive .*junk\.tar\.xz"):
        D.prepare("cifar10", tmp_path / "cache", source=tmp_path / "junk.tar.xz")
    (tmp_path / "junk.zip").write_bytes(b"PK not a zip")
    with pytest.raises(PrunebenchError, match=r"corrupt archive .*junk\.zip"):
        D.prepare("cifar10", tmp_path / "cache", source=tmp_path / "junk.zip")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(PrunebenchError, match=r"unsupported data source .*notes\.txt"):
        D.prepare("cifar10", tmp_path / "cache", source=tmp_path / "notes.txt")
    assert files_under(tmp_path / "cache") == []

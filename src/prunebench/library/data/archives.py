"""File trees: a folder, a tar archive or a zip archive, each seen as sorted relative POSIX paths.

Archives (``.tar``, ``.tar.gz``/``.tgz``, ``.tar.xz``, ``.tar.bz2``, ``.zip``) are read in memory, never
extracted to disk. Hidden files and folders (a path part starting with ".") are left out everywhere.
Imported only when a source is read (`prunebench.library.data.prepare`), so `import prunebench.library.data` stays light.
"""
from __future__ import annotations

import hashlib
import lzma
import os
import tarfile
import zipfile
import zlib
from pathlib import Path

from prunebench.library.errors import PrunebenchError
from prunebench.library.artifacts import sha256_file

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tbz2", ".zip")


def _hidden(name: str) -> bool:
    return any(part.startswith(".") and part not in (".", "..") for part in name.split("/"))


class Tree:
    """The regular files of a source, by sorted relative POSIX path."""

    names: list  # sorted relative POSIX paths of the regular files
    label: str  # what to show in messages

    def read(self, name: str) -> bytes:
        raise NotImplementedError

    def show(self, name: str) -> str:
        """How to name one member in a message: folder/member or archive:member."""
        return f"{self.label}:{name}"

    def fingerprint(self) -> tuple:
        """(sha256, of) of the source: of='file' for an archive, 'manifest' for a folder (files read)."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class DirTree(Tree):
    """A folder; `fingerprint` hashes the list of (sha256, path) of the files read so far."""

    def __init__(self, root: Path):
        self.root = root
        self.label = str(root)
        names = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel = Path(dirpath).relative_to(root).as_posix()
            for fn in filenames:
                if not fn.startswith("."):
                    names.append(fn if rel == "." else f"{rel}/{fn}")
        self.names = sorted(names)
        self._hashes: dict = {}

    def show(self, name: str) -> str:
        return str(self.root / name)

    def read(self, name: str) -> bytes:
        data = (self.root / name).read_bytes()
        self._hashes[name] = hashlib.sha256(data).hexdigest()
        return data

    def fingerprint(self):
        manifest = "".join(f"{self._hashes[n]}  {n}\n" for n in sorted(self._hashes))
        return hashlib.sha256(manifest.encode()).hexdigest(), "manifest"


class TarTree(Tree):
    """A tar archive (any compression), streamed once; the regular files are held in memory."""

    def __init__(self, path: Path):
        self.path = path
        self.label = str(path)
        files = {}
        try:
            with tarfile.open(path, "r|*") as tf:
                for m in tf:
                    name = m.name
                    while name.startswith("./"):
                        name = name[2:]
                    if m.isfile() and not _hidden(name):
                        files[name] = tf.extractfile(m).read()
        except (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError) as e:
            raise PrunebenchError(f"corrupt archive {str(path)!r}: {e}") from None
        self._files = files
        self.names = sorted(files)

    def read(self, name):
        return self._files[name]

    def fingerprint(self):
        return sha256_file(self.path), "file"


class ZipTree(Tree):
    """A zip archive; members are decompressed when read."""

    def __init__(self, path: Path):
        self.path = path
        self.label = str(path)
        try:
            self._zip = zipfile.ZipFile(path)
            self.names = sorted(i.filename for i in self._zip.infolist()
                                if not i.is_dir() and not _hidden(i.filename))
        except (zipfile.BadZipFile, OSError) as e:
            raise PrunebenchError(f"corrupt archive {str(path)!r}: {e}") from None

    def close(self):
        self._zip.close()

    def read(self, name):
        try:
            return self._zip.read(name)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
            raise PrunebenchError(f"corrupt archive member {self.show(name)!r}: {e}") from None

    def fingerprint(self):
        return sha256_file(self.path), "file"


def is_archive(path: Path) -> bool:
    """Whether the name of `path` ends in one of `ARCHIVE_SUFFIXES` (case-insensitive)."""
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def open_tree(path: Path) -> Tree:
    """The tree of a folder, a zip archive or a tar archive (by suffix, else by content)."""
    if path.is_dir():
        return DirTree(path)
    if path.name.lower().endswith(".zip"):
        return ZipTree(path)
    if is_archive(path) or tarfile.is_tarfile(path):
        return TarTree(path)
    raise PrunebenchError(f"unsupported data source {str(path)!r}: expected a folder, a tar or a zip archive")

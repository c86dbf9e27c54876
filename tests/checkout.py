"""A copy of the checkout as git sees it (tracked and untracked-but-not-ignored files, symbolic links kept as
links: the package-data links src/prunebench/{pipeline/presets,report/reference,library/docs}), for tests that
build a wheel or run make in a tree of their own."""
import os
import shutil
import subprocess
from pathlib import Path

from conftest import REPO


def checkout_copy(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for f in filter(None, files):
        src, dst = REPO / f, dest / f
        if not (src.is_symlink() or src.is_file()):
            continue  # listed but deleted in the working tree
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), dst)
        else:
            shutil.copy2(src, dst)
    return dest

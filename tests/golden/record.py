"""Record the golden hashes in this folder by running the cases of `cases.py` on the code of an old commit.

    python tests/golden/record.py                       # git archive of commit 7ba29fc into a temporary folder
    python tests/golden/record.py --checkout DIR        # a checkout of it (git worktree add DIR 7ba29fc)

Run it from this checkout with the project's virtual environment (torch 2.14.1, the version CI pins); it runs
the cases in a child process whose PYTHONPATH is the old checkout's `src` (one thread, deterministic
algorithms, as tests/conftest.py sets) and writes masks.json, topk.json and training.json here. The hashes
were recorded so from commit 7ba29fc, the code before issue 19's pruning-time work and the trainer's
restructuring: the tests require today's code to give that code's bytes.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
COMMIT = "7ba29fc"
FILES = ("masks.json", "topk.json", "training.json")


def produced_by(commit: str) -> dict:
    import torch

    return {"commit": commit, "torch": torch.__version__, "device": "cpu",
            "note": "sha256 of the outputs of the code of this commit on the CPU with this torch (the version CI "
                    "pins); tests/golden/cases.py defines the cases and digests",
            "regenerate": f"python tests/golden/record.py  (or --checkout DIR, DIR a checkout of {commit[:7]})"}


def dumps(value, indent: str = "") -> str:
    """JSON with a value on one line where it fits in about 120 characters, else its items one a line."""
    flat = json.dumps(value)
    if len(indent) + len(flat) <= 120 or not isinstance(value, (dict, list)) or not value:
        return flat
    inner = indent + "  "
    if isinstance(value, dict):
        items, brackets = [f"{inner}{json.dumps(k)}: {dumps(v, inner)}" for k, v in value.items()], "{}"
    else:
        items, brackets = [inner + dumps(v, inner) for v in value], "[]"
    return brackets[0] + "\n" + ",\n".join(items) + "\n" + indent + brackets[1]


def child(commit: str, out: Path) -> None:
    """Run every case on the `prunebench` of PYTHONPATH and write the three files."""
    import torch

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    sys.path.insert(0, str(HERE.parent))
    from golden import cases
    from prunebench.library.train import train

    head = produced_by(commit)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "masks").mkdir()
        docs = {"masks.json": {"cases": cases.record_masks(tmp / "masks")},
                "topk.json": cases.record_topk(),
                "training.json": cases.record_training(train, tmp)}
    for name, doc in docs.items():
        (out / name).write_text(dumps({"produced_by": head, **doc}) + "\n")
        print(f"wrote {out / name}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkout", type=Path, help=f"a checkout of {COMMIT} (default: git archive of it)")
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--child", metavar="COMMIT", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.out)
        return 0
    with tempfile.TemporaryDirectory() as d:
        src = args.checkout
        if src is None:
            src = Path(d)
            arch = subprocess.run(["git", "-C", str(REPO), "archive", COMMIT, "src"], capture_output=True, check=True)
            subprocess.run(["tar", "-x", "-C", str(src)], input=arch.stdout, check=True)
            commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", f"{COMMIT}^{{commit}}"], capture_output=True,
                                    text=True, check=True).stdout.strip()
        else:
            commit = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True,
                                    check=True).stdout.strip()
            if not commit.startswith(COMMIT):
                print(f"warning: {src} is at {commit}, not {COMMIT}", file=sys.stderr)
        env = {**os.environ, "PYTHONPATH": str(Path(src).resolve() / "src")}
        code = ("import prunebench, sys; from pathlib import Path; "
                "sys.exit(0 if Path(prunebench.__file__).resolve().is_relative_to(Path(sys.argv[1]).resolve()) else 1)")
        if subprocess.run([sys.executable, "-c", code, str(src)], env=env, cwd=d).returncode:
            raise SystemExit(f"PYTHONPATH={env['PYTHONPATH']} does not import prunebench from {src}")
        return subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", commit, "--out",
                               str(args.out.resolve())], env=env, cwd=d).returncode


if __name__ == "__main__":
    sys.exit(main())

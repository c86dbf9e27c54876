"""Determinism, devices and run manifests (one seed per concern, pinned threads, deterministic algorithms)."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import numpy
import torch

from prunebench import __version__
from prunebench.library.errors import PrunebenchError


def setup_determinism(threads: int = 1, device: str = "cpu") -> None:
    """Pin the thread count and switch on deterministic algorithms (CUDA: cuBLAS workspace, no TF32)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.set_num_threads(int(threads))
    # CPU: strict. CUDA: deterministic kernels wherever PyTorch has one; an op without one (e.g. some loss
    # kernels in some versions) warns instead of aborting a 10-hour run, and the warning lands in the log.
    # The switch itself, without torch.use_deterministic_algorithms' import of torch._inductor (about 1 s of CPU
    # per process, for a compiler flag): `deterministic_compile()` sets that flag where torch.compile is used.
    torch._C._set_deterministic_algorithms(True, warn_only=str(device).startswith("cuda"))
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def deterministic_compile() -> None:
    """torch.compile's (inductor's) own determinism flag, set as torch.use_deterministic_algorithms sets it; called
    by the trainer before it compiles (importing the compiler is what `setup_determinism` avoids)."""
    import torch._inductor.config as inductor_config  # the compiler: seconds to import, only when compiling

    inductor_config.deterministic = torch.are_deterministic_algorithms_enabled()


def resolve_device(device: str = "auto") -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise PrunebenchError(f"device {device!r} requested but CUDA is not available")
    return device


def device_name(device: str) -> str:
    if str(device).startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu ({platform.machine()})"


def git_commit(repo: Path | None = None) -> str:
    repo = repo or Path(__file__).resolve().parents[3]
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        commit = out.stdout.strip() if out.returncode == 0 else "unknown"
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return commit + ("+dirty" if dirty and commit != "unknown" else "")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def versions() -> dict:
    out = {"python": sys.version.split()[0], "torch": torch.__version__, "numpy": numpy.__version__}
    try:  # the installed version, without importing torchvision (over a second per job)
        out["torchvision"] = version("torchvision")
    except Exception:  # torchvision is optional at run time
        out["torchvision"] = "unavailable"
    out["prunebench"] = __version__
    if torch.cuda.is_available():
        out["cuda"] = torch.version.cuda
        out["cudnn"] = torch.backends.cudnn.version()
    return out


def manifest(config: dict, seeds: dict, device: str, threads: int) -> dict:
    """Everything needed to say where a result came from. Not byte-compared (it holds host facts)."""
    return {"config": config, "seeds": seeds, "versions": versions(), "device": device_name(device),
            "threads": threads, "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "git_commit": git_commit(), "host": platform.node(), "platform": platform.platform()}

"""Where and with what a run was made: git SHA, package versions, device, numeric settings, wall time."""
from __future__ import annotations

import platform
import subprocess
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

from sslgeo_lib.data import data_source, load_dataset
from sslgeo_lib.store import code_hash

PACKAGES = ("torch", "torchvision", "numpy", "scikit-learn", "safetensors")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def package_version(pkg: str) -> str | None:
    try:
        return version(pkg)
    except PackageNotFoundError:
        return None


def git_state() -> tuple[str | None, bool | None]:
    repo = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                             timeout=10).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "sslgeo_lib"], cwd=repo,
                                    capture_output=True, text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None, None
    return sha, dirty


def device_name(device: torch.device) -> str:
    """The GPU's name for a CUDA device, else the CPU's model name."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()


def environment() -> dict:
    """The code (git commit, and whether the library has uncommitted changes), Python and package versions."""
    sha, dirty = git_state()
    return {"git_sha": sha, "git_dirty": dirty, "python": platform.python_version(),
            "packages": {p: package_version(p) for p in PACKAGES}}


def provenance(device: torch.device, dtype, channels_last: bool, threads: int, dataset: str = "cifar10") -> dict:
    """A JSON-able record of the code (git state and the training code's hash), packages, device, numeric settings
    and data (its absolute source path and content fingerprint) a run was made with."""

    return {**environment(), "code": code_hash(), "device": str(device), "device_name": device_name(device),
            "precision": "bf16" if dtype else "fp32",
            "channels_last": channels_last, "threads": threads,
            "data": {"dataset": dataset, "source": str(data_source(dataset)),
                     "fingerprint": load_dataset(dataset).fingerprint},
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}

"""Where and how a run was made, stored in every result JSON (experiments.py), and whether a
stored result still is what its row would compute now (`config_changes`).

git commit and whether the package differed from it, package versions, and the machine:
platform, cores, torch threads, load average at the start, and a measured matmul rate,
because the course's shared 2-core machines vary up to 4x in speed between hosts and over
time, so a wall time means little without the speed of the machine that took it.
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
import transformers

from .. import __version__


def _git(*args):
    try:
        r = subprocess.run(["git", *args], capture_output=True, text=True,
                           cwd=Path(__file__).resolve().parents[1], timeout=10)
        return r.stdout.strip() if r.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def git_commit():
    """`git rev-parse HEAD`, or None outside a git checkout."""
    return _git("rev-parse", "HEAD") or None


def git_dirty():
    """True when the package's tracked or untracked files differ from HEAD (None: no git)."""
    out = _git("status", "--porcelain", "--", ".")  # cwd is the package folder (minbert/)
    return None if out is None else bool(out)


def versions() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "minbert": __version__,
            "numpy": np.__version__}


def matmul_gflops(n: int = 512, repeats: int = 20) -> float:
    """float32 GFLOP/s of an n x n matmul on the CPU with torch's threads: the best of
    `repeats` (the best is the machine; the others include its neighbours)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return round(2 * n ** 3 / best / 1e9, 1)


def device_info(device="cpu") -> dict:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info = {"platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "cores_available": cores,
            "torch_threads": torch.get_num_threads(), "device": device,
            "matmul_gflops": matmul_gflops()}
    if hasattr(os, "getloadavg"):
        info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    if str(device).startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def plain(config) -> dict:
    """A dataclass config as its result JSON stores it (tuples as lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def config_changes(stored: dict, now, ignore=()) -> list:
    """["field: stored -> now", ...] where a result JSON's config differs from the config its
    row has now (a dataclass with `from_dict`, train.TrainConfig), less `ignore` (where it
    ran, not what it computed). A field the JSON predates counts as what runs did before it
    existed, a renamed one under its new name (TrainConfig.LEGACY, RENAMED)."""
    old, now = plain(type(now).from_dict(stored)), plain(now)
    return [f"{k}: {old.get(k)!r} -> {v!r}" for k, v in now.items()
            if k not in ignore and old.get(k) != v]

"""Resumable runs: the checkpoint written at every epoch end, and the random state in it.

The file holds the model, the optimizer, every random generator's state, the epoch, the
history so far and the config, as tensors and plain values: it loads with
`torch.load(weights_only=True)`, so resuming never unpickles code. It is written atomically
(minbert.files), so a run killed while saving leaves the previous epoch's checkpoint.
A resumed run restores torch's, Python's and numpy's generators, so it draws the same
dropout masks, shuffles and PCGrad orders as a run that was never interrupted.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch

from .files import write_bytes


def save_checkpoint(path, model, optimizer, epoch: int, history: list, config: dict,
                    rng: list | None = None):
    """rng: [get_rng_state()] of every rank (train.run under torchrun); None: this process's.
    Rank 0's is "rng"; with several ranks, all of them are "rng_ranks" too."""
    rng = rng or [get_rng_state()]
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "rng": rng[0], "epoch": epoch, "history": history, "config": config}
    if len(rng) > 1:
        state["rng_ranks"] = rng
    write_bytes(path, writer=lambda f: torch.save(state, f))


def resume_from(path, model, optimizer, config: dict, may_differ=(), device="cpu", rank=0):
    """Load a checkpoint into model and optimizer and restore the RNG -> (history, epoch).
    `config` must equal the checkpoint's, except for the fields in `may_differ` (e.g. the
    number of epochs: a finished run may be continued for more). `rank`: whose generators
    to restore, where the checkpoint holds every rank's (save_checkpoint)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: nothing to resume from")
    ck = torch.load(path, map_location=device, weights_only=True)
    plain = lambda d: {k: v for k, v in json.loads(json.dumps(d)).items()  # noqa: E731
                       if k not in may_differ}  # tuples vs lists: compare as JSON
    saved, now = plain(ck["config"]), plain(config)
    if saved != now:
        diff = {k: (saved.get(k), now.get(k)) for k in set(saved) | set(now)
                if saved.get(k) != now.get(k)}
        raise ValueError(f"{path}: config differs from the checkpoint's "
                         f"(field: (checkpoint, now)): {diff}")
    model.load_state_dict(ck["model"])
    optimizer.load_state_dict(ck["optimizer"])
    set_rng_state(ck["rng_ranks"][rank] if "rng_ranks" in ck else ck["rng"])
    return ck["history"], ck["epoch"]


# ------------------------------------------------------------------ random state
def seed_everything(seed: int):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def get_rng_state() -> dict:
    """Every generator a resumed run continues from, as tensors and lists, so that the state
    loads with torch.load(weights_only=True)."""
    version, state, gauss = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state()
    rng = {"torch": torch.get_rng_state(),
           "python": [version, list(state), gauss],
           "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                     "has_gauss": int(has_gauss), "cached": float(cached)}}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def set_rng_state(rng: dict):
    torch.set_rng_state(rng["torch"])
    version, state, gauss = rng["python"]
    random.setstate((version, tuple(state), gauss))
    n = rng["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached"]))
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])

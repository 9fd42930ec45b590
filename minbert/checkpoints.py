"""Resumable runs: the checkpoint written at every epoch end, and the random state in it.

`Checkpointer` is the trainer's callback (trainer.py) that writes OUT/checkpoint.pt and
OUT/history.json at every epoch end and `resume`s a run from them. The file holds the model,
the optimizer, every random generator's state, the epoch, the history so far and the config,
as tensors and plain values: it loads with
`torch.load(weights_only=True)`, so resuming never unpickles code. It is written atomically
(minbert.files), so a run killed while saving leaves the previous epoch's checkpoint.
A resumed run restores torch's, Python's and numpy's generators, so it draws the same
dropout masks, shuffles and PCGrad orders as a run that was never interrupted. A finished
run keeps its final weights without the optimizer's state (AdamW's two moments: two thirds
of the file), unless `keep_optimizer`: only a run that keeps it can be trained further.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch

from .files import write_bytes, write_json
from .trainer import State

CHECKPOINT = "checkpoint.pt"


class Checkpointer:
    """Writes OUT/checkpoint.pt and OUT/history.json at every epoch end (the process that
    writes, rank 0, alone; every rank's generators go in); `config`: the run's, as a dict,
    saved with it and compared on resume; `out_dir` None: nothing written."""

    def __init__(self, out_dir, config: dict, keep_optimizer: bool = False):
        self.out = None if out_dir is None else Path(out_dir)
        self.config, self.keep_optimizer = config, keep_optimizer

    def resume(self, trainer, may_differ=()):
        """Load OUT/checkpoint.pt into the trainer's model, optimizer and state."""
        if self.out is None:
            raise ValueError("resume: no run folder to resume from (out_dir is None)")
        history, epoch = resume_from(self.out / CHECKPOINT, trainer.model, trainer.optimizer,
                                     self.config, may_differ, trainer.config.device,
                                     trainer.strategy.rank)
        trainer.state = State(epoch, history[-1]["steps"] if history else 0, history)

    def on_epoch_end(self, trainer):
        s = trainer.state
        rng = trainer.strategy.all_gather(get_rng_state())  # every rank's: resume continues each
        if self.out is not None and trainer.strategy.is_main:
            final = s.epoch >= trainer.config.epochs and not self.keep_optimizer
            self.out.mkdir(parents=True, exist_ok=True)
            save_checkpoint(self.out / CHECKPOINT, trainer.model,
                            None if final else trainer.optimizer, s, self.config, rng)
            write_json(self.out / "history.json", s.history)
        trainer.strategy.barrier()  # the files are there for every rank


def save_checkpoint(path, model, optimizer, state: State, config: dict, rng: list | None = None):
    """optimizer None: the final weights alone. rng: [get_rng_state()] of every rank; None:
    this process's. Rank 0's is "rng"; with several ranks, all of them are "rng_ranks" too."""
    rng = rng or [get_rng_state()]
    ck = {"model": model.state_dict(), "rng": rng[0], "epoch": state.epoch,
          "history": state.history, "config": config}
    if optimizer is not None:
        ck["optimizer"] = optimizer.state_dict()
    if len(rng) > 1:
        ck["rng_ranks"] = rng
    write_bytes(path, writer=lambda f: torch.save(ck, f))


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
    if "optimizer" not in ck and ck["epoch"] < config.get("epochs", 0):
        raise ValueError(f"{path}: a finished run's final weights, without the optimizer's "
                         "state: it cannot be trained further (train with --keep-optimizer "
                         "to keep that state)")
    model.load_state_dict(ck["model"])
    if "optimizer" in ck:
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

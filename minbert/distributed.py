"""Past one machine: torchrun + torch.distributed + DistributedDataParallel (docs/distributed.md).

    torchrun --standalone --nproc-per-node 4 -m minbert.train --mode multitask --out runs/rr ...

`strategy()`: under torchrun with WORLD_SIZE > 1 a `DataParallel` (it joins the process group:
NCCL for CUDA tensors, each rank on cuda:LOCAL_RANK, gloo for CPU ones); with one process a
`SingleProcess`, whose hooks do nothing: the trainer calls the same hooks either way.

The hooks:
  data      `shard`: rank r takes its slice of each GLOBAL batch of world x batch_size
            examples of the same (seed, epoch) permutation one process would draw, so N ranks
            with batch B see in each step exactly what one process with batch N x B sees.
  losses    `add_shares`: a rank's loss is scaled by N n_r / n (n_r its examples, n the
            global batch's), so that averaging gradients over ranks gives the gradient of the
            mean over the global batch (only the last, uneven batch of an epoch has a share
            other than 1). Losses are batch means (heads.py), so full batches need no scaling.
  steps     `wrap`: single / multitask steps are DDP steps; PCGrad backpropagates each task
            unsynchronised, then averages the (tasks x parameters) rows (`mean_rows`, before
            the surgery, which must see global gradients) and the heads' (`mean_grads`).
  metrics   `gather_scores`: the training batches' statistics of every rank as one.
  dev       `shard(dev=True)` + `gather_predictions`: each rank predicts every N-th dev
            example; gathered, every rank scores the whole dev set.
  files     only rank 0 writes (`is_main`); the others wait at `barrier`s.
"""
from __future__ import annotations

import atexit
import contextlib
import datetime
import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Sampler

from .metrics import EpochScores


# ------------------------------------------------------------------ the process group
def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else int(os.environ.get("WORLD_SIZE", 1))


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else int(os.environ.get("RANK", 0))


def is_main() -> bool:
    return rank() == 0


def active() -> bool:
    """True under torchrun with more than one process (joining the group on first use)."""
    if world_size() == 1:
        return False
    if not dist.is_initialized():
        init()
    return True


def init():
    """Join the group torchrun describes (MASTER_ADDR/PORT, RANK, WORLD_SIZE, LOCAL_RANK).
    With CUDA each rank takes cuda:LOCAL_RANK, so device "cuda" means its own GPU. The
    timeout (MINBERT_DIST_TIMEOUT_MIN, 60 min) bounds how long ranks wait for rank 0 alone
    (MLM pre-step, final predictions, result files)."""
    timeout = datetime.timedelta(minutes=float(os.environ.get("MINBERT_DIST_TIMEOUT_MIN", 60)))
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        backend = "cpu:gloo,cuda:nccl"  # NCCL for CUDA tensors, gloo for CPU ones
    else:
        backend = "gloo"
    dist.init_process_group(backend, timeout=timeout)
    atexit.register(cleanup)


def cleanup():
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier():
    if active():
        dist.barrier()


@contextlib.contextmanager
def main_first():
    """Rank 0 runs the block first (e.g. writes a file); then the others (which find it)."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def all_gather(obj) -> list:
    """[obj of rank 0, obj of rank 1, ...] on every rank ([obj] with one process)."""
    if not active():
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


# ---------------------------------------------------------------------------- data
class ShardedSampler(Sampler[int]):
    """Rank r's part of each global batch (world x batch_size) of `order` (data.EpochSampler,
    whose (seed, epoch) ordering and set_epoch it keeps). Full global batches: the slice
    [r B, (r+1) B). The last, shorter one is split as evenly as possible; when it holds
    fewer examples than ranks it is dropped (every rank must step)."""

    def __init__(self, order, batch_size: int, world: int, rank: int):
        self.order, self.batch_size, self.world, self.rank = order, batch_size, world, rank

    def set_epoch(self, epoch: int):
        self.order.set_epoch(epoch)

    def _chunks(self, n: int) -> list[tuple[int, int]]:
        """(start, stop) of this rank's examples in each global batch of a pass over n."""
        G, out = self.batch_size * self.world, []
        for start in range(0, n, G):
            m = min(G, n - start)
            if m < self.world:
                break
            base, extra = divmod(m, self.world)
            lo = start + self.rank * base + min(self.rank, extra)
            out.append((lo, lo + base + (self.rank < extra)))
        return out

    def __len__(self):
        return sum(b - a for a, b in self._chunks(len(self.order)))

    def __iter__(self):
        idx = list(self.order)  # the global permutation (advances its epoch)
        return iter([i for a, b in self._chunks(len(idx)) for i in idx[a:b]])


class StridedSampler(Sampler[int]):
    """Examples rank, rank + world, ... in file order (a dev shard; `evaluate` re-interleaves)."""

    def __init__(self, n: int, world: int, rank: int):
        self.indices = list(range(rank, n, world))

    def __len__(self):
        return len(self.indices)

    def __iter__(self):
        return iter(self.indices)


def _rebuild(loader: DataLoader, sampler) -> DataLoader:
    return DataLoader(loader.dataset, batch_size=loader.batch_size, sampler=sampler,
                      collate_fn=loader.collate_fn, num_workers=0)


# --------------------------------------------------------------------------- steps
class LossForward(torch.nn.Module):
    """model.forward_loss as a module's forward, so DDP sees (and syncs) it; the loss is
    scaled by the batch's share (add_shares)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, task, batch):
        loss, out = self.model.forward_loss(task, batch)
        return (loss * batch["share"] if "share" in batch else loss), out


def _all_reduce(t: torch.Tensor) -> torch.Tensor:
    dist.all_reduce(t)
    return t


class SingleProcess:
    """One process: every hook leaves its argument as it is."""
    world_size, rank, is_main = 1, 0, True

    def shard(self, loaders: dict, dev: bool = False) -> dict:
        return loaders

    def wrap(self, model, mode: str):
        """-> forward(task, batch) -> (loss, output)."""
        return LossForward(model)

    def add_shares(self, batches: dict) -> dict:
        return batches

    def mean_rows(self, rows):
        return rows

    def mean_grads(self, params, skip=()):
        pass

    def gather_scores(self, seen: EpochScores) -> EpochScores:
        return seen

    def gather_predictions(self, ids, preds, golds):
        return ids, preds, golds

    def all_gather(self, obj) -> list:
        return [obj]

    def barrier(self):
        pass

    def run_info(self, batch_size: int) -> dict:
        return {"world_size": self.world_size, "global_batch_size": self.world_size * batch_size}


class DataParallel(SingleProcess):
    """N processes under torchrun (module docstring): the same hooks, across ranks."""

    def __init__(self):
        active()  # joins the process group
        self.world_size, self.rank, self.is_main = world_size(), rank(), is_main()

    def shard(self, loaders: dict, dev: bool = False) -> dict:
        """{task: loader of data.make_loader} -> this rank's shards. Train: ShardedSampler
        (each full slice is batch_size long); dev: every world-th example (StridedSampler)."""
        w, r = self.world_size, self.rank
        return {t: _rebuild(ld, StridedSampler(len(ld.dataset), w, r) if dev
                            else ShardedSampler(ld.sampler, ld.batch_size, w, r))
                for t, ld in loaders.items()}

    def all_gather(self, obj) -> list:
        return all_gather(obj)

    def barrier(self):
        barrier()

    def wrap(self, model, mode: str):
        """DDP for single / multitask (each head is unused in the other tasks' steps:
        find_unused_parameters); PCGrad syncs by hand (mean_rows, mean_grads)."""
        forward = LossForward(model)
        if mode == "pcgrad":
            return forward
        device = next(model.parameters()).device
        return DistributedDataParallel(forward, find_unused_parameters=True,
                                       device_ids=[device] if device.type == "cuda" else None)

    def add_shares(self, batches: dict) -> dict:
        """batch["share"] = N n_r / n for each task's batch (one all-reduce a round)."""
        n = torch.tensor([float(len(b["ids"])) for b in batches.values()], dtype=torch.float64)
        total = _all_reduce(n.clone())
        for (t, b), n_r, n_all in zip(batches.items(), n.tolist(), total.tolist()):
            b["share"] = self.world_size * n_r / n_all
        return batches

    def mean_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """PCGrad's rows (T, P) <- their mean over ranks, and every rank's CPU generator <-
        rank 0's, so all ranks draw the same projection orders (dropout on CPU consumes the
        stream by batch shape, which differs by rank) and rank 0's is that of one process."""
        _all_reduce(rows).div_(self.world_size)
        state = [torch.get_rng_state()]
        dist.broadcast_object_list(state, src=0)
        torch.set_rng_state(state[0])
        return rows

    def mean_grads(self, params, skip=()):
        """The .grad of `params` (less those in `skip`) <- their mean over ranks."""
        skip = {id(p) for p in skip}
        grads = [p.grad for p in params if p.grad is not None and id(p) not in skip]
        if not grads:
            return
        flat = _all_reduce(torch.cat([g.reshape(-1) for g in grads])).div_(self.world_size)
        off = 0
        for g in grads:
            g.copy_(flat[off:off + g.numel()].view_as(g))
            off += g.numel()

    def gather_scores(self, seen: EpochScores) -> EpochScores:
        """Every rank's training-batch statistics as one: losses are shares (add_shares) of
        the global batch mean, so their sum over ranks / N is that mean."""
        parts = all_gather(seen.s)
        merged = EpochScores(list(seen.s))
        for t, s in merged.s.items():
            s["loss"] = sum(p[t]["loss"] for p in parts) / len(parts)
            s["n"] = parts[0][t]["n"]
            for p in parts:
                s["pred"] += p[t]["pred"]
                s["gold"] += p[t]["gold"]
        return merged

    def gather_predictions(self, ids, preds, golds):
        """This rank's dev shard (every N-th example, shard(dev=True)) -> the whole dev set's
        (ids, predictions, golds) in file order, on every rank."""
        parts = all_gather((ids, preds, golds or []))
        n = sum(len(part[0]) for part in parts)
        order = [(i % len(parts), i // len(parts)) for i in range(n)]
        ids, preds, golds = ([parts[r][k][j] for r, j in order] for k in range(3))
        return ids, preds, golds or None


def strategy() -> SingleProcess:
    """DataParallel under torchrun with more than one process, else SingleProcess."""
    return DataParallel() if world_size() > 1 else SingleProcess()

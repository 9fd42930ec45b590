"""PCGrad: projecting conflicting gradients (notebook 05_pcgrad).

Yu et al. 2020, "Gradient Surgery for Multi-Task Learning", Algorithm 1:

    for each task i:   g_i^PC <- g_i
        for each other task j, in a random order:
            if g_i^PC . g_j < 0:                      # the two conflict
                g_i^PC <- g_i^PC - (g_i^PC . g_j) / ||g_j||^2 * g_j
    shared update  <- sum_i g_i^PC

g_j is always the ORIGINAL gradient of task j; only g_i^PC changes while row i
is projected. Only the shared (encoder) parameters take part: a task head gets
gradient from its own loss only, so it has nothing to conflict with and keeps
its plain gradient.

Reduction: the paper sums the projected rows, so with no conflict PCGrad is exactly the
summed multitask loss; `reduction="mean"` divides the encoder's step by T, as the
Pytorch-PCGrad code the seed project used does (notebook 05 tells the story).

`pcgrad_backward` makes one backward per task: the shared gradients of task t are copied
into row t of a flat (T, P) matrix, the rows are projected, reduced and written into the
shared parameters' .grad (added to a gradient already there, so accumulation over
micro-batches works). Every other parameter (the heads) keeps the plain gradient of the
ordinary backward, i.e. only its own task's.

Implementation: every test and coefficient of the algorithm is a dot product of the
original rows, so the loop runs on the T x T Gram matrix G G^T (float64) and yields
weights W with g_i^PC = W[i] @ G; the (T, P) gradients are read once for the Gram
matrix and once for the weighted sum (torchjd.aggregation.PCGrad works the same way, and
with generator=None draws the same orders, so under one seed the two agree).
"""
import torch
from torch import Tensor

from .config import check_choice

REDUCTIONS = ("sum", "mean")


def _orders(T: int, order, generator) -> list[list[int]]:
    """One order of the other tasks per row i (i itself dropped)."""
    if order is None:
        # one randperm per row, in increasing i (the same draws as torchjd)
        perms = [torch.randperm(T, generator=generator).tolist() for _ in range(T)]
    elif len(order) > 0 and isinstance(order[0], (list, tuple)):
        if len(order) != T:
            raise ValueError(f"per-task order needs {T} lists, got {len(order)}")
        perms = [list(o) for o in order]
    else:
        perms = [list(order)] * T
    out = []
    for i, perm in enumerate(perms):
        others = [int(j) for j in perm if int(j) != i]
        if sorted(others) != [j for j in range(T) if j != i]:
            raise ValueError(f"order for task {i} must hold every other task of "
                             f"0..{T - 1} once, got {perm}")
        out.append(others)
    return out


def _weights(gram: Tensor, orders: list[list[int]]) -> Tensor:
    """Algorithm 1 on the Gram matrix: row i of the result holds w_i with g_i^PC = w_i G.

    Every quantity the algorithm tests is a dot product of such combinations with an
    original g_j, i.e. (w_i G) . g_j = w_i . gram[:, j], so the loop runs on T x T numbers
    and the (T, P) gradients are touched once, at the end (torchjd works the same way).
    """
    T = gram.shape[0]
    W = torch.eye(T, dtype=torch.float64)
    gram = gram.to("cpu", torch.float64)
    for i in range(T):
        w = W[i]  # a view: updated in place
        for j in orders[i]:
            sq = gram[j, j].item()
            if sq <= 0.0:  # ||g_j|| = 0: nothing to project onto (no NaN)
                continue
            dot = torch.dot(w, gram[:, j]).item()  # g_i^PC . g_j
            if dot < 0.0:  # conflict: remove the component along the original g_j
                w[j] -= dot / sq
    return W


@torch.no_grad()
def project_conflicting(grads: Tensor, order=None, generator=None) -> Tensor:
    """Algorithm 1 of Yu et al. 2020 on the rows of `grads` (T, P); returns (T, P).

    order: None draws, for each row i in turn, torch.randperm(T, generator=generator);
    a list of task indices is one order used for every row; a list of T lists gives
    row i its own order. In each, i itself may appear (it is skipped) and every
    other task must appear once. A j with ||g_j||^2 == 0 is skipped (no NaN).
    Dot products come from the float64 Gram matrix (see `_weights`).
    """
    if grads.dim() != 2:
        raise ValueError(f"grads must be (T, P), got shape {tuple(grads.shape)}")
    W = _weights(_gram64(grads), _orders(grads.shape[0], order, generator))
    return W.to(grads.device, grads.dtype) @ grads


SLAB = 4096  # columns per slab: (T, SLAB) blocks stay in cache, rounding stays small


@torch.no_grad()
def _gram64(grads: Tensor, chunk: int = SLAB) -> Tensor:
    """G G^T with float64 accuracy at float32 speed: the columns are cut into slabs of
    `chunk`, one batched matmul gives every slab's (T, T) product in the gradients' dtype,
    and the slabs are summed in float64 (rounding grows with the slab, not with P)."""
    slabs, rest = _slabs(grads, chunk)
    gram = torch.bmm(slabs, slabs.transpose(1, 2)).double().sum(dim=0)
    return gram + (rest @ rest.T).double()


def _slabs(grads: Tensor, chunk: int) -> tuple[Tensor, Tensor]:
    """(T, P) -> views (P // chunk, T, chunk) of the whole slabs, and the (T, rest) columns."""
    T, P = grads.shape
    n = P // chunk
    return grads[:, :n * chunk].reshape(T, n, chunk).transpose(0, 1), grads[:, n * chunk:]


def _cosine_from_gram(gram: Tensor) -> Tensor:
    norms = gram.diagonal().clamp_min(0).sqrt()
    denom = norms[:, None] * norms[None, :]
    cos = torch.where(denom > 0, gram / torch.where(denom > 0, denom, 1.0), 0.0)
    return cos.clamp(-1.0, 1.0)


def pairwise_cosine(grads: Tensor) -> Tensor:
    """(T, T) cosine similarities of the rows of `grads`; 0 where a norm is 0."""
    return _cosine_from_gram(_gram64(grads)).to(grads.dtype)


def conflict_stats(grads: Tensor) -> dict:
    """Pairwise statistics of the ORIGINAL rows of `grads` (T, P), for i < j.

    `cosine`: {(i, j): float}; `conflict`: {(i, j): bool}, True when g_i . g_j < 0
    (the test Algorithm 1 uses); `norm`: [||g_t||] per task. Dot products are
    accumulated in float64.
    """
    return _stats_from_gram(_gram64(grads))


def _stats_from_gram(gram64: Tensor) -> dict:
    gram, cos = gram64.tolist(), _cosine_from_gram(gram64).tolist()
    T = gram64.shape[0]
    pairs = [(i, j) for i in range(T) for j in range(i + 1, T)]
    return {
        "cosine": {(i, j): float(cos[i][j]) for i, j in pairs},
        "conflict": {(i, j): bool(gram[i][j] < 0.0) for i, j in pairs},
        "norm": [max(gram[t][t], 0.0) ** 0.5 for t in range(T)],
    }


@torch.no_grad()
def merge(grads: Tensor, reduction: str = "sum", generator=None, out=None) -> tuple[Tensor, dict]:
    """The surgery alone: (sum or mean of the projected rows of grads (T, P), conflict_stats
    of the original rows). Two passes over grads: the Gram matrix, then the weighted sum,
    written into `out` (P,) when given."""
    gram = _gram64(grads)
    W = _weights(gram, _orders(grads.shape[0], None, generator))  # g_i^PC = W[i] @ grads
    coef = (W.sum(dim=0) if reduction == "sum" else W.mean(dim=0)).to(grads.device, grads.dtype)
    # merged = coef @ grads, slab by slab as for the Gram matrix: one (T,) @ (T, P) product
    # is a matrix-vector product, which torch threads poorly on a CPU
    T, P = grads.shape
    merged = torch.empty(P, dtype=grads.dtype, device=grads.device) if out is None else out
    slabs, rest = _slabs(grads, SLAB)
    n = slabs.shape[0]
    torch.matmul(coef.view(1, 1, T), slabs, out=merged[:n * SLAB].view(n, 1, SLAB))
    torch.mv(rest.T, coef, out=merged[n * SLAB:])
    return merged, _stats_from_gram(gram)


def flatten_grads(params, out: Tensor) -> Tensor:
    """Copy the .grad of `params` into the flat row `out` (P,), zeros where a parameter
    has no gradient (the task does not reach it). The one flattening of gradients in
    minbert: PCGrad and the conflict statistics of round-robin training both use it."""
    off = 0
    for p in params:
        n = p.numel()
        if p.grad is None:
            out[off:off + n].zero_()
        else:
            out[off:off + n].copy_(p.grad.reshape(-1))
        off += n
    return out


class GradientBuffer:
    """A (rows, P) matrix reused from step to step, owned by whoever trains (one per model,
    so two models never share gradients): no 90 MB allocation per step (benchmarks/README.md
    lists reusing the buffer among what made a PCGrad step cheap)."""

    def __init__(self):
        self.tensor = None

    def get(self, rows: int, P: int, dtype, device) -> Tensor:
        t = self.tensor
        if t is None or t.shape != (rows, P) or t.dtype != dtype or t.device != torch.device(device):
            self.tensor = t = torch.empty(rows, P, dtype=dtype, device=device)
        return t


def pcgrad_backward(losses, shared_params, reduction: str = "sum", generator=None,
                    retain_graph: bool = False, buffer: GradientBuffer | None = None,
                    reduce_rows=None) -> dict:
    """Backward for a list of task losses with PCGrad on `shared_params` (how: the module
    docstring); reduction "sum" (the paper) or "mean" (the seed's code).
    retain_graph: pass True when the losses share part of one graph (one forward feeding
    every head); the training loop makes one forward per task, so each backward frees its own.
    buffer: where the rows live (allocated afresh when None). The shared .grad become views
    of its last row: with a buffer reused across steps, clone a gradient to keep it.
    reduce_rows: applied in place to the (T, P) rows before the surgery (under torchrun,
    distributed.mean_rows: the projection must see the gradients averaged over ranks).
    Returns `conflict_stats` of the original rows.
    """
    check_choice("reduction", reduction, REDUCTIONS)
    losses = list(losses)
    params = [p for p in shared_params if p.requires_grad]
    if not losses:
        raise ValueError("pcgrad_backward needs at least one loss")
    if not params:
        raise ValueError("pcgrad_backward needs at least one shared parameter")
    dtype, device = params[0].dtype, params[0].device
    if any(p.dtype != dtype or p.device != device for p in params):
        raise ValueError("shared parameters must share one dtype and device")
    T, P = len(losses), sum(p.numel() for p in params)

    prior = [p.grad for p in params]  # kept aside, added back at the end
    rows = (buffer or GradientBuffer()).get(T + 1, P, dtype, device)  # T rows + the merged one
    for t, loss in enumerate(losses):
        for p in params:
            p.grad = None
        loss.backward(retain_graph=retain_graph and t < T - 1)
        flatten_grads(params, rows[t])
    if reduce_rows is not None:
        reduce_rows(rows[:T])

    out = rows[T] if all(g is None for g in prior) else None
    merged, stats = merge(rows[:T], reduction, generator, out=out)
    _set_grads(params, prior, merged)
    return stats


@torch.no_grad()
def _set_grads(params, prior, merged: Tensor):
    """Each p.grad <- its slice of the flat `merged` (P,): a view of it, or added in place to
    the gradient `prior` held for p (the inverse of `flatten_grads`)."""
    off = 0
    for p, g0 in zip(params, prior):
        n = p.numel()
        g = merged[off:off + n].view_as(p)
        p.grad = g if g0 is None else g0.add_(g)
        off += n


class ConflictLog:
    """Conflict statistics of the per-task encoder gradients, accumulated over the rounds of
    an epoch: per task pair, the share of rounds with g_i . g_j < 0 and the mean cosine."""

    def __init__(self, params, tasks, buffer: GradientBuffer | None = None):
        self.params, self.tasks, self.sums = [p for p in params if p.requires_grad], tasks, {}
        self.buffer, self.rows = buffer or GradientBuffer(), None

    def grab(self, t: int):
        """Row t <- the current .grad of the shared parameters (task t's gradient)."""
        if self.rows is None:  # PCGrad hands its stats to add() and never needs rows
            p0, P = self.params[0], sum(p.numel() for p in self.params)
            self.rows = self.buffer.get(len(self.tasks), P, p0.dtype, p0.device)
        flatten_grads(self.params, self.rows[t])

    def add(self, stats: dict | None = None):
        """Count one round: `stats` from pcgrad_backward, or (None) those of the grabbed rows."""
        stats = stats or conflict_stats(self.rows)
        for (i, j), cos in stats["cosine"].items():
            key = f"{self.tasks[i]}-{self.tasks[j]}"
            n, c, s = self.sums.get(key, (0, 0, 0.0))
            self.sums[key] = (n + 1, c + int(stats["conflict"][(i, j)]), s + cos)

    def reset(self):
        self.sums = {}

    def summary(self) -> dict:
        return {k: {"conflict_rate": c / n, "mean_cosine": s / n}
                for k, (n, c, s) in self.sums.items()}

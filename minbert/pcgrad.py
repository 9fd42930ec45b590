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

Reduction. The paper sums the projected gradients, so with no conflict PCGrad
is exactly the summed multitask loss. Tseng's Pytorch-PCGrad
(WeiChengTseng/Pytorch-PCGrad, what the seed project used) merges the shared
rows by *mean* by default (in the version the seed used, `if self._reduction:`
is true for 'sum' too, so its sum branch is unreachable): the encoder's step is
divided by T relative to the summed loss while the heads keep theirs. Here the
default is the paper's sum; `reduction="mean"` reproduces the seed. Tseng also
projects the whole flattened gradient, heads included, so the dot products and
the heads' gradients see the other tasks' head components; here they do not.

torchjd.aggregation.PCGrad computes the same thing in Gramian space (weights on
the rows, summed) and draws each row's order as torch.randperm(T) from the
global generator; `project_conflicting(grads)` with generator=None draws its
orders the same way, so under the same seed the two agree.
"""
import torch
from torch import Tensor


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


@torch.no_grad()
def project_conflicting(grads: Tensor, order=None, generator=None) -> Tensor:
    """Algorithm 1 of Yu et al. 2020 on the rows of `grads` (T, P); returns (T, P).

    order: None draws, for each row i in turn, torch.randperm(T, generator=generator);
    a list of task indices is one order used for every row; a list of T lists gives
    row i its own order. In each, i itself may appear (it is skipped) and every
    other task must appear once. A j with ||g_j||^2 == 0 is skipped (no NaN).
    """
    if grads.dim() != 2:
        raise ValueError(f"grads must be (T, P), got shape {tuple(grads.shape)}")
    T = grads.shape[0]
    orders = _orders(T, order, generator)
    sq_norms = [torch.dot(g, g).item() for g in grads]  # ||g_j||^2 of the originals
    pc = grads.clone()
    for i in range(T):
        row = pc[i]  # (P,) view, updated in place
        for j in orders[i]:
            if sq_norms[j] == 0.0:
                continue
            dot = torch.dot(row, grads[j]).item()
            if dot < 0.0:
                row.sub_(grads[j], alpha=dot / sq_norms[j])
    return pc


@torch.no_grad()
def _gram64(grads: Tensor, chunk: int = 1 << 20) -> Tensor:
    """G G^T accumulated in float64, a slab of columns at a time (no float64 copy of G)."""
    T, P = grads.shape
    gram = torch.zeros(T, T, dtype=torch.float64, device=grads.device)
    for s in range(0, P, chunk):
        g = grads[:, s:s + chunk].double()
        gram += g @ g.T
    return gram


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
    gram64 = _gram64(grads)
    gram, cos = gram64.tolist(), _cosine_from_gram(gram64).tolist()
    T = grads.shape[0]
    pairs = [(i, j) for i in range(T) for j in range(i + 1, T)]
    return {
        "cosine": {(i, j): float(cos[i][j]) for i, j in pairs},
        "conflict": {(i, j): bool(gram[i][j] < 0.0) for i, j in pairs},
        "norm": [max(gram[t][t], 0.0) ** 0.5 for t in range(T)],
    }


def pcgrad_backward(losses, shared_params, reduction: str = "sum", generator=None) -> dict:
    """Backward for a list of task losses with PCGrad on `shared_params`.

    One backward per task: the shared gradients of task t are copied into row t of
    a flat (T, P) buffer, the rows are projected (`project_conflicting`), reduced
    ("sum", the paper; "mean", Tseng's default) and written into the shared
    parameters' .grad (added to any gradient already there, so accumulation over
    micro-batches works). Every other parameter (the heads) accumulates its plain
    gradient from the ordinary backward, i.e. only its own task's gradient.
    Returns `conflict_stats` of the original rows.
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
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
    buf = torch.zeros(T, P, dtype=dtype, device=device)  # (T, P)
    for t, loss in enumerate(losses):
        for p in params:
            p.grad = None
        loss.backward(retain_graph=t < T - 1)
        off = 0
        for p in params:
            n = p.numel()
            if p.grad is not None:  # None: this task does not reach p (row stays 0)
                buf[t, off:off + n].copy_(p.grad.reshape(-1))
            off += n

    stats = conflict_stats(buf)
    pc = project_conflicting(buf, generator=generator)
    merged = pc.sum(dim=0) if reduction == "sum" else pc.mean(dim=0)  # (P,)
    off = 0
    with torch.no_grad():
        for p, g0 in zip(params, prior):
            n = p.numel()
            g = merged[off:off + n].view_as(p)
            p.grad = g if g0 is None else g0.add_(g)
            off += n
    return stats

"""Checks of notebook 02_adamw: one AdamW step, and AdamW as a torch Optimizer.

Oracles: a two-step example worked out by hand (HAND_EXAMPLE), and the formulas of 02
evaluated one Python float at a time (float64; no tensors, no minbert). torch.optim.AdamW
is a different variant (notebook 02, section 4), so it is no oracle here.
"""
from __future__ import annotations

import math

import torch

from ._common import _call, _close, _generator, _tensor, verdict

__all__ = ["HAND_EXAMPLE", "check_adamw_step", "check_adamw_optimizer"]


def _adamw_reference(p, grads, lr, betas, eps, weight_decay, correct_bias):
    """The formulas of 02, one Python float at a time (float64): no tensors, no minbert."""
    b1, b2 = betas
    p = list(map(float, p))
    m, v = [0.0] * len(p), [0.0] * len(p)
    history = []
    for t, g in enumerate(grads, start=1):
        alpha = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t) if correct_bias else lr
        for i, gi in enumerate(g):
            m[i] = b1 * m[i] + (1 - b1) * gi
            v[i] = b2 * v[i] + (1 - b2) * gi * gi
            p[i] = p[i] - alpha * m[i] / (math.sqrt(v[i]) + eps)
            p[i] = p[i] - lr * weight_decay * p[i]
        history.append((list(p), list(m), list(v)))
    return history


# A two-step example small enough to do by hand (lr=0.1, betas=(0.9, 0.999), eps=1e-8,
# no weight decay, bias correction on). Step 1: m = 0.1 g, v = 0.001 g^2,
# alpha = 0.1 * sqrt(0.001) / 0.1 = 0.0316228, so each coordinate moves by
# alpha * 0.1 g / (sqrt(0.001) |g| + eps) = 0.1 * sign(g), less a hair for eps
# (0.1 * eps / sqrt(v) = 1.6e-7 and 3.2e-7 here).
HAND_EXAMPLE = dict(
    p0=[1.0, -0.5], grads=[[0.2, -0.1], [0.4, 0.1]],
    hyper=dict(lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, correct_bias=True),
    # (p, m, v) after each step, worked out by hand (step 2 with a calculator).
    expected=[
        ([0.900000158114, -0.400000316227], [0.02, -0.01], [4e-05, 1e-05]),
        ([0.803482023787, -0.405263462350], [0.058, 0.001], [1.9996e-04, 1.999e-05]),
    ])


def _run_steps(fn, p0, grads, hyper):
    p = torch.tensor(p0, dtype=torch.float64)
    m, v = torch.zeros_like(p), torch.zeros_like(p)
    out = []
    for t, g in enumerate(grads, start=1):
        g = torch.tensor(g, dtype=torch.float64)
        before = (p.clone(), m.clone(), v.clone(), g.clone())
        res = _call(fn, p, g, m, v, t, **hyper)
        assert isinstance(res, tuple) and len(res) == 3, "return the tuple (p, m, v)"
        for x, name in zip(res, "pmv"):
            _tensor(x, f"{name} after step {t}", p.shape, torch.float64)
        for x, y, name in zip((p, m, v, g), before, ("p", "m", "v", "g")):
            assert torch.equal(x, y), f"do not change the input {name} in place; return new tensors"
        p, m, v = res
        out.append((p, m, v))
    return out


@verdict
def check_adamw_step(fn, *, hidden=False):
    """fn(p, g, m, v, t, *, lr, betas, eps, weight_decay, correct_bias) -> (p, m, v).
    Visible: the hand-worked HAND_EXAMPLE. hidden=True: no bias correction, with weight
    decay, 4 steps, against the formulas evaluated per number in Python floats."""
    if not hidden:
        ex = HAND_EXAMPLE
        got = _run_steps(fn, ex["p0"], ex["grads"], ex["hyper"])
        for t, ((p, m, v), (wp, wm, wv)) in enumerate(zip(got, ex["expected"]), start=1):
            _close(m, torch.tensor(wm, dtype=torch.float64), f"m after step {t}", 1e-12,
                   "m <- beta1 m + (1 - beta1) g")
            _close(v, torch.tensor(wv, dtype=torch.float64), f"v after step {t}", 1e-12,
                   "v <- beta2 v + (1 - beta2) g^2")
            _close(p, torch.tensor(wp, dtype=torch.float64), f"p after step {t}", 1e-9,
                   "alpha = lr sqrt(1 - beta2^t) / (1 - beta1^t); p <- p - alpha m / (sqrt(v) + eps)")
        return
    # BEGIN HIDDEN CHECK (the student release keeps only a raise: course.releasing)
    gen = _generator(1)
    p0 = torch.randn(5, generator=gen, dtype=torch.float64).tolist()
    grads = (torch.randn(4, 5, generator=gen, dtype=torch.float64) * 0.1).tolist()
    for hyper in (dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, correct_bias=False),
                  dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, correct_bias=True)):
        got = _run_steps(fn, p0, grads, hyper)
        want = _adamw_reference(p0, grads, **hyper)
        for t, ((p, m, v), (wp, wm, wv)) in enumerate(zip(got, want), start=1):
            _close(p, torch.tensor(wp, dtype=torch.float64), f"p after step {t} with {hyper}", 1e-10,
                   "correct_bias=False means alpha = lr; weight decay comes *after* the Adam "
                   "update: p <- p - lr * weight_decay * p")
    # END HIDDEN CHECK


@verdict
def check_adamw_optimizer(cls, *, steps=3, seed=0):
    """cls(params, lr, betas, eps, weight_decay, correct_bias) a torch.optim.Optimizer.
    Two parameters in two param groups (different lr and weight decay), fixed gradients,
    against the per-number formulas."""
    gen = _generator(seed)
    w = torch.nn.Parameter(torch.randn(2, 3, generator=gen, dtype=torch.float64))
    b = torch.nn.Parameter(torch.randn(3, generator=gen, dtype=torch.float64))
    grads = {id(w): [torch.randn(2, 3, generator=gen, dtype=torch.float64) for _ in range(steps)],
             id(b): [torch.randn(3, generator=gen, dtype=torch.float64) for _ in range(steps)]}
    groups = [dict(params=[w], lr=0.1, weight_decay=0.05), dict(params=[b], lr=0.02, weight_decay=0.0)]
    start = {id(w): w.detach().flatten().tolist(), id(b): b.detach().flatten().tolist()}
    opt = _call(cls, groups, lr=1.0, betas=(0.9, 0.95), eps=1e-6, weight_decay=0.0, correct_bias=True)
    assert isinstance(opt, torch.optim.Optimizer), "subclass torch.optim.Optimizer"
    for t in range(steps):
        for prm in (w, b):
            prm.grad = grads[id(prm)][t].clone()
        _call(opt.step, _name=f"{type(opt).__name__}.step (or a function it calls)")
    for prm, group, name in ((w, groups[0], "weight (group 0)"), (b, groups[1], "bias (group 1)")):
        want = _adamw_reference(start[id(prm)], [g.flatten().tolist() for g in grads[id(prm)]],
                                lr=group["lr"], betas=(0.9, 0.95), eps=1e-6,
                                weight_decay=group["weight_decay"], correct_bias=True)[-1][0]
        _close(prm.detach().flatten(), torch.tensor(want, dtype=torch.float64),
               f"{name} after {steps} steps", 1e-10,
               "read lr/betas/eps/weight_decay from each param group, and keep m, v and the step "
               "count t per parameter in self.state[p] across calls")

"""Grader-side plans of notebook 02's checks: the AdamW step over a whole drawn sequence of
steps, and the optimizer over drawn parameter groups. Oracle: the formulas of 02 evaluated
one Python float at a time (minbert.checks.adamw._adamw_reference: no tensors, no minbert)."""
import torch

from minbert.checks.adamw import _adamw_reference
from .oracles_attention import pick
from .verdict import Plan, Wrong, close

HYPERS = [dict(lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, correct_bias=True),
          dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, correct_bias=False),
          dict(lr=0.02, betas=(0.85, 0.95), eps=1e-7, weight_decay=0.05, correct_bias=True)]


def json_hyper(h: dict) -> dict:
    return {**h, "betas": {"tuple": list(h["betas"])}}


def adamw_step(fn, seed):
    gen, plan, want = torch.Generator().manual_seed(seed), Plan(), []
    for i, hyper in enumerate(HYPERS):
        n, steps = pick(gen, 3, 8), pick(gen, 3, 6)
        p0 = torch.randn(n, generator=gen, dtype=torch.float64)
        grads = torch.randn(steps, n, generator=gen, dtype=torch.float64) * 0.1
        plan.cases.append({"runner": "steps", "fn": fn, "p0": plan.put(f"c{i}.p0", p0),
                           "grads": plan.put(f"c{i}.g", grads), "hyper": json_hyper(hyper)})
        want.append((p0, grads, _adamw_reference(p0.tolist(), grads.tolist(), **hyper)))

    def judge(out):
        for i, (p0, grads, ref) in enumerate(want):
            prev = (p0, torch.zeros_like(p0), torch.zeros_like(p0))
            for t, (wp, wm, wv) in enumerate(ref):
                got = [out.get(i, f"s{t}.{k}", f"{k} after step {t + 1}", p0.shape,
                               torch.float64) for k in "pmv"]
                ins = [out.get(i, f"s{t}.{k}in", f"input {k}", p0.shape) for k in "pmv"]
                if not (all(map(torch.equal, ins, prev)) and
                        torch.equal(out.get(i, f"s{t}.gin", "input g", p0.shape), grads[t])):
                    raise Wrong("do not change the inputs p, g, m, v in place; return new tensors")
                for k, x, w, tol in zip("mvp", got[1:] + got[:1], (wm, wv, wp),
                                        (1e-12, 1e-12, 1e-9)):
                    close(x, torch.tensor(w, dtype=torch.float64),
                          f"input {i + 1}: {k} after step {t + 1}", tol,
                          "correct_bias=False means alpha = lr; weight decay after the update.")
                prev = tuple(got)
    plan.judge = judge
    return plan


def adamw_optimizer(fn, seed):
    gen, plan = torch.Generator().manual_seed(seed), Plan()
    steps, r, c = pick(gen, 3, 6), pick(gen, 2, 4), pick(gen, 2, 5)
    shapes = [(r, c), (c,)]
    starts = [torch.randn(*s, generator=gen, dtype=torch.float64) for s in shapes]
    grads = [torch.randn(steps, *s, generator=gen, dtype=torch.float64) for s in shapes]
    groups = [dict(lr=0.1, weight_decay=0.05), dict(lr=0.02, weight_decay=0.0)]
    betas, eps = (0.9, 0.95), 1e-6
    for j in range(2):
        plan.put(f"p{j}", starts[j])
        plan.put(f"g{j}", grads[j])
    plan.cases = [{"runner": "optimizer", "fn": fn, "params": ["p0", "p1"],
                   "grads": ["g0", "g1"], "groups": groups,
                   "kwargs": {"lr": 1.0, "betas": {"tuple": list(betas)}, "eps": eps,
                              "weight_decay": 0.0, "correct_bias": True}}]
    want = [torch.tensor(_adamw_reference(
        s.flatten().tolist(), g.reshape(steps, -1).tolist(), lr=grp["lr"], betas=betas, eps=eps,
        weight_decay=grp["weight_decay"], correct_bias=True)[-1][0],
        dtype=torch.float64).reshape(s.shape) for s, g, grp in zip(starts, grads, groups)]

    def judge(out):
        for j, w in enumerate(want):
            close(out.get(0, f"out{j}", f"parameter {j} after {steps} steps", w.shape,
                          torch.float64), w, f"parameter {j} (group {j}) after {steps} steps",
                  1e-10, "read lr/betas/eps/weight_decay from each param group; keep m, v and t "
                  "per parameter in self.state[p].")
    plan.judge = judge
    return plan

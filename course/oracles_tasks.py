"""Grader-side plans of notebooks 03 (the three heads), 04 (round-robin, on a recorded mock)
and 05 (PCGrad's projection). Oracles: torch's F.linear, F.cross_entropy,
F.binary_cross_entropy_with_logits, F.mse_loss; an independent count of round-robin's steps
(minbert.checks.round_robin.expected_steps); Algorithm 1 in float64 numpy
(minbert.checks.pcgrad._reference)."""
import torch
import torch.nn.functional as F

from .oracles_attention import pick
from .verdict import Plan, Wrong, close

HEADS = {  # out features, labels(gen, B), oracle (logits z (B, out)) -> (output, loss)
    "sentiment": (5, lambda g, b: torch.randint(0, 5, (b,), generator=g),
                  lambda z, y: (z, F.cross_entropy(z, y))),
    "paraphrase": (1, lambda g, b: torch.randint(0, 2, (b,), generator=g).double(),
                   lambda z, y: (z[:, 0], F.binary_cross_entropy_with_logits(z[:, 0], y))),
    "similarity": (1, lambda g, b: 5 * torch.rand(b, generator=g, dtype=torch.float64),
                   lambda z, y: (5 * torch.sigmoid(z[:, 0]), F.mse_loss(5 * torch.sigmoid(
                       z[:, 0]), y))),
}


def head(which: str):
    """fn(pooled, weight, bias, labels) -> (output, mean loss), on ordinary inputs, inputs
    scaled by 100 (a naive exp/log overflows) and float64."""
    out_features, labels, oracle = HEADS[which]

    def plan_head(fn, seed):
        gen, plan, want = torch.Generator().manual_seed(seed), Plan(), []
        for i, (scale, dtype) in enumerate([(1, torch.float32), (100, torch.float32),
                                            (1, torch.float64)]):
            b, h = pick(gen, 4, 10), pick(gen, 4, 12)
            x = scale * torch.randn(b, h, generator=gen, dtype=dtype)
            w = torch.randn(out_features, h, generator=gen, dtype=dtype)
            bias = torch.randn(out_features, generator=gen, dtype=dtype)
            y = labels(gen, b)
            y = y.to(dtype) if y.is_floating_point() else y
            plan.cases.append({"fn": fn, "args": [plan.put(f"c{i}.{k}", t) for k, t in
                                                  zip("xwby", (x, w, bias, y))]})
            want.append(oracle(F.linear(x, w, bias), y))

        def judge(out):
            for i, (o, loss) in enumerate(want):
                close(out.get(i, "out0", "the output", o.shape), o, f"input {i + 1}: output",
                      1e-4 * max(1.0, o.abs().max().item()))
                close(out.get(i, "out1", "the loss", ()), loss, f"input {i + 1}: loss",
                      1e-4 * max(1.0, abs(loss.item())), "the mean over the batch, computed "
                      "stably (logsumexp / the log1p form) for large logits")
        plan.judge = judge
        return plan
    return plan_head


def round_robin(fn, seed):
    from minbert.checks.round_robin import expected_steps
    gen, plan, want = torch.Generator().manual_seed(seed), Plan(), []
    for i, tasks in enumerate([["sst", "quora", "sts"], ["sts", "sst"], ["quora"]]):
        batches = {t: [float(pick(gen, 1, 999)) for _ in range(pick(gen, 3, 6))] for t in tasks}
        rounds = min(len(b) for b in batches.values()) - pick(gen, 0, 1)
        plan.cases.append({"runner": "round_robin", "fn": fn, "batches": batches,
                           "rounds": rounds})
        steps = torch.tensor([[s[t] for t in tasks] for s in expected_steps(batches, rounds)],
                             dtype=torch.float64)
        want.append((steps, [b[:rounds] for b in batches.values()]))

    def judge(out):
        for i, (steps, losses) in enumerate(want):
            got = out.get(i, "steps", "the recorded steps")
            if got.shape != steps.shape or not torch.equal(got, steps):
                raise Wrong(f"input {i + 1}: the optimizer steps differ from round-robin's (tasks"
                            " in order, one step per batch, gradients zeroed before each batch)")
            for j, want_j in enumerate(losses):
                if out.get(i, f"loss{j}", "the losses as floats").tolist() != want_j:
                    raise Wrong(f"input {i + 1}: return {{task: [each batch's loss as a float]}}")
    plan.judge = judge
    return plan


def project_conflicting(fn, seed):
    from minbert.checks.pcgrad import _reference
    gen, plan, want = torch.Generator().manual_seed(seed), Plan(), []
    n = pick(gen, 20, 40)
    g3 = torch.randn(3, n, generator=gen, dtype=torch.float64)
    g3[1] = -0.7 * g3[0] + 0.5 * g3[1]
    g3[2] = -0.4 * g3[0] - 0.6 * g3[1] + 0.3 * g3[2]
    zero = g3.clone()
    zero[pick(gen, 0, 2)] = 0
    g4 = torch.randn(4, n, generator=gen, dtype=torch.float64)
    g4[1] -= 1.5 * g4[0]
    g4[3] -= 1.2 * g4[2]
    calm = torch.tensor([[1.0, 2.0], [2.0, 1.0]], dtype=torch.float64) * pick(gen, 1, 9)
    for i, (G, orders) in enumerate([
            (g3, [[1, 2], [2, 0], [0, 1]]), (zero, [[2, 1], [0, 2], [1, 0]]),
            (g4, [[3, 1, 2], [2, 0, 3], [1, 3, 0], [0, 2, 1]]), (calm, [[1], [0]])]):
        plan.cases.append({"fn": fn, "args": [plan.put(f"c{i}.g", G), orders], "after": [0]})
        want.append((G, torch.from_numpy(_reference(G.numpy(), orders))))

    def judge(out):
        for i, (G, ref) in enumerate(want):
            if not torch.equal(out.get(i, "in0", "the input", G.shape), G):
                raise Wrong("my_project_conflicting changed its input: work on a copy")
            close(out.get(i, "out0", "projected rows", G.shape), ref, f"input {i + 1}: "
                  "projected rows", 1e-6, "Project onto the ORIGINAL g_j, only when the dot "
                  "product is negative and ||g_j|| > 0.")
    plan.judge = judge
    return plan

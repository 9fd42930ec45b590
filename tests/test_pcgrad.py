"""minbert.pcgrad against a float64 loop reference written here, and against torchjd.

torchjd.aggregation.PCGrad implements the same Algorithm 1 (Yu et al. 2020), but
  * returns only the aggregated vector (the SUM of the projected rows), never the rows;
  * works in Gramian space (weights on the rows), so it agrees to rounding, not bitwise;
  * draws each row's order as torch.randperm(T) from the GLOBAL generator, i itself
    included and skipped. minbert draws the same way when generator=None, so under one
    torch.manual_seed the two agree for any T; with other orders they differ for T > 2
    (test_order_matters_for_three_tasks shows a case), for T = 2 never.
Both project onto the ORIGINAL g_j and skip a zero g_j (its inner product is exactly 0).
"""
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from minbert.pcgrad import conflict_stats, pairwise_cosine, pcgrad_backward, project_conflicting


# ---------------------------------------------------------------- float64 reference
def reference(G, orders):
    """Algorithm 1 by hand: G (T, P) numpy, orders[i] = the j's for row i (i skipped)."""
    G = np.asarray(G, dtype=np.float64)
    out = G.copy()
    for i in range(len(G)):
        g = G[i].copy()
        for j in orders[i]:
            if j == i:
                continue
            nj = float(G[j] @ G[j])
            d = float(g @ G[j])
            if nj > 0 and d < 0:
                g = g - d / nj * G[j]
        out[i] = g
    return out


def n_projections(G, orders):
    """How many times the reference actually projects (so a test can't pass vacuously)."""
    G = np.asarray(G, dtype=np.float64)
    count = 0
    for i in range(len(G)):
        g = G[i].copy()
        for j in orders[i]:
            if j == i:
                continue
            d = float(g @ G[j])
            if d < 0 and G[j] @ G[j] > 0:
                g = g - d / float(G[j] @ G[j]) * G[j]
                count += 1
    return count


def correlated_grads(T, P, seed, dtype=torch.float64):
    """Rows with sizeable cosines of both signs and magnitudes spread over 100x."""
    g = torch.Generator().manual_seed(seed)
    k = min(P, 3)
    basis = torch.randn(k, P, generator=g, dtype=torch.float64)
    mix = torch.randn(T, k, generator=g, dtype=torch.float64)
    if T > 1:  # tasks 0 and 1 pull against each other, the rest at random
        mix[1] = -mix[0] + 0.3 * mix[1]
    scale = 10 ** (2 * torch.rand(T, 1, generator=g, dtype=torch.float64) - 1)
    G = scale * (mix @ basis + 0.2 * torch.randn(T, P, generator=g, dtype=torch.float64))
    return G.to(dtype)


def randperm_orders(T, seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randperm(T, generator=g).tolist() for _ in range(T)]


# ---------------------------------------------------------------- projection
@pytest.mark.parametrize("T,P,seed", [(2, 1, 0), (2, 50, 2), (3, 7, 2), (3, 1000, 3),
                                      (4, 20, 4), (4, 5000, 5)])
def test_matches_float64_reference_shared_order(T, P, seed):
    G = correlated_grads(T, P, seed)
    order = list(range(T))[::-1]
    ref = reference(G.numpy(), [order] * T)
    out = project_conflicting(G, order=order)
    assert out.dtype == torch.float64 and out.shape == (T, P)
    np.testing.assert_allclose(out.numpy(), ref, rtol=0, atol=1e-6 * np.abs(ref).max())
    assert n_projections(G.numpy(), [order] * T) >= 1 or P == 1


@pytest.mark.parametrize("T,seed", [(3, 10), (4, 11), (4, 12)])
def test_matches_reference_per_task_orders(T, seed):
    G = correlated_grads(T, 40, seed)
    orders = randperm_orders(T, seed)
    ref = reference(G.numpy(), orders)
    assert n_projections(G.numpy(), orders) >= 2
    np.testing.assert_allclose(project_conflicting(G, order=orders).numpy(), ref, atol=1e-9)
    # generator: the documented draw, one randperm(T) per row in increasing i
    gen = torch.Generator().manual_seed(seed)
    np.testing.assert_allclose(project_conflicting(G, generator=gen).numpy(), ref, atol=1e-9)


def test_million_parameters_three_tasks():
    G = correlated_grads(3, 10**6, 7)
    order = [2, 0, 1]
    ref = reference(G.numpy(), [order] * 3)
    assert n_projections(G.numpy(), [order] * 3) >= 1
    out = project_conflicting(G, order=order)
    np.testing.assert_allclose(out.numpy(), ref, rtol=0, atol=1e-6)
    # float32 in, float32 out; agrees with the float64 reference to float32 rounding
    out32 = project_conflicting(G.float(), order=order)
    assert out32.dtype == torch.float32
    err = np.abs(out32.double().numpy() - ref).max() / np.abs(ref).max()
    assert err < 1e-4, err


@pytest.mark.parametrize("T,seed", [(2, 20), (2, 21), (3, 22), (4, 23)])
def test_no_conflict_left_where_guaranteed(T, seed):
    """Right after projecting onto g_j, g_i^PC . g_j = 0; for T = 2 that is the whole
    algorithm, for T > 2 only the LAST j in each row's order is guaranteed."""
    G = correlated_grads(T, 300, seed)
    orders = randperm_orders(T, seed)
    out = project_conflicting(G, order=orders)
    for i in range(T):
        last = [j for j in orders[i] if j != i][-1]
        cos = float(out[i] @ G[last]) / (float(out[i].norm() * G[last].norm()) + 1e-300)
        assert cos >= -1e-6, (i, last, cos)
    if T == 2:
        assert float(G[0] @ G[1]) < 0  # the case is a conflict, so the check bites
        assert float(out[0] @ G[1]) >= -1e-6 and float(out[1] @ G[0]) >= -1e-6


def test_non_conflicting_rows_pass_through():
    G = torch.tensor([[1.0, 2.0, 0.0], [0.5, 0.0, 3.0]], dtype=torch.float64)
    assert torch.equal(project_conflicting(G, order=[0, 1]), G)


def test_hand_computed_two_tasks():
    # g1 = (1, 0), g2 = (-1, 1): g1.g2 = -1, |g2|^2 = 2, |g1|^2 = 1
    # g1^PC = (1,0) + 1/2 (-1,1) = (0.5, 0.5); g2^PC = (-1,1) + 1 (1,0) = (0, 1)
    G = torch.tensor([[1.0, 0.0], [-1.0, 1.0]], dtype=torch.float64)
    out = project_conflicting(G, order=[0, 1])
    assert torch.allclose(out, torch.tensor([[0.5, 0.5], [0.0, 1.0]], dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_zero_gradients_give_no_nan(dtype):
    G = correlated_grads(3, 30, 30, dtype)
    G[1] = 0
    out = project_conflicting(G, order=[0, 1, 2])
    assert torch.isfinite(out).all()
    assert torch.equal(out[1], G[1])
    ref = reference(G.double().numpy(), [[0, 1, 2]] * 3)
    np.testing.assert_allclose(out.double().numpy(), ref, atol=1e-5)
    Z = torch.zeros(4, 10, dtype=dtype)
    assert torch.equal(project_conflicting(Z), Z)
    assert torch.equal(pairwise_cosine(Z), torch.zeros(4, 4, dtype=dtype))
    # a row so small that its squared norm underflows to 0 in float32 but whose
    # dot products do not: skipped, not divided by
    tiny = torch.tensor([[1.0, 0.0], [-1e-30, 1e-30]], dtype=torch.float32)
    assert float((tiny[1] * tiny[1]).sum()) == 0.0 and float(tiny[0] @ tiny[1]) < 0
    assert torch.isfinite(project_conflicting(tiny)).all()


def test_bad_order_is_rejected():
    G = torch.randn(3, 4)
    with pytest.raises(ValueError):
        project_conflicting(G, order=[0, 1])
    with pytest.raises(ValueError):
        project_conflicting(G, order=[[1, 2], [0, 2]])


# ---------------------------------------------------------------- torchjd oracle
def torchjd_pcgrad(G):
    from torchjd.aggregation import PCGrad
    return PCGrad()(G)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_torchjd_two_tasks(seed):
    pytest.importorskip("torchjd")
    G = correlated_grads(2, 64, 40 + seed)
    torch.manual_seed(seed)
    expected = torchjd_pcgrad(G)
    for order in ([0, 1], [1, 0]):  # for T = 2 the order cannot matter
        got = project_conflicting(G, order=order).sum(0)
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("T,seed", [(3, 3), (3, 4), (4, 5), (4, 6)])
def test_torchjd_same_seed_same_orders(T, seed):
    pytest.importorskip("torchjd")
    G = correlated_grads(T, 64, 50 + seed)
    torch.manual_seed(seed)
    expected = torchjd_pcgrad(G)
    torch.manual_seed(seed)
    got = project_conflicting(G).sum(0)  # generator=None: the global generator, as torchjd
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)


def test_order_matters_for_three_tasks():
    """Why the torchjd comparison for T > 2 needs the same orders: here they differ."""
    G = torch.tensor([[1.0, 0.0], [-0.9, 1.0], [-0.2, -1.0]], dtype=torch.float64)
    a = project_conflicting(G, order=[0, 1, 2]).sum(0)
    b = project_conflicting(G, order=[2, 1, 0]).sum(0)
    assert (a - b).abs().max() > 1e-3
    # and each is still the float64 reference for its order
    np.testing.assert_allclose(a.numpy(), reference(G.numpy(), [[0, 1, 2]] * 3).sum(0))
    np.testing.assert_allclose(b.numpy(), reference(G.numpy(), [[2, 1, 0]] * 3).sum(0))


# ---------------------------------------------------------------- statistics
def test_pairwise_cosine_and_conflict_stats():
    G = correlated_grads(4, 100, 60)
    G[3] = 0
    A = G.numpy()
    cos = pairwise_cosine(G).numpy()
    stats = conflict_stats(G)
    for i in range(4):
        for j in range(4):
            ni, nj = np.linalg.norm(A[i]), np.linalg.norm(A[j])
            want = 0.0 if ni == 0 or nj == 0 else A[i] @ A[j] / (ni * nj)
            assert abs(cos[i, j] - want) < 1e-12
            if i < j:
                assert abs(stats["cosine"][(i, j)] - want) < 1e-12
                assert stats["conflict"][(i, j)] == bool(A[i] @ A[j] < 0)
    assert set(stats["cosine"]) == {(i, j) for i in range(4) for j in range(i + 1, 4)}
    assert any(stats["conflict"].values()) and not all(stats["conflict"].values())
    np.testing.assert_allclose(stats["norm"], np.linalg.norm(A, axis=1), rtol=1e-12)


# ---------------------------------------------------------------- pcgrad_backward
class Tiny(nn.Module):
    """A shared trunk and one head per task, float64."""

    def __init__(self, T=3):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 4))
        self.unused = nn.Linear(2, 2)  # shared but reached by no loss: its row is 0
        self.heads = nn.ModuleList(nn.Linear(4, 1) for _ in range(T))

    def shared(self):
        return list(self.trunk.parameters()) + list(self.unused.parameters())

    def losses(self, xs, ys):
        return [((self.heads[t](self.trunk(x)).squeeze(-1) - y) ** 2).mean()
                for t, (x, y) in enumerate(zip(xs, ys))]


def make_tiny(T, seed, same_input=False):
    torch.manual_seed(seed)
    model = Tiny(T).double()
    x0 = torch.randn(8, 5, dtype=torch.float64)
    xs = [x0 if same_input else torch.randn(8, 5, dtype=torch.float64) for _ in range(T)]
    ys = [torch.randn(8, dtype=torch.float64) * (t + 1) for t in range(T)]
    return model, xs, ys


@pytest.mark.parametrize("T,seed,same_input", [(2, 0, True), (3, 1, False), (3, 2, True)])
def test_pcgrad_backward_matches_hand_computation(T, seed, same_input):
    model, xs, ys = make_tiny(T, seed, same_input)
    shared = model.shared()
    # oracle: per-task gradients with autograd.grad, projected by the float64 reference
    losses = model.losses(xs, ys)
    rows, head_grads = [], []
    for t, loss in enumerate(losses):
        gs = torch.autograd.grad(loss, shared, retain_graph=True, allow_unused=True)
        rows.append(torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                               for p, g in zip(shared, gs)]))
        head_grads.append(torch.autograd.grad(loss, list(model.heads[t].parameters()),
                                              retain_graph=True))
    G = torch.stack(rows).numpy()
    orders = randperm_orders(T, 123)
    assert n_projections(G, orders) >= 1, "pick a seed with a conflict"
    want = reference(G, orders).sum(0)

    model.zero_grad(set_to_none=True)
    stats = pcgrad_backward(model.losses(xs, ys), shared,
                            generator=torch.Generator().manual_seed(123))
    got = torch.cat([p.grad.reshape(-1) for p in shared]).numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
    assert np.all(got[-6:] == 0)  # the unused Linear(2, 2): 4 + 2 zeros
    for t in range(T):  # each head holds exactly its own task's gradient
        for p, g in zip(model.heads[t].parameters(), head_grads[t]):
            torch.testing.assert_close(p.grad, g, rtol=0, atol=1e-12)
    for (i, j), c in stats["cosine"].items():
        cos = G[i] @ G[j] / (np.linalg.norm(G[i]) * np.linalg.norm(G[j]))
        assert abs(c - cos) < 1e-12 and stats["conflict"][(i, j)] == bool(cos < 0)


def test_pcgrad_backward_losses_sharing_one_graph():
    """One trunk forward feeding every head: the losses share a graph, which needs
    retain_graph=True (torch's own error otherwise); the result equals the float64 reference
    applied to per-task gradients taken with autograd.grad."""
    model, xs, ys = make_tiny(3, 2, same_input=True)
    shared = model.shared()

    def shared_forward_losses():
        h = model.trunk(xs[0])
        return [((model.heads[t](h).squeeze(-1) - ys[t]) ** 2).mean() for t in range(3)]

    rows = []
    for loss in shared_forward_losses():
        gs = torch.autograd.grad(loss, shared, retain_graph=True, allow_unused=True)
        rows.append(torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                               for p, g in zip(shared, gs)]))
    G = torch.stack(rows).numpy()
    orders = randperm_orders(3, 5)
    assert n_projections(G, orders) >= 1, "pick a seed with a conflict"
    want = reference(G, orders).sum(0)

    model.zero_grad(set_to_none=True)
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        pcgrad_backward(shared_forward_losses(), shared)
    model.zero_grad(set_to_none=True)
    pcgrad_backward(shared_forward_losses(), shared, generator=torch.Generator().manual_seed(5),
                    retain_graph=True)
    got = torch.cat([p.grad.reshape(-1) for p in shared]).numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)


def test_pcgrad_backward_mean_and_accumulation():
    T = 3
    model, xs, ys = make_tiny(T, 1)
    shared = model.shared()
    model.zero_grad(set_to_none=True)
    pcgrad_backward(model.losses(xs, ys), shared, generator=torch.Generator().manual_seed(0))
    summed = [p.grad.clone() for p in shared]
    heads = [p.grad.clone() for p in model.heads.parameters()]

    model.zero_grad(set_to_none=True)
    pcgrad_backward(model.losses(xs, ys), shared, reduction="mean",
                    generator=torch.Generator().manual_seed(0))
    for p, s in zip(shared, summed):  # the encoder's step shrinks by T ...
        torch.testing.assert_close(p.grad, s / T, rtol=1e-12, atol=1e-15)
    for p, h in zip(model.heads.parameters(), heads):  # ... the heads' does not
        torch.testing.assert_close(p.grad, h, rtol=0, atol=0)

    # a gradient already in .grad is added to (micro-batch accumulation)
    model.zero_grad(set_to_none=True)
    for p in shared:
        p.grad = torch.ones_like(p)
    pcgrad_backward(model.losses(xs, ys), shared, generator=torch.Generator().manual_seed(0))
    for p, s in zip(shared, summed):
        torch.testing.assert_close(p.grad, s + 1, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError):
        pcgrad_backward(model.losses(xs, ys), shared, reduction="max")


def test_pcgrad_backward_without_conflict_is_plain_backward():
    """No conflict -> PCGrad (sum) is the gradient of the summed loss."""
    torch.manual_seed(3)
    w = nn.Parameter(torch.randn(4, dtype=torch.float64))
    a, b = torch.randn(4, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    losses = [((w - a) ** 2).sum(), ((w - a - 0.01 * b) ** 2).sum()]  # nearly aligned
    stats = pcgrad_backward(losses, [w])
    assert stats["conflict"] == {(0, 1): False}
    torch.testing.assert_close(w.grad, 4 * (w - a).detach() - 0.02 * b)


# ---------------------------------------------------------------- a toy where the sum stalls
def rosenbrock_tasks(x):
    """Rosenbrock's function as two tasks: a steep curved valley and a gentle pull."""
    x1, x2 = float(x[0]), float(x[1])
    losses = (100 * (x2 - x1 ** 2) ** 2, (1 - x1) ** 2)
    G = torch.tensor([[-400 * x1 * (x2 - x1 ** 2), 200 * (x2 - x1 ** 2)],
                      [-2 * (1 - x1), 0.0]], dtype=torch.float64)
    return losses, G


def descend(mode, steps, lr=4e-3, x0=(-1.2, 1.0)):
    x = torch.tensor(x0, dtype=torch.float64)
    for _ in range(steps):
        _, G = rosenbrock_tasks(x)
        g = G.sum(0) if mode == "sum" else project_conflicting(G, order=[0, 1]).sum(0)
        x = x - lr * g
    return rosenbrock_tasks(x)[0]


def test_summed_gradient_stalls_where_pcgrad_progresses():
    """With lr = 4e-3, gradient descent on the sum ends in a two-step cycle across the
    valley (the steep task's walls bounce it; which of the two points it is on after n
    steps depends on rounding, so both parities are checked); PCGrad drops the part of
    the wall gradient that fights the gentle task and reaches the minimum."""
    for steps in (3000, 3001):
        s = descend("sum", steps)
        assert s[0] > 0.3 and s[1] > 0.1, (steps, s)
    p1, p3 = descend("pcgrad", 1000), descend("pcgrad", 3000)
    assert p1[0] < 1e-8 and p1[1] < 0.01, p1
    assert p3[0] < p1[0] and p3[1] < 1e-4, p3


# ---------------------------------------------------------------- notebook 05's check cell
NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "05_pcgrad.ipynb"
CORRECT = """pc = grads.clone()
for i in range(grads.shape[0]):
    for j in orders[i]:
        if j == i:
            continue
        dot = pc[i] @ grads[j]
        if dot < 0 and grads[j] @ grads[j] > 0:
            pc[i] = pc[i] - dot / (grads[j] @ grads[j]) * grads[j]
return pc"""
WRONG = {  # every one fails the visible check alone, and so the full one
    "stub": "# YOUR CODE HERE\nraise NotImplementedError()",
    "onto the projected g_j": CORRECT.replace("grads[j]", "pc[j]"),
    "wrong sign": CORRECT.replace("pc[i] - dot", "pc[i] + dot"),
    "projects without a conflict": CORRECT.replace("dot < 0 and ", ""),
    "changes its input": CORRECT.replace("pc = grads.clone()", "pc = grads"),
    "returns the input": "return grads",
}


def run_exercise_cells(body, hidden=True):
    """Exec 05's setup cells up to the exercise, the exercise with `body` as its
    solution, and its check cell (without the hidden block when hidden=False)."""
    import matplotlib
    import nbformat
    matplotlib.use("Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    cells = {c.id: c for c in nb.cells}
    ns = {}
    for cell in nb.cells:
        if cell.id == "ex-project":
            break
        if cell.cell_type == "code" and "setup" in cell.metadata.get("tags", []):
            exec(compile(cell.source, cell.id, "exec"), ns)
    ex = cells["ex-project"].source
    m = re.search(r"( *)### BEGIN SOLUTION\n.*?### END SOLUTION", ex, re.S)
    new_body = "\n".join(m.group(1) + line for line in body.splitlines())
    exec(compile(ex[:m.start()] + new_body + ex[m.end():], "ex-project", "exec"), ns)
    check = cells["check-project"].source
    if not hidden:
        check = re.sub(r"### BEGIN HIDDEN CHECKS.*?### END HIDDEN CHECKS", "", check, flags=re.S)
    exec(compile(check, "check-project", "exec"), ns)


def test_notebook_check_passes_the_solution():
    import nbformat
    cells = {c.id: c for c in nbformat.read(NOTEBOOK, as_version=4).cells}
    assert "exercise" in cells["ex-project"].metadata["tags"]
    assert "check" in cells["check-project"].metadata["tags"]
    run_exercise_cells(CORRECT)
    run_exercise_cells(CORRECT, hidden=False)
    own = re.search(r"### BEGIN SOLUTION\n(.*?)\n *### END SOLUTION",
                    cells["ex-project"].source, re.S).group(1)
    run_exercise_cells(textwrap.dedent(own))  # the notebook's own solution


@pytest.mark.parametrize("name", list(WRONG))
@pytest.mark.parametrize("hidden", [True, False])
def test_notebook_check_fails_wrong_answers(name, hidden):
    with pytest.raises(AssertionError):
        run_exercise_cells(WRONG[name], hidden=hidden)

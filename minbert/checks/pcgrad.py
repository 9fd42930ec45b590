"""Check of notebook 05_pcgrad: PCGrad's projection (Yu et al. 2020, Algorithm 1).

fn(grads (T, P), orders) -> the projected rows. Oracle: Algorithm 1 written out in float64
numpy, one row at a time, on original gradients built to conflict; the hidden part adds an
example worked out by hand, rows that do not conflict, a zero gradient and four tasks.
"""
from __future__ import annotations

import numpy as np
import torch

from ._common import _call, _generator, verdict

__all__ = ["check_project_conflicting"]


def _reference(G, orders):
    """Algorithm 1: each row projected, in its order, onto the normal plane of every ORIGINAL
    row it conflicts with (negative dot product, non-zero norm)."""
    G = np.asarray(G, dtype=np.float64)
    out = G.copy()
    for i in range(len(G)):
        g = G[i].copy()
        for j in orders[i]:
            d, n = float(g @ G[j]), float(G[j] @ G[j])
            if j != i and d < 0 and n > 0:
                g = g - d / n * G[j]
        out[i] = g
    return out


def _conflicting(gen):
    """Three rows of 40 where tasks 0 and 1 conflict, and task 2 with both of them."""
    G = torch.randn(3, 40, generator=gen, dtype=torch.float64)
    G[1] = -0.7 * G[0] + 0.5 * G[1]
    G[2] = -0.4 * G[0] - 0.6 * G[1] + 0.3 * G[2]
    return G, [[1, 2], [2, 0], [0, 1]]


def _err(got, G, orders):
    return np.abs(got.double().numpy() - _reference(G, orders)).max()


@verdict
def check_project_conflicting(fn, *, hidden=False, seed=5):
    """Visible: three conflicting rows against the reference, input left unchanged.
    hidden=True: a hand-worked pair, no conflict, a zero row, four tasks."""
    gen = _generator(seed)
    G, orders = _conflicting(gen)
    if not hidden:
        G0 = G.clone()
        got = _call(fn, G, orders)
        assert isinstance(got, torch.Tensor) and got.shape == (3, 40), \
            f"expected a (3, 40) tensor, got {getattr(got, 'shape', type(got))}"
        assert torch.equal(G, G0), "my_project_conflicting changed its input: work on a copy (grads.clone())"
        err = _err(got, G, orders)
        assert err < 1e-6, (f"projected rows differ from the float64 reference by {err:.3g}. "
                            "Project onto the ORIGINAL g_j, only when the dot product is negative, "
                            "and subtract (dot / ||g_j||^2) g_j.")
        return
    # BEGIN HIDDEN CHECK (the student release keeps only a raise: course.releasing)
    # by hand: g1 = (1, 0), g2 = (-1, 1) -> (0.5, 0.5) and (0, 1)
    h = _call(fn, torch.tensor([[1.0, 0.0], [-1.0, 1.0]], dtype=torch.float64), [[1], [0]])
    assert torch.allclose(h, torch.tensor([[0.5, 0.5], [0.0, 1.0]], dtype=torch.float64)), \
        f"for g1 = (1, 0), g2 = (-1, 1) expected rows (0.5, 0.5) and (0, 1), got {h.tolist()}"
    # no conflict: nothing changes
    nc = torch.tensor([[1.0, 2.0], [2.0, 1.0]], dtype=torch.float64)
    assert torch.allclose(_call(fn, nc, [[1], [0]]), nc), "rows that do not conflict must not change"
    # a zero gradient: no NaN, and it stays zero
    z = G.clone()
    z[2] = 0
    zout = _call(fn, z, orders)
    assert torch.isfinite(zout).all(), "a zero gradient row gave inf/nan: skip j when ||g_j||^2 == 0"
    assert _err(zout, z, orders) < 1e-6
    # four tasks, other orders
    G4 = torch.randn(4, 25, generator=gen, dtype=torch.float64)
    G4[1] -= 1.5 * G4[0]
    G4[3] -= 1.2 * G4[2]
    o4 = [[3, 1, 2], [2, 0, 3], [1, 3, 0], [0, 2, 1]]
    assert _err(_call(fn, G4, o4), G4, o4) < 1e-6, "four tasks: rows differ from the reference"
    # END HIDDEN CHECK

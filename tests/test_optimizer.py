"""minbert.AdamW against a float64 oracle of the CS224N formulas, written here."""
import io
import math

import numpy as np
import pytest
import torch

from minbert import AdamW


def oracle(p0, grads, lr, b1, b2, eps, wd, correct_bias):
    p, m, v = p0.astype(np.float64).copy(), np.zeros_like(p0, np.float64), np.zeros_like(p0, np.float64)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        alpha = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t) if correct_bias else lr
        p = p - alpha * m / (np.sqrt(v) + eps)
        p = p - lr * wd * p
    return p


@pytest.mark.parametrize("correct_bias", [True, False])
def test_matches_formulas_over_150_steps(correct_bias):
    rng = np.random.default_rng(0)
    p0 = rng.normal(size=(5, 7))
    # gradients of varying scale, some near zero, so eps and the bias correction matter
    grads = [rng.normal(size=p0.shape) * rng.choice([1e-4, 1e-2, 1.0]) for _ in range(150)]
    hp = dict(lr=1e-2, b1=0.9, b2=0.999, eps=1e-6, wd=0.1, correct_bias=correct_bias)
    p = torch.nn.Parameter(torch.tensor(p0, dtype=torch.float64))
    opt = AdamW([p], lr=hp["lr"], betas=(hp["b1"], hp["b2"]), eps=hp["eps"],
                weight_decay=hp["wd"], correct_bias=correct_bias)
    for g in grads:
        p.grad = torch.tensor(g)
        opt.step()
    np.testing.assert_allclose(p.detach().numpy(), oracle(p0, grads, **hp), rtol=0, atol=1e-6)


def test_float32_close_to_oracle():
    rng = np.random.default_rng(1)
    p0 = rng.normal(size=100).astype(np.float32)
    grads = [rng.normal(size=100).astype(np.float32) for _ in range(100)]
    p = torch.nn.Parameter(torch.tensor(p0))
    opt = AdamW([p], lr=1e-3, weight_decay=0.01)
    for g in grads:
        p.grad = torch.tensor(g)
        opt.step()
    ref = oracle(p0, grads, 1e-3, 0.9, 0.999, 1e-6, 0.01, True)
    # float32 rounding over 100 steps: ~5e-6; a wrong formula is off by ~1e-4 or more
    np.testing.assert_allclose(p.detach().numpy(), ref, atol=2e-5)


def test_hand_computed_first_step():
    # t=1: m = 0.1 g, v = 0.001 g^2, alpha = lr sqrt(0.001)/0.1; for g = 2:
    # m = 0.2, sqrt(v) = sqrt(0.004) = 0.0632456, step = alpha * 0.2 / (0.0632456 + 1e-6)
    p = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    p.grad = torch.tensor([2.0], dtype=torch.float64)
    AdamW([p], lr=0.1, weight_decay=0.5).step()
    alpha = 0.1 * math.sqrt(0.001) / 0.1
    after_adam = 1.0 - alpha * 0.2 / (math.sqrt(0.004) + 1e-6)
    assert p.item() == pytest.approx(after_adam * (1 - 0.1 * 0.5), abs=1e-12)
    # by calculator: alpha = 0.0316228, step = 0.0316228 * 0.2 / 0.0632466 = 0.0999984,
    # p = (1 - 0.0999984) * (1 - 0.05)
    assert p.item() == pytest.approx(0.8550015, abs=1e-6)


def test_differs_from_torch_adamw():
    """torch.optim.AdamW decays before the step and adds eps after bias correction."""
    a = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    b = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    oa, ob = AdamW([a], lr=0.1, weight_decay=0.1, eps=1e-2), torch.optim.AdamW([b], lr=0.1, weight_decay=0.1, eps=1e-2)
    for _ in range(3):
        a.grad = b.grad = torch.tensor([1e-3, 1.0, -1.0], dtype=torch.float64)
        oa.step(), ob.step()
    assert not torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("kw,bad", [(dict(lr=-1.0), "-1.0"), (dict(betas=(1.0, 0.999)), "1.0"),
                                     (dict(betas=(0.9, -0.1)), "-0.1"), (dict(eps=-1e-8), "-1e-08"),
                                     (dict(weight_decay=-0.5), "-0.5")])
def test_invalid_hyperparameters(kw, bad):
    with pytest.raises(ValueError, match=bad.replace(".", r"\.")):
        AdamW([torch.nn.Parameter(torch.zeros(1))], **kw)


def test_sparse_gradients_raise():
    emb = torch.nn.Embedding(10, 3, sparse=True)
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match="sparse"):
        AdamW(emb.parameters()).step()


def test_state_dict_round_trip():
    torch.manual_seed(0)
    make = lambda: torch.nn.Linear(4, 3)
    m1 = make()
    o1 = AdamW(m1.parameters(), lr=1e-2, weight_decay=0.1)
    x = torch.randn(8, 4)
    for _ in range(5):
        o1.zero_grad(); m1(x).pow(2).sum().backward(); o1.step()
    m2 = make()
    m2.load_state_dict(m1.state_dict())
    o2 = AdamW(m2.parameters(), lr=1e-2, weight_decay=0.1)
    # through bytes, as a checkpoint does (and loadable with weights_only=True)
    buf = io.BytesIO()
    torch.save(o1.state_dict(), buf)
    buf.seek(0)
    o2.load_state_dict(torch.load(buf, weights_only=True))
    for m, o in ((m1, o1), (m2, o2)):
        for _ in range(3):
            o.zero_grad(); m(x).pow(2).sum().backward(); o.step()
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(p1, p2)
    assert o2.state_dict()["state"][0]["step"] == 8

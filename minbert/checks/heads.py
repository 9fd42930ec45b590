"""Checks of notebook 03_heads: the sentiment, paraphrase and similarity heads.

Each head is fn(pooled (B, H), weight, bias, labels) -> (output, loss). Oracles: torch's
F.linear, F.cross_entropy, F.binary_cross_entropy_with_logits and F.mse_loss on the same
inputs, the same inputs scaled by 100 (a loss written as log(exp(z) / sum exp(z)) overflows
there), and one example per head worked out by hand.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._common import _call, _generator, _pair, verdict

__all__ = ["check_sentiment_head", "check_paraphrase_head", "check_similarity_head"]


def _inputs(seed, out_features):
    g = _generator(seed)
    return (torch.randn(6, 8, generator=g), torch.randn(out_features, 8, generator=g),
            torch.randn(out_features, generator=g))


def _run(fn, what, *args):
    return _pair(_call(fn, *args), what)


@verdict
def check_sentiment_head(fn, *, seed=1):
    """fn(pooled, weight (5, H), bias (5,), labels (B,) ints) -> (logits (B, 5), mean loss)."""
    x, W, b = _inputs(seed, 5)
    y = torch.tensor([0, 4, 2, 1, 3, 0])
    what = "(logits, loss)"
    logits, loss = _run(fn, what, x, W, b, y)
    _, big = _run(fn, what, 100 * x, W, b, y)
    _, hand = _run(fn, what, torch.tensor([[1.0, -1.0]]), torch.eye(5, 2), torch.zeros(5),
                   torch.tensor([0]))
    assert tuple(logits.shape) == (6, 5), f"logits should have shape (batch, 5), got {tuple(logits.shape)}"
    assert torch.allclose(logits, F.linear(x, W, b), atol=1e-5), "logits differ from pooled @ W.T + b"
    assert loss.dim() == 0, "the loss should be one number (a 0-d tensor): the mean over the batch"
    want = F.cross_entropy(F.linear(x, W, b), y)
    assert torch.allclose(loss, want, atol=1e-5), \
        f"loss {loss.item():.5f} differs from F.cross_entropy ({want.item():.5f})"
    assert torch.isfinite(big) and torch.allclose(big, F.cross_entropy(F.linear(100 * x, W, b), y),
                                                  rtol=1e-4), \
        "with logits in the hundreds the loss overflows: use logsumexp, not exp/sum/log"
    # by hand: logits (1, -1, 0, 0, 0), gold class 0 -> -log(e / (e + 1/e + 3)) = 0.7568...
    assert abs(hand.item() - (-math.log(math.e / (math.e + math.exp(-1) + 3)))) < 1e-5, \
        f"hand-computed example: expected 0.75679, got {hand.item():.5f}"


def _one_output_head(fn, seed, labels, what, name, want_of, formula):
    """What the paraphrase and similarity checks share: fn on seeded inputs, its (B,) output
    against want_of(pooled @ W.T + b). Returns ((x, W, b), want, loss)."""
    x, W, b = _inputs(seed, 1)
    out, loss = _run(fn, what, x, W, b, labels)
    want = want_of(F.linear(x, W, b).squeeze(-1))
    assert tuple(out.shape) == (6,), \
        f"{name} should have shape (batch,), got {tuple(out.shape)}: squeeze the last dim"
    assert torch.allclose(out, want, atol=1e-5), f"{name} differs from {formula}"
    return (x, W, b), want, loss


@verdict
def check_paraphrase_head(fn, *, seed=2):
    """fn(pooled, weight (1, H), bias (1,), labels (B,) 0./1.) -> (logit (B,), mean BCE)."""
    y = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 0.0])
    (x, W, b), want, loss = _one_output_head(fn, seed, y, "(z, loss)", "z", lambda z: z,
                                             "pooled @ W.T + b")
    _, big = _run(fn, "(z, loss)", 100 * x, W, b, y)
    _, hand = _run(fn, "(z, loss)", torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, 0.0]]),
                   torch.zeros(1), torch.tensor([0.0]))
    assert torch.allclose(loss, F.binary_cross_entropy_with_logits(want, y), atol=1e-5), \
        "loss differs from F.binary_cross_entropy_with_logits (is it the mean over the batch?)"
    assert torch.isfinite(big) and torch.allclose(
        big, F.binary_cross_entropy_with_logits(100 * want - 99 * b, y), rtol=1e-4), \
        "with logits of +-100 the loss is inf or nan: use the max(z, 0) - z y + log1p(exp(-|z|)) form"
    # by hand: logit 2, label 0 -> -log(1 - sigmoid(2)) = log(1 + e^2) = 2.1269...
    assert abs(hand.item() - math.log(1 + math.exp(2))) < 1e-5, \
        f"hand-computed example: expected 2.12693, got {hand.item():.5f}"


@verdict
def check_similarity_head(fn, *, seed=3):
    """fn(pooled, weight (1, H), bias (1,), labels (B,) in 0..5) -> (5 sigmoid(z) (B,), MSE)."""
    y = torch.tensor([0.0, 5.0, 2.4, 3.2, 1.0, 4.6])
    _, want, loss = _one_output_head(fn, seed, y, "(score, loss)", "score",
                                     lambda z: 5 * torch.sigmoid(z), "5 * sigmoid(pooled @ W.T + b)")
    hs, hand = _run(fn, "(score, loss)", torch.zeros(1, 2), torch.ones(1, 2), torch.zeros(1),
                    torch.tensor([4.0]))
    assert torch.allclose(loss, F.mse_loss(want, y), atol=1e-4), "loss differs from F.mse_loss (mean of squares?)"
    # by hand: z = 0 -> score 2.5; gold 4 -> (2.5 - 4)^2 = 2.25
    assert abs(hs.item() - 2.5) < 1e-6 and abs(hand.item() - 2.25) < 1e-5, \
        f"hand-computed example: expected score 2.5 and loss 2.25, got {hs.item():.4f} and {hand.item():.4f}"

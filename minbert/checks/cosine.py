"""Checks of notebook 07_cosine: mean pooling, and Sentence-BERT's cosine-MSE loss.

Oracles: sentence-transformers' Pooling module in "mean" mode and its CosineSimilarityLoss
(which expects labels already in [0, 1]: it is handed score / 5), plus examples worked out
by hand. CosineSimilarityLoss runs a SentenceTransformer on tokenised features; a stand-in
module that hands back given embeddings avoids any model download.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ._common import _call, _generator, verdict

__all__ = ["check_mean_pool", "check_cosine_mse"]


def _padded_states(seed):
    """(hidden (3, 6, 8), mask): padding states of 50 that would dominate an unmasked mean."""
    hidden = torch.randn(3, 6, 8, generator=_generator(seed))
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0]])
    hidden[mask == 0] = 50.0
    return hidden, mask


@verdict
def check_mean_pool(fn, *, hidden=False, seed=0):
    """fn(last_hidden_state (B, T, H), attention_mask (B, T)) -> (B, H). Visible: against
    Pooling(mean). hidden=True: a hand-worked example, and extra padding changes nothing."""
    from sentence_transformers.sentence_transformer.modules.pooling import Pooling

    states, mask = _padded_states(seed)
    want = Pooling(8, pooling_mode="mean")({"token_embeddings": states,
                                            "attention_mask": mask})["sentence_embedding"]
    if not hidden:
        got = _call(fn, states, mask)
        assert isinstance(got, torch.Tensor) and got.shape == (3, 8), \
            f"expected a (3, 8) tensor, got {getattr(got, 'shape', type(got))}"
        assert torch.allclose(got, want, atol=1e-5), \
            "my_mean_pool differs from sentence-transformers' Pooling(mean): average over the tokens with mask 1 only"
        return
    # BEGIN HIDDEN CHECK (the student release keeps only a raise: course.releasing)
    # by hand: the padded third token must not count
    h = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    assert torch.allclose(_call(fn, h, torch.tensor([[1, 1, 0]])), torch.tensor([[2.0, 3.0]])), \
        "the mean of [1, 2] and [3, 4] with the third token padded is [2, 3]"
    # more padding changes nothing
    longer = torch.cat([states, torch.full((3, 3, 8), -9.0)], dim=1)
    longer_mask = torch.cat([mask, torch.zeros(3, 3, dtype=mask.dtype)], dim=1)
    assert torch.allclose(_call(fn, longer, longer_mask), want, atol=1e-5), "extra padding changed the result"
    # END HIDDEN CHECK


class _GivenEmbeddings(nn.Module):
    def forward(self, features):
        return {"sentence_embedding": features["embedding"]}


def _oracle_loss(u, v, score):
    from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss
    # sentence-transformers wants labels in [0, 1]: we hand it score / 5
    return CosineSimilarityLoss(_GivenEmbeddings())([{"embedding": u}, {"embedding": v}], score / 5)


@verdict
def check_cosine_mse(fn, *, hidden=False, seed=0):
    """fn(u (B, H), v (B, H), score_0_5 (B,)) -> scalar mean of (cos - score / 5)^2. Visible:
    against CosineSimilarityLoss. hidden=True: a hand-worked example, and the gradients with
    respect to u and v equal the oracle's."""
    g = _generator(seed)
    u = torch.randn(16, 32, generator=g)
    v = u + torch.randn(16, 32, generator=g)
    score = 5 * torch.rand(16, generator=g)
    if not hidden:
        want = _oracle_loss(u, v, score)
        got = _call(fn, u, v, score)
        assert isinstance(got, torch.Tensor) and got.dim() == 0, "return a scalar tensor (the mean over the batch)"
        assert abs(got.item() - want.item()) < 1e-5, (
            f"my_cosine_mse_loss = {got.item():.6f}, sentence-transformers says {want.item():.6f}. "
            "Did you divide the score by 5, and take the mean (not the sum) over the batch?")
        return
    # BEGIN HIDDEN CHECK (the student release keeps only a raise: course.releasing)
    # by hand: cosines 0, 1/sqrt(2), -1 against targets 0, 1, 0.5
    u2 = torch.tensor([[1.0, 0.0], [1.0, 0.0], [3.0, 4.0]])
    v2 = torch.tensor([[0.0, 2.0], [1.0, 1.0], [-3.0, -4.0]])
    hand = (0.0 + (1 / math.sqrt(2) - 1) ** 2 + (-1 - 0.5) ** 2) / 3
    assert abs(_call(fn, u2, v2, torch.tensor([0.0, 5.0, 2.5])).item() - hand) < 1e-6, \
        f"hand-computed example: expected {hand:.6f}"
    # the gradient flows to both embeddings, as the oracle's does
    ua, va = u.clone().requires_grad_(), v.clone().requires_grad_()
    ub, vb = u.clone().requires_grad_(), v.clone().requires_grad_()
    loss = _call(fn, ua, va, score)
    assert loss.requires_grad, "the loss has no gradient: do not detach u, v or the cosine"
    loss.backward()
    _oracle_loss(ub, vb, score).backward()
    assert ua.grad is not None and torch.allclose(ua.grad, ub.grad, atol=1e-6), "gradient w.r.t. u differs"
    assert va.grad is not None and torch.allclose(va.grad, vb.grad, atol=1e-6), "gradient w.r.t. v differs"
    # END HIDDEN CHECK

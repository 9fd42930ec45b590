"""Sentence-embedding losses for STS (notebook 07_cosine).

Reimers & Gurevych 2019, "Sentence-BERT: Sentence Embeddings using Siamese
BERT-Networks": encode each sentence on its own, mean-pool the token states
into u and v (`minbert.heads.mean_pool`), and train cos(u, v) to match the gold similarity rescaled to
[0, 1] (their CosineSimilarityLoss). Notebook 07 compares this with the
regression head on joint encoding and with torch's CosineEmbeddingLoss on
+-1 targets, the variant the seed project's wording suggests, and shows why
the seed's cosine row collapsed (STS r 0.142).

Shapes: u, v (batch, hidden); scores (batch,) on the STS 0..5 scale.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

STS_MAX = 5.0  # STS-B gold scores run from 0 (unrelated) to 5 (equivalent)


def cosine_mse_loss(u: torch.Tensor, v: torch.Tensor, score_0_5: torch.Tensor,
                    scale: float = STS_MAX) -> torch.Tensor:
    """Sentence-BERT's CosineSimilarityLoss: MSE(cos(u, v), score / scale).

    cos lies in [-1, 1]; the gold score is mapped into [0, 1] first. `scale=1`
    reproduces a bug (MSE between a cosine and raw 0..5 scores): every pair
    scored above 1 then pulls its cosine towards 1, whatever its score
    (notebook 07 trains it to show the collapse)."""
    # Stand-in (07's exercise is the written-out version below): torch's CosineSimilarity module.
    cos = torch.nn.CosineSimilarity(dim=-1)(u, v)  # (B,)
    return F.mse_loss(cos, score_0_5.to(cos.dtype) / scale)


### BEGIN SOLUTION
def cosine_mse_loss(u: torch.Tensor, v: torch.Tensor, score_0_5: torch.Tensor,  # noqa: F811
                    scale: float = STS_MAX) -> torch.Tensor:
    """The written-out loss (notebook 07)."""
    cos = F.cosine_similarity(u, v, dim=-1)  # (B,)
    return F.mse_loss(cos, score_0_5.to(cos.dtype) / scale)
### END SOLUTION


def sign_targets(score_0_5: torch.Tensor, threshold: float = 2.5) -> torch.Tensor:
    """+1 where score >= threshold (similar), -1 otherwise: (B,) float."""
    return torch.where(score_0_5 >= threshold, 1.0, -1.0)


def cosine_embedding_loss(u: torch.Tensor, v: torch.Tensor, score_0_5: torch.Tensor,
                          threshold: float = 2.5, margin: float = 0.0) -> torch.Tensor:
    """torch's CosineEmbeddingLoss with +-1 targets thresholded from the score.

    loss = 1 - cos for similar pairs, max(0, cos - margin) for the others.
    The graded score is thrown away: a 2.6 and a 5.0 pair are both pushed to
    cos 1, and with margin 0 every "dissimilar" pair only to cos <= 0."""
    target = sign_targets(score_0_5, threshold).to(u.dtype)
    return F.cosine_embedding_loss(u, v, target, margin=margin)


def predict_similarity_from_cosine(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Map cos(u, v) back to the 0..5 scale: 5 * clamp(cos, 0, 1).

    This inverts the score / 5 target of `cosine_mse_loss`; negative cosines
    (which that loss never asks for) mean "unrelated", score 0. Pearson r is
    invariant to the factor 5, and the clamp touches only pairs the model
    already calls unrelated."""
    return STS_MAX * F.cosine_similarity(u, v, dim=-1).clamp(0.0, 1.0)

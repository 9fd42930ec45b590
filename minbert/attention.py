"""Attention and its padding mask (notebook 01_attention): the pieces of BertSelfAttention
the learner writes. Each comes as a stand-in (torch's own) and, in a SOLUTION block after
it, the written-out version that replaces it in the repository; the release removes the
blocks (docs/design.md). `attention` runs the learner's saved my_attention when there is
one (minbert.yours).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import yours


def extended_attention_mask(attention_mask: torch.Tensor, dtype) -> torch.Tensor:
    """(batch, seq) of 1 = token / 0 = padding -> additive (batch, 1, 1, seq) mask:
    0 where attended, a large negative number where padded, so that after the
    softmax padded keys get (almost exactly) zero weight."""
    # Stand-in (01's my_padding_mask is the exercise): torch's masked_fill of padded keys.
    padded = (attention_mask == 0)[:, None, None, :]
    return torch.zeros(padded.shape, dtype=dtype, device=padded.device).masked_fill(
        padded, torch.finfo(dtype).min)


### BEGIN SOLUTION
def extended_attention_mask(attention_mask: torch.Tensor, dtype) -> torch.Tensor:  # noqa: F811
    """The written-out additive mask (notebook 01)."""
    mask = attention_mask[:, None, None, :].to(dtype)
    return (1.0 - mask) * torch.finfo(dtype).min
### END SOLUTION


def attention(query, key, value, mask=None, dropout_p=0.0, training=False):
    """softmax(Q K^T / sqrt(d) + mask) V -> (context, probs).
    query/key/value: (batch, heads, seq, head_size); mask additive, broadcastable.

    Yours (notebook 01's my_attention, saved with minbert.yours.save) where saved; it takes
    no dropout argument, so with it the probabilities are not dropped out in training (the
    other dropouts of the layer still are). Else a stand-in: torch's
    scaled_dot_product_attention, whose probabilities are its output for value = identity."""
    mine = yours.get("attention")
    if mine is not None:
        return mine(query, key, value, mask)
    n = key.size(-2)
    eye = torch.eye(n, dtype=value.dtype, device=value.device).expand(*query.shape[:-2], n, n)
    probs = F.dropout(F.scaled_dot_product_attention(query, key, eye, attn_mask=mask),
                      p=dropout_p, training=training)  # (b, h, s, s)
    return probs @ value, probs


### BEGIN SOLUTION
def attention(query, key, value, mask=None, dropout_p=0.0, training=False):  # noqa: F811
    """softmax(Q K^T / sqrt(d) + mask) V, the written-out version (notebook 01)."""
    scores = query @ key.transpose(-1, -2) / math.sqrt(query.size(-1))  # (b, h, s, s)
    if mask is not None:
        scores = scores + mask
    probs = scores.softmax(dim=-1)
    probs = F.dropout(probs, p=dropout_p, training=training)
    return probs @ value, probs
### END SOLUTION

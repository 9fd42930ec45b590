"""Checks of notebook 06_mlm: BERT's masking rule, and the MLM head.

Masking (Devlin et al. 2019): counted by hand over more than 100,000 tokens. With 128k
eligible tokens the share chosen has a standard deviation of 0.1 percentage points and the
80/10/10 split about 0.3, so +-1 point is wide. The head: transformers'
BertLMPredictionHead with every weight random (LayerNorm included).
"""
from __future__ import annotations

import torch

from ._common import _call, _generator, _pair, verdict

__all__ = ["check_mask_tokens", "check_mlm_head"]

# Ids of BERT's special tokens in the uncased vocabulary (MiniLM uses the same one),
# written out here rather than read from a tokenizer.
PAD, UNK, CLS, SEP, MASK = 0, 100, 101, 102, 103
VOCAB_SIZE = 30522


def _padded_rows(gen, rows, seq):
    """(ids, attention_mask): random ordinary ids, [CLS] first, [SEP] last, padded after."""
    ids = torch.randint(1000, 30000, (rows, seq), generator=gen)
    length = torch.randint(seq // 4, seq + 1, (rows,), generator=gen)
    attn = (torch.arange(seq)[None, :] < length[:, None]).long()
    ids[:, 0] = CLS
    ids[torch.arange(rows), length - 1] = SEP
    ids[attn == 0] = PAD
    return ids, attn


@verdict
def check_mask_tokens(fn, *, rows=400, seq=512, seed=0):
    """fn(input_ids, attention_mask, special_ids, vocab_size, mask_token_id, generator)
    -> (masked_input_ids, labels). Prints the measured shares (chosen, [MASK], random, kept)."""
    ids, attn = _padded_rows(_generator(seed), rows, seq)
    orig = ids.clone()
    special = [PAD, UNK, CLS, SEP, MASK]
    what = "(masked_input_ids, labels)"
    masked, labels = _pair(_call(fn, ids, attn, special, VOCAB_SIZE, MASK, _generator(1)), what)
    assert masked.shape == ids.shape and labels.shape == ids.shape, "both outputs are (B, T)"
    assert torch.equal(ids, orig), "do not modify input_ids in place: work on a clone"
    eligible = (attn == 1) & (ids != PAD) & (ids != CLS) & (ids != SEP)
    chosen = labels != -100
    assert not chosen[ids == CLS].any() and not chosen[ids == SEP].any(), \
        "a [CLS] or [SEP] token was chosen: special tokens are never masked"
    assert not chosen[attn == 0].any(), "a padding position was chosen"
    assert torch.equal(labels[chosen], ids[chosen]), "labels must hold the ORIGINAL id where chosen"
    assert torch.equal(masked[~chosen], ids[~chosen]), \
        "tokens that were not chosen must stay as they are (and have label -100)"
    n = chosen.sum().item()
    share = n / eligible.sum().item()
    to_mask = (masked[chosen] == MASK).sum().item() / n
    kept = (masked[chosen] == ids[chosen]).sum().item() / n
    random = 1 - to_mask - kept
    print(f"chosen {100 * share:.2f}%: [MASK] {100 * to_mask:.2f}%, random {100 * random:.2f}%, "
          f"unchanged {100 * kept:.2f}% (expected 15%: 80 / 10 / 10, each within 1 point)")
    assert abs(share - 0.15) < 0.01, f"{100 * share:.1f}% of the eligible tokens chosen, expected 15%"
    assert abs(to_mask - 0.8) < 0.01, f"{100 * to_mask:.1f}% of the chosen became [MASK], expected 80%"
    assert abs(random - 0.1) < 0.01, f"{100 * random:.1f}% of the chosen became a random id, expected 10%"
    assert abs(kept - 0.1) < 0.01, f"{100 * kept:.1f}% of the chosen were left unchanged, expected 10%"
    again = _pair(_call(fn, ids, attn, special, VOCAB_SIZE, MASK, _generator(1)), what)
    assert torch.equal(again[0], masked) and torch.equal(again[1], labels), \
        "the same generator seed must give the same masks: draw everything from `generator`"


@verdict
def check_mlm_head(fn, *, vocab=50, hidden=16, seed=0):
    """fn(hidden_states, dense, layer_norm, word_embeddings, bias) -> (B, T, V) logits,
    against transformers' BertLMPredictionHead holding the same (random) weights."""
    import transformers
    from transformers.models.bert.modeling_bert import BertLMPredictionHead

    cfg = transformers.BertConfig(vocab_size=vocab, hidden_size=hidden, hidden_act="gelu")
    head = BertLMPredictionHead(cfg).eval()
    g = _generator(seed)
    with torch.no_grad():
        for p in head.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    h = torch.randn(2, 5, hidden, generator=g)
    t = head.transform
    with torch.no_grad():
        got = _call(fn, h, t.dense, t.LayerNorm, head.decoder.weight, head.decoder.bias)
        want = head(h)
    assert isinstance(got, torch.Tensor), f"return the logits tensor, got {type(got).__name__}"
    assert got.shape == (2, 5, vocab), f"logits have shape {tuple(got.shape)}, expected (2, 5, {vocab})"
    diff = (got - want).abs().max().item()
    assert diff < 1e-5, (f"logits differ from transformers' by up to {diff:.3g}: order is dense, "
                         "GELU, LayerNorm, then @ embeddings.T + bias")

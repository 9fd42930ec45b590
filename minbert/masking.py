"""BERT's masking rule, and masked batches whose masks do not depend on the batch (notebook 06).

Devlin et al. 2019, "BERT", section 3.1 and appendix A.1: 15 % of the tokens are chosen; a
chosen token becomes [MASK] (80 %), a random token (10 %) or stays (10 %). `mlm.py` trains
on them (continued pre-training); `mlm_head.BertForMLM` predicts them.
"""
from __future__ import annotations

import torch

from .mlm_head import IGNORE


def mask_tokens(input_ids, attention_mask=None, special_ids=None, vocab_size=None,
                mask_token_id=None, generator=None, mlm_probability=0.15):
    """BERT's masking rule -> (masked input_ids, labels).

    Each real (attention_mask 1), non-special token is chosen with probability
    `mlm_probability`; a chosen token becomes [MASK] with p 0.8, a uniformly random
    vocabulary id with p 0.1, and stays as it is with p 0.1. labels hold the original id
    at chosen positions and -100 elsewhere. `special_ids` is a collection of ids or a
    tokenizer (then its special ids, [MASK] id and vocabulary size are used). Every draw
    comes from `generator`, so a seeded torch.Generator gives the same masks every run."""
    if hasattr(special_ids, "all_special_ids"):  # a tokenizer
        tok = special_ids
        special_ids = tok.all_special_ids
        vocab_size = vocab_size or len(tok)
        mask_token_id = tok.mask_token_id if mask_token_id is None else mask_token_id
    if vocab_size is None or mask_token_id is None:
        raise ValueError("mask_tokens needs vocab_size and mask_token_id (or a tokenizer)")
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    special = torch.tensor(list(special_ids or []), dtype=input_ids.dtype)
    can_mask = attention_mask.bool() & ~torch.isin(input_ids, special)
    masked, chosen = apply_rule(input_ids, can_mask, (vocab_size, mask_token_id), generator,
                                mlm_probability)
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE))
    return masked, labels


def apply_rule(input_ids, can_mask, vocab_and_mask_id, generator, mlm_probability):
    """-> (masked input_ids, chosen). Stand-in (06's exercise is the written-out version
    below): the rule as transformers' DataCollatorForLanguageModeling draws it (Bernoulli
    choices: 0.8 of the chosen masked, then half of the rest random), from `generator`."""
    vocab_size, mask_token_id = vocab_and_mask_id
    coin = lambda p, where: torch.bernoulli(  # noqa: E731
        torch.full(input_ids.shape, p), generator=generator).bool() & where
    chosen = coin(mlm_probability, can_mask)
    to_mask = coin(0.8, chosen)
    to_random = coin(0.5, chosen & ~to_mask)
    masked = torch.where(to_mask, mask_token_id, input_ids)
    others = torch.randint(0, vocab_size, input_ids.shape, generator=generator,
                           dtype=input_ids.dtype)
    return torch.where(to_random, others, masked), chosen


### BEGIN SOLUTION
def apply_rule(input_ids, can_mask, vocab_and_mask_id, generator, mlm_probability):  # noqa: F811
    """The written-out rule (notebook 06)."""
    vocab_size, mask_token_id = vocab_and_mask_id
    draw = lambda: torch.rand(input_ids.shape, generator=generator)  # noqa: E731
    chosen = (draw() < mlm_probability) & can_mask
    u = draw()  # one draw splits the chosen tokens 80 / 10 / 10
    to_mask = chosen & (u < 0.8)
    to_random = chosen & (u >= 0.8) & (u < 0.9)
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator)
    masked = input_ids.clone()
    masked[to_mask] = mask_token_id
    masked[to_random] = random_ids[to_random]
    return masked, chosen
### END SOLUTION


def encode(texts, tokenizer, max_length=128) -> list[torch.Tensor]:
    """Each text -> its ids ([CLS] ... [SEP], truncated), one 1-D tensor per text."""
    enc = tokenizer(list(texts), truncation=True, max_length=max_length)
    return [torch.tensor(ids) for ids in enc["input_ids"]]


def masked_batch(seqs, tokenizer, seeds, mlm_probability=0.15) -> dict:
    """Mask each sequence with its own generator (seeded by `seeds`), then pad. Masks thus do
    not depend on batch size or padding: batch 8 and 2 x 4 see the same masked tokens."""
    pad = tokenizer.pad_token_id
    n = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), n), pad, dtype=torch.long)
    labels = torch.full((len(seqs), n), IGNORE, dtype=torch.long)
    attn = torch.zeros((len(seqs), n), dtype=torch.long)
    for i, (s, seed) in enumerate(zip(seqs, seeds)):
        g = torch.Generator().manual_seed(int(seed))
        m, lab = mask_tokens(s[None], None, tokenizer, generator=g, mlm_probability=mlm_probability)
        ids[i, :len(s)], labels[i, :len(s)], attn[i, :len(s)] = m[0], lab[0], 1
    return {"input_ids": ids, "attention_mask": attn, "labels": labels}

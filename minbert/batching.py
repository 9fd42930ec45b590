"""Batching for BERT: `make_loader` turns `Example`s (minbert/data.py) into a DataLoader of
dict batches, tokenised per batch; `EpochSampler` gives each epoch its reproducible order.
The course reaches both as `data.make_loader` and `data.EpochSampler` (notebook 03_heads)."""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Sampler

from .config import check_choice

PAIR_MODES = ("joint", "separate")  # how make_loader encodes a pair (see heads.py)


class EpochSampler(Sampler[int]):
    """File order, or a permutation from torch.Generator seeded with seed + epoch. Each pass
    uses the current epoch and then advances it (three passes, three reproducible orders);
    `set_epoch(e)` before a pass gives exactly the order an uninterrupted run saw in epoch e."""

    def __init__(self, n: int, shuffle: bool, seed: int):
        self.n, self.shuffle, self.seed, self.epoch = n, shuffle, seed, 0

    def set_epoch(self, epoch: int):
        self.epoch = epoch

    def __len__(self):
        return self.n

    def __iter__(self):
        epoch, self.epoch = self.epoch, self.epoch + 1
        if not self.shuffle:
            return iter(range(self.n))
        g = torch.Generator().manual_seed(self.seed + epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())


def make_loader(examples, tokenizer, batch_size, *, shuffle=False, seed=0, max_length=128,
                pair_mode="joint") -> DataLoader:
    """A DataLoader of dict batches (keys below; docs/design.md). Tokenisation happens per batch
    in collate, padded to the longest sequence in the batch and truncated to max_length.
    Pairs: pair_mode="joint" encodes [CLS] a [SEP] b [SEP] (token_type_ids 0 then 1);
    "separate" encodes each sentence alone (keys *_1 and *_2, for Sentence-BERT style).
    labels: long for single sentences (SST, CFIMDB), float for pairs (Quora 0./1. for BCE,
    STS 0..5); absent when the examples have no labels. Order: see EpochSampler."""
    examples = list(examples)
    if not examples:
        raise ValueError("make_loader: expected at least one example, got none")
    check_choice("pair_mode", pair_mode, PAIR_MODES)
    is_pair = examples[0].text2 is not None
    labelled = examples[0].label is not None
    if any((e.text2 is not None) != is_pair or (e.label is not None) != labelled for e in examples):
        raise ValueError("make_loader: mix of pair and single-sentence, or labelled and "
                         "unlabelled examples; build one loader per task and split")
    label_dtype = torch.float if is_pair else torch.long

    def encode(a, b=None, suffix=""):  # suffix: "_1" / "_2" for separately encoded pairs
        enc = tokenizer(a, b, padding=True, truncation=True, max_length=max_length,
                        return_tensors="pt", return_token_type_ids=True, return_attention_mask=True)
        return {k + suffix: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids")}

    def collate(batch):
        out = {"ids": [e.id for e in batch]}
        texts = [e.text for e in batch]
        if is_pair and pair_mode == "separate":
            out |= encode(texts, suffix="_1") | encode([e.text2 for e in batch], suffix="_2")
        else:
            out |= encode(texts, [e.text2 for e in batch] if is_pair else None)
        if labelled:
            out["labels"] = torch.tensor([e.label for e in batch], dtype=label_dtype)
        return out

    sampler = EpochSampler(len(examples), shuffle, seed)
    return DataLoader(examples, batch_size=batch_size, sampler=sampler,
                      collate_fn=collate, num_workers=0)

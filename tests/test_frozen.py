"""Frozen-encoder rows train their heads on vectors encoded once (minbert.frozen): the same
numbers as recomputing the encoder every epoch, with one encoder pass per example."""
from dataclasses import replace

import pytest

import minbert.model
import minbert.train as T


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    pass


def count_encoded(monkeypatch):
    """Count the sentences (rows of input_ids) that go through any BertModel.forward."""
    seen = {"rows": 0}
    real = minbert.model.BertModel.forward

    def forward(self, input_ids, *a, **k):
        seen["rows"] += input_ids.shape[0]
        return real(self, input_ids, *a, **k)
    monkeypatch.setattr(minbert.model.BertModel, "forward", forward)
    return seen


@pytest.mark.parametrize("pair_mode", ["joint", "separate"])
def test_cached_frozen_run_equals_the_uncached_one(tiny, data_root, monkeypatch, pair_mode):
    c = T.TrainConfig(mode="multitask", encoder="frozen", model=str(tiny), data=str(data_root),
                      epochs=3, batch_size=8, eval_batch_size=16, max_length=32, n_train=24,
                      n_dev=16, seed=1, pair_mode=pair_mode, pooling="mean", head_dropout=0.3,
                      head_lr=None, evals_per_epoch=1, schedule="shortest", lr_decay="constant")
    seen = count_encoded(monkeypatch)
    plain = T.run(replace(c, cache_frozen=False), None, progress=False)
    per_sentence = 2 if pair_mode == "separate" else 1
    # uncached: every train example every epoch + every dev example every epoch
    examples = 3 * (24 + 16)
    pairs = 2 * 3 * (24 + 16)  # quora and sts
    assert seen["rows"] == 3 * (examples // 3 + per_sentence * pairs // 3)
    seen["rows"] = 0
    cached = T.run(c, None, progress=False)
    assert seen["rows"] == (24 + 16) + per_sentence * 2 * (24 + 16)  # each example once
    for t in ("sst", "quora", "sts"):
        m = "pearson" if t == "sts" else "acc"
        assert cached["dev"][t][m] == pytest.approx(plain["dev"][t][m], abs=1e-6), t
    assert cached["steps"] == plain["steps"]


def test_cache_refuses_a_trained_encoder(tiny):
    from minbert.frozen import FeatureCache
    from minbert.heads import MultitaskBERT
    from minbert.pretrained import load_pretrained
    bert, _ = load_pretrained(str(tiny))
    with pytest.raises(ValueError, match="frozen"):
        FeatureCache(MultitaskBERT(bert, encoder="finetune"))

"""minbert.trainer: the loop trains a model the caller built, whatever sits under the heads.

The oracle for "it trained" is the model's own loss on its training batches, recomputed in
eval mode before and after by a plain loop here (no trainer code): it must fall. The
models are transformers' BertModel under minbert's heads (not minbert's encoder) and a
20-line bag-of-words model that is no BERT at all."""
import pytest
import torch
import torch.nn.functional as F
import transformers
from torch import nn

from minbert import data
from minbert.heads import MultitaskBERT
from minbert.pretrained import load_tokenizer
from minbert.trainer import Trainer, TrainerConfig


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    pass


@torch.no_grad()
def mean_loss(model, loaders) -> float:
    model.eval()
    losses = [model.forward_loss(t, b)[0].item() for t, ld in loaders.items() for b in ld]
    return sum(losses) / len(losses)


def loaders(tiny, data_root, pair_mode="separate", n=32):
    tok = load_tokenizer(tiny)
    return {t: data.make_loader(data.subset(data.load(t, "train", data_root), n, seed=0), tok,
                                8, shuffle=True, seed=0, max_length=32, pair_mode=pair_mode)
            for t in ("sst", "sts")}


@pytest.mark.parametrize("mode", ["multitask", "pcgrad"])
def test_trainer_fits_transformers_bert_under_the_heads(tiny, data_root, mode):
    torch.manual_seed(0)
    bert = transformers.BertModel.from_pretrained(str(tiny))  # transformers' own module
    model = MultitaskBERT(bert, pooling="mean", pair_mode="separate")
    lds = loaders(tiny, data_root)
    before = mean_loss(model, lds)
    config = TrainerConfig(mode=mode, epochs=4, lr=1e-3, schedule="shortest")
    state = Trainer(model, lds, config).fit()
    after = mean_loss(model, lds)
    assert type(model.bert) is transformers.BertModel
    assert state.epoch == 4 and state.step == 4 * 4 * (2 if mode == "multitask" else 1)
    assert after < 0.8 * before, (before, after)
    assert len(state.history) == 4 and set(state.history[0]["train"]) == {"sst", "sts"}
    assert "conflict" in state.history[0]  # two tasks, shared encoder: conflicts logged


def test_a_zero_learning_rate_leaves_the_loss_where_it_was(tiny, data_root):
    """The check above can fail: the same run at lr 0 does not lower the loss."""
    torch.manual_seed(0)
    model = MultitaskBERT(transformers.BertModel.from_pretrained(str(tiny)), pooling="mean",
                          pair_mode="separate")
    lds = loaders(tiny, data_root)
    before = mean_loss(model, lds)
    Trainer(model, lds, TrainerConfig(epochs=2, lr=0.0)).fit()
    assert mean_loss(model, lds) == pytest.approx(before, rel=1e-6)


class BagOfWords(nn.Module):
    """No BERT: mean word vectors and a linear head per task; the heads' interface."""

    def __init__(self, vocab=30522, dim=16):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.heads = nn.ModuleDict({"sst": nn.Linear(dim, 5), "sts": nn.Linear(2 * dim, 1)})

    def embed(self, batch, s=""):  # the mean of the real tokens' vectors
        mask = batch["attention_mask" + s][..., None]
        return (self.emb(batch["input_ids" + s]) * mask).sum(1) / mask.sum(1)

    def forward_loss(self, task, batch):
        if task == "sst":
            out = self.heads["sst"](self.embed(batch))
            return F.cross_entropy(out, batch["labels"]), out.detach()
        out = self.heads["sts"](torch.cat([self.embed(batch, "_1"), self.embed(batch, "_2")], -1))
        return F.mse_loss(out.squeeze(-1), batch["labels"].float()), out.detach().squeeze(-1)

    def shared_parameters(self):
        return list(self.emb.parameters())


def test_trainer_fits_a_model_that_is_no_bert(tiny, data_root):
    torch.manual_seed(0)
    model, lds = BagOfWords(), loaders(tiny, data_root)
    before = mean_loss(model, lds)
    state = Trainer(model, lds, TrainerConfig(epochs=5, lr=1e-1, lr_decay="linear")).fit()
    assert mean_loss(model, lds) < 0.8 * before
    # no `decide`: the points hold the loss of the batches, no metric
    assert set(state.history[-1]["train"]["sst"]) == {"loss", "batches"}

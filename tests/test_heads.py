"""minbert.heads against losses written out in float64 and a hand-computed example."""
import math

import pytest
import torch

from minbert.heads import MultitaskBERT
from minbert.model import BertConfig, BertModel, BertOutput


def tiny_bert(seed=0):
    torch.manual_seed(seed)
    return BertModel(BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1,
                                num_attention_heads=2, intermediate_size=32,
                                max_position_embeddings=32))


def batch_of(seed=0, B=4, S=7, pair=False):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 100, (B, S), generator=g)
    mask = torch.ones(B, S, dtype=torch.long)
    mask[1, 4:] = 0
    mask[3, 2:] = 0
    ids = ids * mask
    b = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    if pair:
        b2 = batch_of(seed + 1, B, S - 2)
        b = {k + "_1": v for k, v in b.items()} | {k + "_2": v for k, v in b2.items()
                                                      if k != "ids"}
    return b


def masked_mean_by_loop(h, mask):
    """The oracle for mean pooling: average of the real rows, one sentence at a time."""
    return torch.stack([h[i, mask[i].bool()].mean(0) for i in range(h.shape[0])])


class StubBert(torch.nn.Module):
    """An 'encoder' whose pooler output is fixed, for the hand-computed example."""
    def __init__(self, pooled):
        super().__init__()
        self.config = BertConfig(hidden_size=pooled.shape[1])
        self.pooled = pooled
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        B = input_ids.shape[0]
        return BertOutput(torch.zeros(B, 3, self.pooled.shape[1]), self.pooled + self.w)


def test_hand_computed_example():
    # pooled x = [1, -1]; sentiment W rows e0, e1, 0, 0, 0 and b = 0 -> logits [1, -1, 0, 0, 0]
    model = MultitaskBERT(StubBert(torch.tensor([[1.0, -1.0]])), dropout=0.0).eval()
    with torch.no_grad():
        model.sentiment.weight.zero_()
        model.sentiment.weight[0, 0] = 1.0
        model.sentiment.weight[1, 1] = 1.0
        model.sentiment.bias.zero_()
        model.paraphrase.weight.copy_(torch.tensor([[2.0, 0.0]]))  # logit 2
        model.paraphrase.bias.zero_()
        model.similarity.weight.zero_()  # sigmoid(0) = 0.5 -> score 2.5
        model.similarity.bias.zero_()
    b = {"input_ids": torch.ones(1, 3, dtype=torch.long), "attention_mask": torch.ones(1, 3)}
    # CE with label 0: -log(e / (e + e^-1 + 3))
    ce = -math.log(math.e / (math.e + math.exp(-1) + 3))
    assert model.loss("sst", b | {"labels": torch.tensor([0])}).item() == pytest.approx(ce, rel=1e-6)
    assert model.predict("sst", b).tolist() == [0]
    # BCE with logit 2, label 0: -log(1 - sigmoid(2)) = log(1 + e^2)
    bce = math.log(1 + math.exp(2))
    assert model.loss("quora", b | {"labels": torch.tensor([0.0])}).item() == pytest.approx(bce, rel=1e-6)
    assert model.predict("quora", b).tolist() == [1]
    # similarity 2.5, gold 4.0 -> MSE 2.25
    assert model.predict("sts", b).tolist() == [2.5]
    assert model.loss("sts", b | {"labels": torch.tensor([4.0])}).item() == pytest.approx(2.25)


def test_joint_heads_match_losses_written_out():
    bert = tiny_bert()
    model = MultitaskBERT(bert, dropout=0.1).eval()  # eval: dropout off, outputs comparable
    b = batch_of()
    with torch.no_grad():
        x = bert(b["input_ids"], b["attention_mask"], b["token_type_ids"]).pooler_output.double()
    W = {n: (getattr(model, n).weight.double(), getattr(model, n).bias.double())
         for n in ("sentiment", "paraphrase", "similarity")}

    y = torch.tensor([0, 4, 2, 1])
    logits = x @ W["sentiment"][0].T + W["sentiment"][1]
    ce = -(logits - logits.exp().sum(1, keepdim=True).log())[torch.arange(4), y].mean()
    assert torch.allclose(model.predict_sentiment(b).double(), logits, atol=1e-6)
    assert model.loss("sst", b | {"labels": y}).item() == pytest.approx(ce.item(), rel=1e-5)
    assert torch.equal(model.predict("sst", b), logits.argmax(1))

    yq = torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    z = (x @ W["paraphrase"][0].T + W["paraphrase"][1]).squeeze(1)
    p = 1 / (1 + torch.exp(-z))
    bce = -(yq * p.log() + (1 - yq) * (1 - p).log()).mean()
    assert model.predict_paraphrase(b).shape == (4,)
    assert model.loss("quora", b | {"labels": yq.float()}).item() == pytest.approx(bce.item(), rel=1e-5)
    assert model.predict("quora", b).tolist() == (p > 0.5).long().tolist()

    ys = torch.tensor([0.0, 5.0, 2.4, 3.2], dtype=torch.float64)
    s = 5 / (1 + torch.exp(-(x @ W["similarity"][0].T + W["similarity"][1]).squeeze(1)))
    assert torch.allclose(model.predict_similarity(b).double(), s, atol=1e-6)
    assert ((s >= 0) & (s <= 5)).all()
    assert model.loss("sts", b | {"labels": ys.float()}).item() == pytest.approx(
        ((s - ys) ** 2).mean().item(), rel=1e-5)


def test_separate_pairs_use_mean_pooled_features():
    bert = tiny_bert()
    model = MultitaskBERT(bert, dropout=0.0, pair_mode="separate").eval()
    b = batch_of(pair=True)
    with torch.no_grad():
        h1 = bert(b["input_ids_1"], b["attention_mask_1"]).last_hidden_state
        h2 = bert(b["input_ids_2"], b["attention_mask_2"]).last_hidden_state
        u, v = masked_mean_by_loop(h1, b["attention_mask_1"]), masked_mean_by_loop(h2, b["attention_mask_2"])
        feats = torch.cat([u, v, (u - v).abs(), u * v], 1)
        assert torch.allclose(model.embed(b["input_ids_1"], b["attention_mask_1"]), u, atol=1e-6)
        want = feats @ model.paraphrase.weight.T.squeeze(1) + model.paraphrase.bias
        assert torch.allclose(model.predict_paraphrase(b), want, atol=1e-5)
    assert model.paraphrase.in_features == 4 * 16
    with pytest.raises(ValueError, match="input_ids_1"):
        model.predict_paraphrase(batch_of())


def test_mean_pooling_option():
    bert = tiny_bert()
    model = MultitaskBERT(bert, dropout=0.0, pooling="mean").eval()
    b = batch_of()
    with torch.no_grad():
        u = masked_mean_by_loop(bert(b["input_ids"], b["attention_mask"]).last_hidden_state,
                                b["attention_mask"])
        want = u @ model.sentiment.weight.T + model.sentiment.bias
        assert torch.allclose(model.predict_sentiment(b), want, atol=1e-5)
    with pytest.raises(ValueError, match="pooling"):
        MultitaskBERT(tiny_bert(), pooling="max")


def test_cosine_sts_loss_hook():
    bert = tiny_bert()
    model = MultitaskBERT(bert, dropout=0.0, pair_mode="separate", sts_loss="cosine_mse").eval()
    b = batch_of(pair=True) | {"labels": torch.tensor([0.0, 5.0, 2.5, 1.0])}
    with torch.no_grad():
        u = masked_mean_by_loop(bert(b["input_ids_1"], b["attention_mask_1"]).last_hidden_state,
                                b["attention_mask_1"])
        v = masked_mean_by_loop(bert(b["input_ids_2"], b["attention_mask_2"]).last_hidden_state,
                                b["attention_mask_2"])
        cos = (u * v).sum(1) / (u.norm(dim=1) * v.norm(dim=1))
    assert model.loss("sts", b).item() == pytest.approx(((cos - b["labels"] / 5) ** 2).mean().item(), rel=1e-5)
    assert torch.allclose(model.predict("sts", b), 5 * cos.clamp(0, 1), atol=1e-5)
    with pytest.raises(ValueError, match="separate"):
        MultitaskBERT(tiny_bert(), sts_loss="cosine_mse")


def test_pretrain_freezes_encoder_and_keeps_its_dropout_off():
    bert = tiny_bert()
    model = MultitaskBERT(bert, dropout=0.5, encoder="frozen")
    model.train()
    assert not bert.training and model.dropout.training
    assert not any(p.requires_grad for p in bert.parameters())
    b = batch_of() | {"labels": torch.tensor([0, 1, 2, 3])}
    model.loss("sst", b).backward()
    assert all(p.grad is None for p in bert.parameters())
    assert model.sentiment.weight.grad is not None and model.sentiment.weight.grad.abs().sum() > 0
    with torch.no_grad():  # frozen features are the same on every call (no encoder dropout)
        a = bert(b["input_ids"], b["attention_mask"]).pooler_output
        c = bert(b["input_ids"], b["attention_mask"]).pooler_output
    assert torch.equal(a, c)


def test_finetune_trains_encoder_and_parameter_groups():
    bert = tiny_bert()
    model = MultitaskBERT(bert, dropout=0.1)
    assert model.training and bert.training
    b = batch_of() | {"labels": torch.tensor([0.0, 1.0, 0.5, 4.0])}
    model.loss("sts", b).backward()
    assert bert.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    assert model.sentiment.weight.grad is None  # another task's head is untouched
    shared = {id(p) for p in model.shared_parameters()}
    heads = [{id(p) for p in model.task_parameters(t)} for t in ("sst", "quora", "sts")]
    assert shared == {id(p) for p in bert.parameters()}
    assert all(h and not (h & shared) for h in heads)
    assert set().union(shared, *heads) == {id(p) for p in model.parameters()}
    with pytest.raises(ValueError, match="unknown task"):
        model.loss("mnli", b)
    with pytest.raises(ValueError, match="encoder"):
        MultitaskBERT(tiny_bert(), encoder="pretrain")  # the seed's row name is not an option


# --- notebook 03: its check cells must fail on a stub and on wrong answers ------------
NOTEBOOK = __import__("pathlib").Path(__file__).resolve().parents[1] / "notebooks" / "03_heads.ipynb"
STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
WRONG = {
    "ex-sentiment": {
        "sum, not mean": "logits = pooled @ weight.T + bias\n"
                         "return logits, F.cross_entropy(logits, labels, reduction='sum')",
        "no bias": "logits = pooled @ weight.T\nreturn logits, F.cross_entropy(logits, labels)",
        "overflows": "logits = pooled @ weight.T + bias\np = logits.exp() / logits.exp().sum(-1, keepdim=True)\n"
                     "return logits, -p[torch.arange(len(labels)), labels].log().mean()",
    },
    "ex-paraphrase": {
        "log of sigmoid": "z = (pooled @ weight.T + bias).squeeze(-1)\np = torch.sigmoid(z)\n"
                          "return z, -(labels * p.log() + (1 - labels) * (1 - p).log()).mean()",
        "not squeezed": "z = pooled @ weight.T + bias\n"
                        "return z, F.binary_cross_entropy_with_logits(z.squeeze(-1), labels)",
    },
    "ex-similarity": {
        "no sigmoid": "s = (pooled @ weight.T + bias).squeeze(-1)\nreturn s, ((s - labels) ** 2).mean()",
        "sigmoid only": "s = torch.sigmoid((pooled @ weight.T + bias).squeeze(-1))\n"
                        "return s, ((s - labels) ** 2).mean()",
    },
}


def run_exercise(ex_id, body):
    """Exec 03's setup cells before the exercise, the exercise with `body` as its
    solution (None: the notebook's own), and the exercise's check cell."""
    import re

    import matplotlib
    import nbformat
    matplotlib.use("Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    ids = [c.id for c in nb.cells]
    ns = {}
    for cell in nb.cells[:ids.index(ex_id)]:
        if cell.cell_type == "code" and "setup" in cell.metadata.get("tags", []):
            exec(compile(cell.source, cell.id, "exec"), ns)
    source = nb.cells[ids.index(ex_id)].source
    if body is not None:
        m = re.search(r"( *)### BEGIN SOLUTION\n.*?### END SOLUTION", source, re.S)
        assert m, f"{ex_id}: no solution block"
        new = "\n".join(m.group(1) + line for line in body.splitlines())
        source = source[:m.start()] + new + source[m.end():]
    exec(compile(source, ex_id, "exec"), ns)
    check = nb.cells[ids.index(ex_id) + 1]
    assert "check" in check.metadata.get("tags", []), f"{ex_id}: the next cell is not its check"
    exec(compile(check.source, check.id, "exec"), ns)


@pytest.mark.parametrize("ex_id", list(WRONG))
def test_notebook_03_checks_pass_the_solution_and_fail_stubs_and_wrong_answers(ex_id):
    run_exercise(ex_id, None)
    with pytest.raises(AssertionError, match="not done yet"):
        run_exercise(ex_id, STUB)
    for name, body in WRONG[ex_id].items():
        with pytest.raises(AssertionError):
            run_exercise(ex_id, body)
        # (each wrong body is a plausible mistake; `name` says which)

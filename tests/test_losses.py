"""minbert.losses against independent oracles: sentence-transformers'
CosineSimilarityLoss and Pooling(mean), torch.nn.CosineEmbeddingLoss, and values
worked out by hand. Also: notebook 07's check cells reject a stripped and a wrong
exercise."""
import json
import math
import os
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from minbert import losses
from minbert.heads import mean_pool

os.environ.setdefault("HF_HUB_OFFLINE", "1")


class GivenEmbeddings(nn.Module):
    """Stands in for a SentenceTransformer: returns the embedding it is handed,
    so sentence-transformers' loss runs on our u, v with no model download."""

    def forward(self, features):
        return {"sentence_embedding": features["embedding"]}


def st_cosine_similarity_loss(u, v, labels):
    from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss
    loss = CosineSimilarityLoss(GivenEmbeddings())
    return loss([{"embedding": u}, {"embedding": v}], labels)


@pytest.fixture
def pairs():
    g = torch.Generator().manual_seed(0)
    u = torch.randn(16, 24, generator=g, dtype=torch.float64)
    v = u + 1.5 * torch.randn(16, 24, generator=g, dtype=torch.float64)
    score = 5 * torch.rand(16, generator=g, dtype=torch.float64)
    return u, v, score


# --- cosine_mse_loss ---------------------------------------------------------

def test_cosine_mse_equals_sentence_transformers(pairs):
    u, v, score = pairs
    # sentence-transformers expects labels in [0, 1]: we hand it score / 5 ourselves
    ref = st_cosine_similarity_loss(u, v, score / 5)
    ours = losses.cosine_mse_loss(u, v, score)
    assert abs(ours.item() - ref.item()) < 1e-6, (ours.item(), ref.item())


def test_cosine_mse_gradients_equal_sentence_transformers(pairs):
    u, v, score = (t.float() for t in pairs)  # sentence-transformers casts labels to float32
    u1, v1 = u.clone().requires_grad_(), v.clone().requires_grad_()
    u2, v2 = u.clone().requires_grad_(), v.clone().requires_grad_()
    st_cosine_similarity_loss(u1, v1, score / 5).backward()
    losses.cosine_mse_loss(u2, v2, score).backward()
    torch.testing.assert_close(u2.grad, u1.grad)
    torch.testing.assert_close(v2.grad, v1.grad)


def test_cosine_mse_rescales_the_score(pairs):
    """The seed's suspected bug, MSE against raw 0..5 scores, is a different loss:
    scale=1 equals sentence-transformers fed the unscaled labels, and not the default."""
    u, v, score = pairs
    raw = losses.cosine_mse_loss(u, v, score, scale=1.0)
    assert abs(raw.item() - st_cosine_similarity_loss(u, v, score).item()) < 1e-6
    assert raw.item() > 1.0 + losses.cosine_mse_loss(u, v, score).item()


def test_cosine_mse_by_hand():
    u = torch.tensor([[1.0, 0.0], [1.0, 0.0], [3.0, 4.0]])
    v = torch.tensor([[0.0, 2.0], [1.0, 1.0], [-3.0, -4.0]])
    score = torch.tensor([0.0, 5.0, 2.5])
    # cosines 0, 1/sqrt(2), -1; targets 0, 1, 0.5
    want = ((0 - 0) ** 2 + (1 / math.sqrt(2) - 1) ** 2 + (-1 - 0.5) ** 2) / 3
    assert abs(losses.cosine_mse_loss(u, v, score).item() - want) < 1e-6


# --- cosine_embedding_loss -----------------------------------------------------

@pytest.mark.parametrize("margin", [0.0, 0.3])
def test_cosine_embedding_equals_torch_module(pairs, margin):
    u, v, score = pairs
    target = torch.tensor([1.0 if s >= 2.5 else -1.0 for s in score.tolist()], dtype=u.dtype)
    assert (target == 1).any() and (target == -1).any()  # both branches exercised
    ref = nn.CosineEmbeddingLoss(margin=margin)(u, v, target)
    ours = losses.cosine_embedding_loss(u, v, score, margin=margin)
    assert abs(ours.item() - ref.item()) < 1e-9


def test_cosine_embedding_by_hand():
    u = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    v = torch.tensor([[1.0, 1.0], [1.0, 1.0], [0.0, 1.0], [-1.0, 0.0]])
    score = torch.tensor([4.0, 1.0, 2.5, 0.0])  # targets +1, -1, +1 (boundary), -1
    c = 1 / math.sqrt(2)
    want0 = ((1 - c) + max(0.0, c) + (1 - 0) + max(0.0, -1.0)) / 4
    assert abs(losses.cosine_embedding_loss(u, v, score).item() - want0) < 1e-6
    want = ((1 - c) + max(0.0, c - 0.5) + (1 - 0) + 0) / 4
    assert abs(losses.cosine_embedding_loss(u, v, score, margin=0.5).item() - want) < 1e-6
    # threshold moves the boundary: at 4.5 the 4.0 pair becomes "dissimilar"
    want_t = (max(0.0, c) + max(0.0, c) + (0 - 0) + 0) / 4
    assert abs(losses.cosine_embedding_loss(u, v, score, threshold=4.5).item() - want_t) < 1e-6


# --- mean_pool -----------------------------------------------------------------

def hand_mean(hidden, mask):
    out = []
    for h, m in zip(hidden, mask):
        rows = [h[t] for t in range(len(m)) if m[t] == 1]
        out.append(sum(rows) / len(rows))
    return torch.stack(out)


@pytest.fixture
def padded():
    g = torch.Generator().manual_seed(1)
    hidden = torch.randn(3, 7, 5, generator=g)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 1],
                         [1, 1, 1, 0, 0, 0, 0],
                         [1, 1, 0, 0, 0, 0, 0]])
    hidden[mask == 0] = 100.0  # padding states that would dominate an unmasked mean
    return hidden, mask


def test_mean_pool_by_hand(padded):
    hidden, mask = padded
    torch.testing.assert_close(mean_pool(hidden, mask), hand_mean(hidden, mask))


def test_mean_pool_equals_sentence_transformers_pooling(padded):
    from sentence_transformers.sentence_transformer.modules.pooling import Pooling
    hidden, mask = padded
    ref = Pooling(5, pooling_mode="mean")({"token_embeddings": hidden, "attention_mask": mask})
    torch.testing.assert_close(mean_pool(hidden, mask), ref["sentence_embedding"])


def test_mean_pool_ignores_extra_padding(padded):
    hidden, mask = padded
    more = torch.cat([hidden, torch.full((3, 4, 5), -7.0)], dim=1)
    more_mask = torch.cat([mask, torch.zeros(3, 4, dtype=mask.dtype)], dim=1)
    torch.testing.assert_close(mean_pool(more, more_mask), mean_pool(hidden, mask))


def test_mean_pool_empty_mask_is_finite():
    out = mean_pool(torch.randn(2, 3, 4), torch.zeros(2, 3))
    assert torch.isfinite(out).all() and (out == 0).all()


# --- predict_similarity_from_cosine --------------------------------------------

def test_predict_similarity_from_cosine_by_hand():
    u = torch.tensor([[1.0, 0.0]] * 4)
    v = torch.tensor([[2.0, 0.0], [1.0, math.sqrt(3)], [0.0, 1.0], [-1.0, 0.1]])
    # cos 1, 0.5, 0, negative -> 5, 2.5, 0, 0 (clamped)
    want = torch.tensor([5.0, 2.5, 0.0, 0.0])
    torch.testing.assert_close(losses.predict_similarity_from_cosine(u, v), want)


def test_predict_similarity_inverts_the_mse_target(pairs):
    """A perfect cosine-MSE fit (cos = score / 5) predicts the score back."""
    _, _, score = pairs
    angle = torch.arccos(score / 5)
    u = torch.stack([torch.ones_like(angle), torch.zeros_like(angle)], dim=1)
    v = torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    assert losses.cosine_mse_loss(u, v, score).item() < 1e-12
    torch.testing.assert_close(losses.predict_similarity_from_cosine(u, v), score)


# --- notebook 07: its check cells reject a stripped and a wrong exercise -----------

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "07_cosine.ipynb"
SOLUTION = re.compile(r"^([ \t]*)### BEGIN SOLUTION\n.*?^[ \t]*### END SOLUTION[ \t]*$", re.S | re.M)
HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN CHECKS\n.*?^[ \t]*### END HIDDEN CHECKS[ \t]*$", re.S | re.M)

WRONG = {  # exercise cell id -> a plausible wrong body
    "ex-mean-pool": {
        "no padding mask": "return last_hidden_state.mean(dim=1)",
        "sum, not mean": "return (last_hidden_state * attention_mask.unsqueeze(-1)).sum(dim=1)",
    },
    "ex-cosine-mse": {
        "unscaled 0..5 target": "return F.mse_loss(F.cosine_similarity(u, v, dim=-1), score_0_5)",
        "sum over the batch": "return ((F.cosine_similarity(u, v, dim=-1) - score_0_5 / 5) ** 2).sum()",
    },
}
CHECK_OF = {"ex-mean-pool": "check-mean-pool", "ex-cosine-mse": "check-cosine-mse"}


@pytest.fixture(scope="module")
def notebook():
    nb = json.loads(NOTEBOOK.read_text())
    return {c["id"]: c for c in nb["cells"]}, nb


def src(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def with_body(exercise_src, body):
    """The exercise with its solution block replaced by `body`, indented as the block was."""
    assert SOLUTION.search(exercise_src), "exercise cell without a solution block"
    return SOLUTION.sub(lambda m: "\n".join(m.group(1) + line for line in body.splitlines()),
                        exercise_src, count=1)


def run_check(cells, exercise, exercise_src, keep_hidden=True):
    """exec the setup cell, the (modified) exercise and its check in one namespace."""
    ns = {}
    exec(src(cells["setup-imports"]), ns)
    exec(exercise_src, ns)
    check = src(cells[CHECK_OF[exercise]])
    exec(check if keep_hidden else HIDDEN.sub("", check), ns)


@pytest.mark.parametrize("exercise", sorted(CHECK_OF))
def test_notebook_check_passes_the_solution(notebook, exercise):
    cells, _ = notebook
    run_check(cells, exercise, src(cells[exercise]))


@pytest.mark.parametrize("exercise", sorted(CHECK_OF))
def test_notebook_check_fails_the_stripped_exercise(notebook, exercise):
    cells, _ = notebook
    stripped = with_body(src(cells[exercise]), "# YOUR CODE HERE\nraise NotImplementedError")
    with pytest.raises(AssertionError, match="not done yet"):
        run_check(cells, exercise, stripped)


@pytest.mark.parametrize("exercise,wrong", [(e, w) for e in sorted(WRONG) for w in WRONG[e]])
def test_notebook_check_fails_a_wrong_exercise(notebook, exercise, wrong):
    cells, _ = notebook
    bad = with_body(src(cells[exercise]), WRONG[exercise][wrong])
    with pytest.raises(AssertionError):
        run_check(cells, exercise, bad, keep_hidden=False)  # the visible part alone catches it


def test_notebook_hidden_check_catches_a_detached_cosine(notebook):
    """A loss with the right value but no gradient passes the visible check, not the hidden one."""
    cells, _ = notebook
    bad = with_body(src(cells["ex-cosine-mse"]),
                    "cos = F.cosine_similarity(u.detach(), v.detach(), dim=-1)\n"
                    "return F.mse_loss(cos, score_0_5 / 5)")
    run_check(cells, "ex-cosine-mse", bad, keep_hidden=False)
    with pytest.raises((AssertionError, RuntimeError)):
        run_check(cells, "ex-cosine-mse", bad)


def test_notebook_follows_the_conventions(notebook):
    cells, nb = notebook
    assert (nb["nbformat"], nb["nbformat_minor"]) >= (4, 5)
    assert len(cells) == len(nb["cells"]), "cell ids must be unique"
    for c in nb["cells"]:
        tags = c["metadata"].get("tags", [])
        if "exercise" in tags:
            assert SOLUTION.search(src(c)), c["id"]
        if c["cell_type"] != "code":
            continue
        assert not any(o.get("output_type") == "error" for o in c["outputs"]), c["id"]
        if src(c).startswith("# NBVAL_CHECK_OUTPUT"):  # nbval compares only cells that were run
            assert c["outputs"] and c["execution_count"] is not None, f"{c['id']}: no stored output"
        else:
            assert c["outputs"] == [] and c["execution_count"] is None, f"{c['id']}: outputs not cleared"
    assert [c["id"] for c in nb["cells"] if "check" in c["metadata"].get("tags", [])] == \
        ["check-mean-pool", "check-cosine-mse"]

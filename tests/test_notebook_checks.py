"""The check cells of notebooks 01 and 02 can fail (issue acceptance).

For each exercise/check pair, without a kernel: the setup cells, the exercise cells up to
this one (solutions) and the check cell are exec'd in one namespace. The check must pass on
the solution, and raise when the solution block is replaced by `raise NotImplementedError`
(what the student release does) and when it holds a plausible wrong answer (a mutation listed
below, asserted to change the source so that it cannot silently become a no-op).
Plus notebook hygiene for every notebook in notebooks/.
"""
import json
import re
from pathlib import Path

import nbformat
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"

# notebook -> exercise cell id -> (check cell id, {wrong answer: [(old, new), ...]})
CASES = {
    "01_attention.ipynb": {
        "attn-ex-attention": ("attn-check-attention", {
            "no sqrt(d) scaling": [(" / math.sqrt(query.size(-1))", "")],
            "softmax over the queries": [("scores.softmax(dim=-1)", "scores.softmax(dim=-2)")],
            "mask ignored": [("scores = scores + mask", "scores = scores")],
        }),
        "attn-ex-mask": ("attn-check-mask", {
            "wrong sign: masks the real tokens": [("(1.0 - mask) *", "mask *")],
            "no broadcast axes": [("attention_mask[:, None, None, :]", "attention_mask")],
        }),
        "attn-ex-split": ("attn-check-split", {
            "view straight to (batch, heads, seq, d)": [
                (".view(batch, seq, num_heads, hidden // num_heads).transpose(1, 2)",
                 ".reshape(batch, num_heads, seq, hidden // num_heads)")],
        }),
        "attn-ex-merge": ("attn-check-merge", {
            "no transpose back": [("x.transpose(1, 2).reshape", "x.reshape")],
            "wrong transpose": [("x.transpose(1, 2).reshape", "x.transpose(2, 3).reshape")],
        }),
        "attn-ex-layer": ("attn-check-layer", {
            "no residual around attention": [("layer_norm(hidden_states + dropout(", "layer_norm(dropout(")],
            "ReLU for GELU": [("F.gelu(", "F.relu(")],
            "no dropout": [("training=dropout_p > 0", "training=False")],
            "LayerNorm eps ignored": [("params[name + \".bias\"], eps)", "params[name + \".bias\"])")],
        }),
        "attn-ex-module": ("attn-check-module", {
            "q/k/v for query/key/value": [("self.query = ", "self.q = "), ("self.key = ", "self.k = "),
                                          ("self.value = ", "self.v = "),
                                          ("(self.query, self.key, self.value)", "(self.q, self.k, self.v)")],
            "no biases": [("nn.Linear(hidden_size, hidden_size)\n",
                           "nn.Linear(hidden_size, hidden_size, bias=False)\n")],
            "no 1/sqrt(d) (attention written inline)": [
                ("context = my_attention(q, k, v, mask)[0]",
                 "context = (q @ k.transpose(-1, -2) + (0 if mask is None else mask)).softmax(-1) @ v")],
            "mask ignored": [("my_attention(q, k, v, mask)", "my_attention(q, k, v)")],
            "heads merged in the wrong order": [("return my_merge_heads(context)",
                                                 "return context.reshape(hidden_states.shape)")],
            "returns (context, probs)": [("context = my_attention(q, k, v, mask)[0]",
                                          "context, probs = my_attention(q, k, v, mask)"),
                                         ("return my_merge_heads(context)",
                                          "return my_merge_heads(context), probs")],
        }),
        "attn-ex-embeddings": ("attn-check-embeddings", {
            "word_embedding (CS224N's name)": [("self.word_embeddings = ", "self.word_embedding = "),
                                               ("self.word_embeddings(", "self.word_embedding(")],
            "no position embeddings": [("\n                  + self.position_embeddings(positions))", ")")],
            "token types ignored": [("self.token_type_embeddings(token_type_ids)",
                                     "self.token_type_embeddings(input_ids.new_zeros(input_ids.shape))")],
            "LayerNorm eps ignored": [("nn.LayerNorm(config.hidden_size, config.layer_norm_eps)",
                                       "nn.LayerNorm(config.hidden_size)")],
            "no dropout": [("return self.dropout(self.LayerNorm(summed))", "return self.LayerNorm(summed)")],
        }),
        "attn-ex-forward": ("attn-check-forward", {
            "padding mask not passed": [("my_bert_layer(h, mask,", "my_bert_layer(h, None,")],
            "no tanh in the pooler": [("torch.tanh(model.pooler.dense(h[:, 0]))", "model.pooler.dense(h[:, 0])")],
        }),
    },
    "02_adamw.ipynb": {
        "adamw-ex-step": ("adamw-check-step", {
            "no bias correction": [("lr * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t) if correct_bias else lr",
                                    "lr")],
            "eps inside the sqrt": [("(v.sqrt() + eps)", "(v + eps).sqrt()")],
            "decay before the Adam step (torch's order)": [
                ("    p = p - alpha * m / (v.sqrt() + eps)\n    p = p - lr * weight_decay * p",
                 "    p = p - lr * weight_decay * p\n    p = p - alpha * m / (v.sqrt() + eps)")],
            "bias correction ignores correct_bias": [(" if correct_bias else lr", "")],
        }),
        "adamw-ex-optimizer": ("adamw-check-optimizer", {
            "state reset every step": [("if not state:", "if True:")],
            "one lr for all groups": [("= group[\"lr\"], group[\"betas\"]",
                                       "= self.defaults[\"lr\"], group[\"betas\"]")],
        }),
    },
}

# (exercise, wrong answer) -> what its check's message must say (others: any AssertionError)
MESSAGES = {
    ("attn-ex-module", "q/k/v for query/key/value"):
        r"names expected \['key.bias', 'key.weight', .*found \['k.bias', 'k.weight'",
    ("attn-ex-module", "no biases"): r"names expected .*'query.bias'.*found \['key.weight', 'query",
    ("attn-ex-module", "no 1/sqrt(d) (attention written inline)"):
        r"context without a mask differs from the reference .*1/sqrt\(head_size\)",
    ("attn-ex-module", "mask ignored"): r"context with the padding mask differs from the reference",
    ("attn-ex-module", "heads merged in the wrong order"):
        r"context without a mask differs .*my_merge_heads",
    ("attn-ex-module", "returns (context, probs)"): r"should be a torch.Tensor, got tuple",
    ("attn-ex-embeddings", "word_embedding (CS224N's name)"):
        r"names expected .*'word_embeddings.weight'.*found .*'word_embedding.weight'",
    ("attn-ex-embeddings", "token types ignored"): r"embeddings of sentence pairs differs",
    ("attn-ex-embeddings", "no dropout"): r"in training mode the embeddings are dropped out",
}

SOLUTION = re.compile(r"^([ \t]*)### BEGIN SOLUTION\n.*?^[ \t]*### END SOLUTION[ \t]*$", re.M | re.S)


def cells(name):
    return nbformat.read(NOTEBOOKS / name, as_version=4).cells


def tagged(cell, tag):
    return tag in cell.metadata.get("tags", [])


def stub(source):
    """What the student release does: the solution block becomes `raise NotImplementedError`."""
    out, n = SOLUTION.subn(lambda m: f"{m.group(1)}# YOUR CODE HERE\n{m.group(1)}raise NotImplementedError",
                           source)
    assert n >= 1, "an exercise cell holds a solution block (a module: one per method)"
    return out


def mutate(source, edits):
    """Apply the edits inside the solution blocks (each target must be in one of them)."""
    blocks = [m.group(0) for m in SOLUTION.finditer(source)]
    assert blocks, "no solution block"
    for old, _ in edits:
        assert any(old in b for b in blocks), \
            f"mutation target {old!r} not in the solution: update the test"

    def edit(m):
        body = m.group(0)
        for old, new in edits:
            body = body.replace(old, new)
        return body
    out = SOLUTION.sub(edit, source)
    assert out != source
    return out


_BASE = {}


def base_namespace(name):
    """The setup cells, exec'd once per notebook (cwd-independent: data comes from MINBERT_DATA)."""
    if name not in _BASE:
        ns = {"__name__": "__notebook__"}
        for c in cells(name):
            if c.cell_type == "code" and tagged(c, "setup"):
                exec(compile(c.source, f"{name}:{c.id}", "exec"), ns)
        _BASE[name] = ns
    return dict(_BASE[name])


def run_case(name, exercise_id, check_id, variant):
    ns = base_namespace(name)
    by_id = {c.id: c for c in cells(name)}
    for c in cells(name):  # earlier exercises (solutions), as a learner who did them
        if c.id == exercise_id:
            break
        if tagged(c, "exercise"):
            exec(compile(c.source, f"{name}:{c.id}", "exec"), ns)
    exec(compile(variant(by_id[exercise_id].source), f"{name}:{exercise_id}", "exec"), ns)
    torch.manual_seed(0)
    exec(compile(by_id[check_id].source, f"{name}:{check_id}", "exec"), ns)


PAIRS = [(nb, ex, check) for nb, exs in CASES.items() for ex, (check, _) in exs.items()]
WRONG = [(nb, ex, check, why, edits) for nb, exs in CASES.items()
         for ex, (check, wrongs) in exs.items() for why, edits in wrongs.items()]


@pytest.fixture(autouse=True)
def _data(data_root, monkeypatch):
    monkeypatch.setenv("MINBERT_DATA", str(data_root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_exercise_and_check_is_covered(name):
    cs = cells(name)
    exercises = [c.id for c in cs if tagged(c, "exercise")]
    checks = [c.id for c in cs if tagged(c, "check")]
    assert sorted(exercises) == sorted(CASES[name]), "an exercise has no case here"
    assert sorted(checks) == sorted(check for check, _ in CASES[name].values())
    order = [c.id for c in cs]
    for ex, (check, _) in CASES[name].items():  # each exercise is followed by its check
        following = [i for i in order[order.index(ex) + 1:] if i in exercises + checks]
        assert following[0] == check, f"{ex} should be followed by {check}"


@pytest.mark.parametrize("name,exercise,check", PAIRS, ids=[f"{e}" for _, e, _ in PAIRS])
def test_check_passes_on_the_solution(name, exercise, check):
    run_case(name, exercise, check, lambda src: src)


@pytest.mark.parametrize("name,exercise,check", PAIRS, ids=[f"{e}" for _, e, _ in PAIRS])
def test_check_fails_on_the_stub(name, exercise, check):
    with pytest.raises(AssertionError, match="not done yet"):
        run_case(name, exercise, check, stub)


@pytest.mark.parametrize("name,exercise,check,why,edits", WRONG,
                         ids=[f"{e}: {w}" for _, e, _, w, _ in WRONG])
def test_check_fails_on_a_wrong_answer(name, exercise, check, why, edits):
    with pytest.raises(AssertionError, match=MESSAGES.get((exercise, why))):
        run_case(name, exercise, check, lambda src: mutate(src, edits))


# ----------------------------------------------------------------- hygiene, every notebook
ALL = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))


@pytest.mark.parametrize("name", ALL)
def test_no_saved_errors_and_every_cell_has_an_id(name):
    raw = json.loads((NOTEBOOKS / name).read_text())
    assert (raw["nbformat"], raw["nbformat_minor"]) >= (4, 5), "nbformat 4.5 (cell ids) expected"
    ids = [c.get("id") for c in raw["cells"]]
    assert all(ids), f"cells without an id: {[i for i, x in enumerate(ids) if not x]}"
    assert len(ids) == len(set(ids)), "duplicate cell ids"
    for c in raw["cells"]:
        for out in c.get("outputs", []):
            assert out["output_type"] != "error", f"cell {c['id']} has a saved error output"


@pytest.mark.parametrize("name", sorted(CASES))
def test_outputs_cleared_except_checked_ones(name):
    for c in cells(name):
        if c.cell_type != "code":
            continue
        if c.source.startswith("# NBVAL_CHECK_OUTPUT"):
            assert c.outputs, f"{c.id}: an NBVAL_CHECK_OUTPUT cell needs its reference output"
        else:
            assert not c.outputs and c.execution_count is None, f"{c.id}: clear its outputs"
        if tagged(c, "check"):
            assert c.metadata.get("minbert", {}).get("points", 1) >= 1
        if tagged(c, "exercise"):
            assert SOLUTION.search(c.source), f"{c.id}: no solution block"

"""The student's code flows forward (docs/design.md, rule 2; minbert.yours): the hand-out holds
no written-out answer, its stand-ins match independent oracles, and the functions a student
saves in 01-03 (attention, its module, the AdamW step, the heads) are what 04's training
runs."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import course
from minbert import yours
from course.notebooks import numbered_notebooks, secret_lines

from test_handout import ROOT, student_env

COUNTER = "MINBERT_TEST_COUNTER"  # a file each pasted answer appends one letter to, per call


def code(line: str) -> str:
    """A line as the scan compares it: stripped, without a trailing comment (a copy that drops
    or changes the `# (B,)` after the code is still the same line of code)."""
    s = line.strip()
    return re.sub(r"\s+#.*$", "", s) if not s.startswith("#") else s


def solution_lines(shortest=30) -> set:
    """Every line of >= `shortest` characters (as code() reads it) in a SOLUTION block of an
    instructor notebook: the course's own scan (course.notebooks.secret_lines) of exercise cells."""
    lines = set()
    for path in numbered_notebooks(ROOT / "notebooks"):
        for cell in json.loads(path.read_text())["cells"]:
            if "exercise" in cell.get("metadata", {}).get("tags", []):
                lines |= {code(x) for x in secret_lines("".join(cell["source"]))}
    return {x for x in lines if len(x) >= shortest}


def leaks(folder: Path) -> list:
    answers = solution_lines()
    assert len(answers) > 20, "the scan finds the notebooks' solutions"
    out = []
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.suffix != ".gz":
            text = p.read_bytes().decode("utf-8", errors="replace")
            out += [f"{p}: {s.strip()}" for s in text.splitlines() if code(s) in answers]
    return out


@pytest.fixture(scope="module")
def handout(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("yours-handout")
    assert ROOT not in out.resolve().parents
    course.release(out, ROOT / "notebooks")
    return out


def test_no_written_out_answer_in_the_handout(handout):
    assert leaks(ROOT / "minbert"), "the repository's package holds them: the scan can fail"
    assert not leaks(handout), "\n".join(leaks(handout))


ORACLES = r'''
import math, minbert, torch, transformers
from minbert import yours
assert minbert.__file__.startswith(HANDOUT) and yours.EDITION == "hand-out"
model, tok = minbert.load_pretrained("minilm-l6")
ref = transformers.BertModel.from_pretrained(str(minbert.pretrained.bundled_path()),
                                             attn_implementation="eager").eval()
batch = tok(["a padded batch", "of two sentences, one longer than the other"],
            padding=True, return_tensors="pt")
real = batch["attention_mask"].bool()
with torch.no_grad():
    for attentions in (False, True):  # torch's fused kernel; the stand-in attention
        ours, theirs = model(**batch, output_attentions=attentions), ref(**batch)
        print("bert", (ours.last_hidden_state[real] - theirs.last_hidden_state[real]).abs().max().item())
        print("bert", (ours.pooler_output - theirs.pooler_output).abs().max().item())
gen = torch.Generator().manual_seed(0)
for lr, b1, b2, eps, wd, cb in [(1e-2, .9, .999, 1e-6, 0.0, True), (5e-2, .8, .99, 1e-3, .1, True),
                                (5e-2, .8, .99, 1e-3, .1, False)]:
    p0 = torch.randn(7, generator=gen, dtype=torch.float64)
    grads = [torch.randn(7, generator=gen, dtype=torch.float64) for _ in range(4)]
    w = torch.nn.Parameter(p0.clone())
    opt = minbert.AdamW([w], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd, correct_bias=cb)
    p, m, v = p0.tolist(), [0.0] * 7, [0.0] * 7  # CS224N's formulas, one float at a time
    for t, g in enumerate(grads, start=1):
        w.grad = g.clone()
        opt.step()
        for i, gi in enumerate(g.tolist()):
            m[i] = b1 * m[i] + (1 - b1) * gi
            v[i] = b2 * v[i] + (1 - b2) * gi * gi
            alpha = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t) if cb else lr
            p[i] = p[i] - alpha * m[i] / (math.sqrt(v[i]) + eps)
            p[i] = p[i] - lr * wd * p[i]
        print("adamw", (w.detach() - torch.tensor(p, dtype=torch.float64)).abs().max().item())
'''


def test_the_handouts_stand_ins_match_the_oracles(handout, tmp_path):
    """Nothing saved: the hand-out's BertModel against transformers' (1e-4, a padded batch),
    its AdamW against CS224N's formulas written out here (float64, 4 steps)."""
    env = {**student_env(), "MINBERT_YOURS": str(tmp_path / "empty")}
    r = subprocess.run([sys.executable, "-c", f"HANDOUT = {str(handout)!r}\n{ORACLES}"],
                       cwd=handout, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    gaps = [line.split() for line in r.stdout.splitlines()]
    assert [k for k, _ in gaps].count("bert") == 4 and [k for k, _ in gaps].count("adamw") == 12
    assert all(float(x) < (1e-4 if k == "bert" else 1e-12) for k, x in gaps), r.stdout


def answered(handout: Path, name: str, count=True) -> nbformat.NotebookNode:
    """The hand-out's notebook with the instructor's answers pasted into its exercise cells;
    with `count`, the pieces that flow forward also append a letter to $MINBERT_TEST_COUNTER
    per call (a: my_attention, m: MyBertSelfAttention.forward, e: MyBertEmbeddings.forward,
    s: my_adamw_step, h: a head)."""
    instructor = course.read_notebook(ROOT / "notebooks" / name)
    answers = {c["id"]: c["source"] for c in instructor["cells"]
               if "exercise" in c["metadata"].get("tags", [])}
    letters = {"def my_attention": ("a", 1), "class MyBertSelfAttention": ("m", 2),
               "class MyBertEmbeddings": ("e", 2),
               "def my_adamw_step": ("s", 1), "def sentiment_head": ("h", 1),
               "def paraphrase_head": ("h", 1), "def similarity_head": ("h", 1)} if count else {}
    nb = nbformat.read(handout / name, as_version=4)
    for cell in nb.cells:
        src = answers.get(cell.get("id"), cell.source)
        for head, (letter, block) in letters.items():
            if src.startswith(head):  # the block-th solution block: forward's, in the class
                parts = src.split("### BEGIN SOLUTION\n")
                pad = parts[block - 1].rsplit("\n", 1)[-1]
                parts[block] = (f"{pad}open(__import__('os').environ[{COUNTER!r}], 'a')"
                                f".write({letter!r})\n") + parts[block]
                src = "### BEGIN SOLUTION\n".join(parts)
        cell.source = src
    return nb


def run(nb, folder: Path) -> list:
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(folder)}}).execute()
    return [o.get("text", "") for c in nb.cells for o in c.get("outputs", [])]


def student(monkeypatch, yours: Path, **extra):
    for key in ("PYTHONPATH", "MINBERT_RESULTS"):
        monkeypatch.delenv(key, raising=False)
    for key, value in {**student_env(), "MINBERT_YOURS": str(yours), **extra}.items():
        monkeypatch.setenv(key, value)


def pieces(texts: list) -> str:
    (line,) = [t for text in texts for t in text.splitlines() if t.startswith("pieces:")]
    return line


def test_04_trains_with_the_students_attention_module_adamw_and_heads(handout, tmp_path,
                                                                      monkeypatch):
    counter = tmp_path / "calls"
    student(monkeypatch, tmp_path / "yours", **{COUNTER: str(counter)})
    for name in ("01_attention.ipynb", "02_adamw.ipynb", "03_heads.ipynb"):
        run(answered(handout, name), handout)
    assert sorted(p.stem for p in (tmp_path / "yours").iterdir()) == sorted(yours.PIECES)
    counter.write_text("")  # what 01-03's own checks and training called is not 04's
    monkeypatch.setenv("MINBERT_CHECKS", "report")  # 04's own exercise is left unanswered
    texts = run(nbformat.read(handout / "04_round_robin.ipynb", as_version=4), handout)
    calls = counter.read_text()
    assert {"a", "m", "e", "s", "h"} <= set(calls), f"04 called: {calls!r}"
    assert pieces(texts) == ("pieces: yours: attention (01), self_attention (01), embeddings "
                             "(01), adamw_step (02), sentiment_head (03), paraphrase_head (03), "
                             "similarity_head (03) | stand-ins: none")


def test_unanswered_notebooks_run_on_stand_ins(handout, tmp_path, monkeypatch):
    student(monkeypatch, tmp_path / "yours", MINBERT_CHECKS="report")
    texts = []
    for name in ("01_attention.ipynb", "02_adamw.ipynb", "04_round_robin.ipynb"):
        texts = run(nbformat.read(handout / name, as_version=4), handout)
    assert not (tmp_path / "yours").exists()
    assert pieces(texts).startswith("pieces: yours: none yet | stand-ins: attention ("), \
        pieces(texts)
    assert pieces(texts).count("(") == len(yours.PIECES), pieces(texts)

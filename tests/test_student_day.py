"""Run All runs all (issue 14, acceptance 3).

A released 03_heads (`python -m course release`, what students get) with one exercise
solved, one wrong and one missing:
- in student mode (MINBERT_CHECKS=report, what a student's kernel does) every cell runs, top
  to bottom, and each check cell's output states its verdict: ✓ for the solved one, ✗ with
  the reason for the other two; the training after them runs too;
- the same notebook under nbval (MINBERT_CHECKS=raise) fails exactly those two check cells,
  and the grader gives them no points.
CI mode (MINBERT_CI=1) only to make it short: it shrinks the training, nothing else.
"""
import csv
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NAME = "03_heads.ipynb"
SOLVED, WRONG, MISSING = "ex-sentiment", "ex-paraphrase", "ex-similarity"
CHECK_OF = {SOLVED: "check-sentiment", WRONG: "check-paraphrase", MISSING: "check-similarity"}
# a plausible slip: the sign of z * y in the stable binary cross-entropy
SLIP = ("z.clamp(min=0) - z * labels", "z.clamp(min=0) + z * labels")
VERDICT = re.compile(r"^([✓✗]) (check_\w+)\((\w+)\): (passed|FAILED)", re.M)


def env(**extra):
    e = dict(os.environ, MINBERT_CI="1", HF_HUB_OFFLINE="1", PYTHONWARNINGS="ignore")
    e.update(extra)
    return e


@pytest.fixture(scope="module")
def student_copy(tmp_path_factory, data_root):
    """release/03_heads.ipynb as a student would hand it in: one solved, one wrong, one missing."""
    folder = tmp_path_factory.mktemp("student-day")
    subprocess.run([sys.executable, "-m", "course", "release", "--out", str(folder / "release"),
                    "--notebooks", str(ROOT / "notebooks")], check=True, cwd=ROOT, env=env(),
                   capture_output=True)
    nb = nbformat.read(folder / "release" / NAME, as_version=4)
    solutions = {c.id: c.source for c in nbformat.read(ROOT / "notebooks" / NAME, as_version=4).cells}
    for cell in nb.cells:
        if cell.id == SOLVED:
            cell.source = solutions[SOLVED]
        elif cell.id == WRONG:
            assert SLIP[0] in solutions[WRONG]
            cell.source = solutions[WRONG].replace(*SLIP)
    (folder / "submissions" / "ada").mkdir(parents=True)
    nbformat.write(nb, folder / "submissions" / "ada" / NAME)
    return folder / "submissions" / "ada" / NAME


def test_student_mode_runs_every_cell_and_states_every_verdict(student_copy):
    nb = nbformat.read(student_copy, as_version=4)
    # allow_errors=False: any cell that raises stops here with CellExecutionError
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute(
        env=env(MINBERT_CHECKS="report"))
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "every cell ran"
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    text = {c.id: "".join(o.get("text", "") for o in c.outputs if o.output_type == "stream")
            for c in code}
    verdicts = {cid: VERDICT.findall(t) for cid, t in text.items() if "check" in cid}
    assert verdicts[CHECK_OF[SOLVED]] == [("✓", "check_sentiment_head", "sentiment_head", "passed")]
    assert verdicts[CHECK_OF[WRONG]] == [("✗", "check_paraphrase_head", "paraphrase_head", "FAILED")]
    assert verdicts[CHECK_OF[MISSING]] == [("✗", "check_similarity_head", "similarity_head", "FAILED")]
    assert "not done yet" in text[CHECK_OF[MISSING]]
    assert "frozen {'acc'" in text["train"], "the training after the failed checks ran"


def nbval_failures(notebook: Path, tmp: Path) -> list[str]:
    """The ids of the cells nbval fails in `notebook` (raise mode, CI mode)."""
    junit = tmp / "nbval.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                    f"--junitxml={junit}", str(notebook)], cwd=notebook.parent,
                   env=env(MINBERT_CHECKS="raise"), capture_output=True, text=True, timeout=900)
    code = [c for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code"]
    failed = [case.get("name") for case in ET.parse(junit).iter("testcase")
              if case.find("failure") is not None or case.find("error") is not None]
    return [code[int(name.split()[-1])].id for name in failed]


def test_nbval_fails_the_wrong_and_the_missing_check(student_copy, tmp_path):
    assert nbval_failures(student_copy, tmp_path) == [CHECK_OF[WRONG], CHECK_OF[MISSING]]


def test_the_grader_gives_them_no_points(student_copy, tmp_path):
    out = tmp_path / "grades.csv"
    subprocess.run([sys.executable, "-m", "course", "grade", str(student_copy.parents[1]),
                    "--out", str(out), "--notebooks", str(ROOT / "notebooks")],
                   check=True, cwd=ROOT, env=env(), capture_output=True, timeout=900)
    rows = {r["check"]: r for r in csv.DictReader(out.open()) if r["notebook"] == NAME}
    assert rows[CHECK_OF[SOLVED]]["outcome"] == "pass"
    for ex in (WRONG, MISSING):  # the check raised AssertionError: fail (or error), no points
        assert rows[CHECK_OF[ex]]["outcome"] in ("fail", "error"), rows[CHECK_OF[ex]]
        assert float(rows[CHECK_OF[ex]]["score"]) == 0
    assert float(rows[CHECK_OF[SOLVED]]["score"]) == float(rows[CHECK_OF[SOLVED]]["points"]) > 0

"""course: the student release and grading, on two tiny fixture notebooks
(tests/fixtures/course/notebooks, ~1 s per kernel run) and, when present, the real ones."""
import copy
import csv
import json
import os
import re
import time
from pathlib import Path

import nbformat
import pytest

import course
from course import guard
from course.notebooks import secret_lines

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "course" / "notebooks"
NAMES = ("01_sum.ipynb", "02_scale.ipynb")
HEADER = "student,notebook,check,points,score,outcome,reason,warnings\n"


# --- helpers building submissions ----------------------------------------------------------

def load(path) -> dict:
    return course.read_notebook(path)


def save(nb: dict, path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(course.dumps_notebook(nb))


def cell(nb: dict, cid: str) -> dict:
    return next(c for c in nb["cells"] if c["id"] == cid)


def solved(released: dict, instructor: dict) -> dict:
    """A student's file: the released notebook with the instructor's exercise cells typed in."""
    nb = copy.deepcopy(released)
    for c in nb["cells"]:
        if "exercise" in c["metadata"].get("tags", []):
            c["source"] = cell(instructor, c["id"])["source"]
    return nb


def answer(nb: dict, cid: str, body: str) -> None:
    """Replace the stub in exercise `cid` by `body` (indented as the function body)."""
    c = cell(nb, cid)
    assert "    # YOUR CODE HERE\n    raise NotImplementedError" in c["source"]
    c["source"] = c["source"].replace("    # YOUR CODE HERE\n    raise NotImplementedError", body)


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("release")
    course.release(out, FIXTURES)
    return out


def student_files(released: Path, name: str) -> tuple[dict, dict]:
    return load(released / name), load(FIXTURES / name)


# --- release ---------------------------------------------------------------------------------

def test_release_stubs_solutions_and_drops_hidden_checks(released):
    nb = load(released / "01_sum.ipynb")
    assert [c["id"] for c in nb["cells"]] == ["intro", "setup", "ex-add", "check-add", "ex-mean",
                                             "check-mean", "summary"]
    assert cell(nb, "ex-add")["source"] == ('def add(a, b):\n    """Return a + b."""\n'
                                            "    # YOUR CODE HERE\n    raise NotImplementedError")
    assert cell(nb, "check-add")["source"] == ('assert add(2, 3) == 5, "add(2, 3) should be 5"\n'
                                               'print("add: ok")')
    assert cell(nb, "ex-add")["metadata"] == {"tags": ["exercise"],
                                              "minbert": {"id": "ex-add", "kind": "exercise"}}
    assert cell(nb, "check-add")["metadata"]["minbert"] == {"id": "check-add", "kind": "check", "points": 2}
    assert cell(nb, "check-mean")["metadata"]["minbert"]["points"] == 1  # the default
    assert cell(nb, "setup")["metadata"] == {"tags": ["setup"]}  # instructor `execution` dropped
    assert set(nb["metadata"]) == {"kernelspec", "language_info"}  # `instructor_notes` dropped
    assert all(c["outputs"] == [] and c["execution_count"] is None
               for c in nb["cells"] if c["cell_type"] == "code")
    nbformat.validate(nbformat.reads(json.dumps(nb), as_version=4))


def test_no_solution_or_hidden_text_survives(released):
    secret = []
    for name in NAMES:
        for c in json.loads((FIXTURES / name).read_text())["cells"]:
            src, inside = "".join(c["source"]), False
            for line in src.splitlines():
                if line.strip() in course.MARKERS:
                    inside = line.strip().startswith("### BEGIN")
                elif inside and line.strip():
                    secret.append(line.strip())
    assert len(secret) == 6  # 4 solution lines, 2 hidden checks
    for name in NAMES:
        text = (released / name).read_text()
        for s in secret + ["BEGIN SOLUTION", "END SOLUTION", "HIDDEN CHECKS"]:
            assert json.dumps(s)[1:-1] not in text, (name, s)


def test_release_twice_is_byte_identical(tmp_path, released):
    assert course.main(["release", "--out", str(tmp_path), "--notebooks", str(FIXTURES)]) == 0
    for name in NAMES:
        assert (tmp_path / name).read_bytes() == (released / name).read_bytes()
        assert (tmp_path / name).read_bytes().endswith(b"}\n")
    # factor.txt is not a notebook; the folder is complete: package, data instructions, README,
    # the packages to install, what notebook 08 reads
    assert sorted(p.name for p in tmp_path.iterdir()) == [*NAMES, "README.md", "data", "minbert",
                                                          "requirements.txt", "results"]
    shipped = sorted(p for p in (released / "results").rglob("*") if p.is_file())
    assert shipped and all((tmp_path / p.relative_to(released)).read_bytes() == p.read_bytes()
                           for p in shipped)


@pytest.mark.parametrize("cid, source, message", [
    ("ex-mean", "x = 1\n### BEGIN SOLUTION\nx = 2", "without '### END SOLUTION'"),
    ("ex-mean", "x = 1\n### END SOLUTION", "is tagged exercise but has no '### BEGIN SOLUTION'"),
    ("check-mean", "x = 1\n### END HIDDEN CHECKS", "without '### BEGIN HIDDEN CHECKS'"),
    ("ex-mean", "x = 1  ### BEGIN SOLUTION\nx = 2", "must stand on a line of its own"),
])
def test_release_rejects_broken_markers(tmp_path, cid, source, message):
    nb = load(FIXTURES / "01_sum.ipynb")
    cell(nb, cid)["source"] = source
    save(nb, tmp_path / "in" / "01_sum.ipynb")
    with pytest.raises(ValueError, match=re.escape(message)) as err:
        course.release(tmp_path / "out", tmp_path / "in")
    assert cid in str(err.value)
    assert not (tmp_path / "out" / "01_sum.ipynb").exists()


def test_release_rejects_cells_without_ids(tmp_path):
    nb = load(FIXTURES / "01_sum.ipynb")
    del cell(nb, "ex-add")["id"]
    save(nb, tmp_path / "in" / "01_sum.ipynb")
    with pytest.raises(ValueError, match="has no id"):
        course.release(tmp_path / "out", tmp_path / "in")


# --- grading a fake class ------------------------------------------------------------------
# The fixture notebooks check with plain asserts, which no grader-side plan knows: they are
# scored in the kernel, as before issue 29, and every row says so (the course's own checks
# are all scored outside it: tests/test_grading_verdicts.py).

def make_class(released: Path, root: Path) -> Path:
    subs = root / "submissions"
    for name in NAMES:
        rel, inst = student_files(released, name)
        save(solved(rel, inst), subs / "ada" / name)     # every exercise right
        save(rel, subs / "bob" / name)                   # handed in untouched
    rel, _ = student_files(released, "01_sum.ipynb")     # cy: wrong answers, tampered checks
    answer(rel, "ex-add", "    return a - b")
    fake = cell(rel, "check-add")
    fake["source"] = "assert True"
    fake["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "add: ok\n"}]
    fake["execution_count"] = 3
    answer(rel, "ex-mean", "    return sum(xs)")
    rel["cells"].remove(cell(rel, "check-mean"))
    save(rel, subs / "cy" / "01_sum.ipynb")
    rel, _ = student_files(released, "02_scale.ipynb")   # one right, one passing only visible checks
    answer(rel, "ex-scale", "    return x * 10")
    answer(rel, "ex-clip", "    return min(x, hi)")
    save(rel, subs / "cy" / "02_scale.ipynb")
    return subs


CLASS_CSV = HEADER + """\
ada,01_sum.ipynb,check-add,2,2,pass,,check check-add: scored in the kernel (no grader-side check)
ada,01_sum.ipynb,check-mean,1,1,pass,,check check-mean: scored in the kernel (no grader-side check)
ada,02_scale.ipynb,check-scale,1,1,pass,,check check-scale: scored in the kernel (no grader-side check)
ada,02_scale.ipynb,check-clip,3,3,pass,,check check-clip: scored in the kernel (no grader-side check)
bob,01_sum.ipynb,check-add,2,0,error,exercise not implemented,check check-add: scored in the kernel (no grader-side check)
bob,01_sum.ipynb,check-mean,1,0,error,exercise not implemented,check check-mean: scored in the kernel (no grader-side check)
bob,02_scale.ipynb,check-scale,1,0,error,exercise not implemented,check check-scale: scored in the kernel (no grader-side check)
bob,02_scale.ipynb,check-clip,3,0,error,exercise not implemented,check check-clip: scored in the kernel (no grader-side check)
cy,01_sum.ipynb,check-add,2,0,fail,"AssertionError: add(2, 3) should be 5",check check-add: edited in the submission; graded from the instructor's copy; check check-add: scored in the kernel (no grader-side check)
cy,01_sum.ipynb,check-mean,1,0,fail,"AssertionError: mean([1, 2, 3]) should be 2",check check-mean: deleted in the submission; graded from the instructor's copy; check check-mean: scored in the kernel (no grader-side check)
cy,02_scale.ipynb,check-scale,1,1,pass,,check check-scale: scored in the kernel (no grader-side check)
cy,02_scale.ipynb,check-clip,3,0,fail,"AssertionError: hidden: clip(-1, 0, 3) should be 0",check check-clip: scored in the kernel (no grader-side check)
"""


@pytest.fixture(scope="module")
def graded_class(released, tmp_path_factory):
    root = tmp_path_factory.mktemp("class")
    subs = make_class(released, root)
    out = {}
    for n in (0, 2):
        t = time.monotonic()
        assert course.main(["grade", str(subs), "--out", str(root / f"n{n}" / "grades.csv"), "-n", str(n),
                            "--notebooks", str(FIXTURES), "--cell-timeout", "20"]) == 0
        out[n] = (root / f"n{n}", time.monotonic() - t)
    return out


def test_class_grades_match_hand_written_csv(graded_class):
    """Solutions get full marks, the untouched release 0, a partial answer exactly its points;
    a faked, edited or deleted check still fails, and a hidden check is graded."""
    folder, _ = graded_class[0]
    assert (folder / "grades.csv").read_text() == CLASS_CSV


def test_sequential_and_parallel_grades_are_byte_identical(graded_class):
    (seq, _), (par, _) = graded_class[0], graded_class[2]
    assert (seq / "grades.csv").read_bytes() == (par / "grades.csv").read_bytes()
    for student in ("ada", "bob", "cy"):
        assert (seq / "feedback" / f"{student}.md").read_bytes() == (par / "feedback" / f"{student}.md").read_bytes()


def test_feedback_and_totals(graded_class, capsys):
    folder, _ = graded_class[0]
    text = (folder / "feedback" / "cy.md").read_text()
    assert "Total: 1 / 7" in text
    assert "## 02_scale.ipynb: 1 / 4" in text
    assert "- `check-clip`: **fail** (0 / 3) — AssertionError: hidden: clip(-1, 0, 3) should be 0" in text
    assert "  - warning: check check-mean: deleted in the submission" in text
    rows = list(csv.DictReader(open(folder / "grades.csv")))
    assert course.totals_table(rows).splitlines() == [
        "student    total      max", "ada            7        7", "bob            0        7",
        "cy             1        7"]


def test_a_warning_with_a_semicolon_is_one_bullet(graded_class):
    """Warnings stay a list until grades.csv joins them with "; ", so a warning that itself
    holds "; " is one bullet in the feedback, not two."""
    folder, _ = graded_class[0]
    text = (folder / "feedback" / "cy.md").read_text()
    assert ("  - warning: check check-mean: deleted in the submission; "
            "graded from the instructor's copy\n") in text
    row = dict(student="zed", notebook="01_sum.ipynb", check="check-add", points="2", score="0",
               outcome="fail", reason="", warnings=["a; b", "c"])
    bullets = [ln for ln in course.feedback("zed", [row]).splitlines() if "warning" in ln]
    assert bullets == ["  - warning: a; b", "  - warning: c"]
    assert course.to_csv([row]).endswith(",a; b; c\n")


# --- broken submissions ----------------------------------------------------------------------

def make_broken(released: Path, root: Path) -> Path:
    subs = root / "submissions"
    rel, inst = student_files(released, "01_sum.ipynb")   # dan: an endless loop, then a solved 02
    ok = solved(rel, inst)
    cell(ok, "ex-mean")["source"] = "def mean(xs):\n    while True:\n        pass"
    save(ok, subs / "dan" / "01_sum.ipynb")
    save(solved(*student_files(released, "02_scale.ipynb")), subs / "dan" / "02_scale.ipynb")
    bad = solved(rel, inst)                                 # eve: a syntax error; 02 missing
    cell(bad, "ex-add")["source"] = "def add(a, b):\n    return a +"
    save(bad, subs / "eve" / "01_sum.ipynb")
    (subs / "fay").mkdir()                                  # fay: invalid JSON; 02 mangled
    (subs / "fay" / "01_sum.ipynb").write_text('{"cells": [')
    rel, inst = student_files(released, "02_scale.ipynb")
    rel["cells"].remove(cell(rel, "ex-scale"))
    clip = cell(rel, "ex-clip")
    clip.update(cell_type="markdown", source=cell(inst, "ex-clip")["source"])
    del clip["outputs"], clip["execution_count"]
    save(rel, subs / "fay" / "02_scale.ipynb")
    rel, inst = student_files(released, "01_sum.ipynb")    # gus: new cell ids, a duplicated exercise
    ids = solved(rel, inst)
    cell(ids, "ex-add")["id"], cell(ids, "ex-mean")["id"] = "a1b2", "c3d4"
    save(ids, subs / "gus" / "01_sum.ipynb")
    rel, inst = student_files(released, "02_scale.ipynb")
    dup = solved(rel, inst)
    wrong = copy.deepcopy(cell(dup, "ex-scale"))
    wrong["source"] = "def scale(x):\n    return 0"
    dup["cells"].insert(3, wrong)
    cell(dup, "ex-clip")["source"] += "\nimport transformers  # a finished implementation: flagged"
    save(dup, subs / "gus" / "02_scale.ipynb")
    return subs


BROKEN_CSV = HEADER + """\
dan,01_sum.ipynb,check-add,2,2,pass,,check check-add: scored in the kernel (no grader-side check)
dan,01_sum.ipynb,check-mean,1,0,timeout,stopped by the cell time limit (3 s),check check-mean: scored in the kernel (no grader-side check)
dan,02_scale.ipynb,check-scale,1,1,pass,,check check-scale: scored in the kernel (no grader-side check)
dan,02_scale.ipynb,check-clip,3,3,pass,,check check-clip: scored in the kernel (no grader-side check)
eve,01_sum.ipynb,check-add,2,0,error,exercise cell ex-add: SyntaxError (line 2),check check-add: scored in the kernel (no grader-side check)
eve,01_sum.ipynb,check-mean,1,1,pass,,check check-mean: scored in the kernel (no grader-side check)
eve,02_scale.ipynb,check-scale,1,0,missing-file,02_scale.ipynb not found in the submission,
eve,02_scale.ipynb,check-clip,3,0,missing-file,02_scale.ipynb not found in the submission,
fay,01_sum.ipynb,check-add,2,0,error,cannot read 01_sum.ipynb: not valid JSON (Expecting value: line 1 column 12 (char 11)),
fay,01_sum.ipynb,check-mean,1,0,error,cannot read 01_sum.ipynb: not valid JSON (Expecting value: line 1 column 12 (char 11)),
fay,02_scale.ipynb,check-scale,1,0,error,exercise not implemented,exercise ex-scale: missing from the submission; graded as not implemented; check check-scale: scored in the kernel (no grader-side check)
fay,02_scale.ipynb,check-clip,3,0,error,exercise not implemented,exercise ex-clip: turned into a markdown cell; graded as not implemented; check check-clip: scored in the kernel (no grader-side check)
gus,01_sum.ipynb,check-add,2,2,pass,,exercise ex-add: cell id not found; matched by position among exercise cells; check check-add: scored in the kernel (no grader-side check)
gus,01_sum.ipynb,check-mean,1,1,pass,,exercise ex-mean: cell id not found; matched by position among exercise cells; check check-mean: scored in the kernel (no grader-side check)
gus,02_scale.ipynb,check-scale,1,1,pass,,exercise ex-scale: appears 2 times in the submission; the first is used; check check-scale: scored in the kernel (no grader-side check)
gus,02_scale.ipynb,check-clip,3,3,pass,,"check check-clip: scored in the kernel (no grader-side check); review flag: exercise ex-clip line 5: uses `transformers`, a finished implementation"
"""


def test_broken_submissions_never_crash_the_grader(released, tmp_path):
    """An endless loop is cut by the cell timeout and the rest still runs; a syntax error, a
    missing file and invalid JSON score 0 with a reason; mangled cells become warnings."""
    subs = make_broken(released, tmp_path)
    rows = course.grade(subs, tmp_path / "grades.csv", FIXTURES,
                        options=course.GradeOptions(workers=2, cell_timeout=3))
    assert (tmp_path / "grades.csv").read_text() == BROKEN_CSV
    assert len(rows) == 16
    assert "timeout" in (tmp_path / "feedback" / "dan.md").read_text()


def test_notebook_time_limit_and_dead_kernel(released, tmp_path):
    rel, inst = student_files(released, "01_sum.ipynb")
    slow = solved(rel, inst)
    cell(slow, "ex-add")["source"] = "def add(a, b):\n    while True:\n        pass"
    save(slow, tmp_path / "slow.ipynb")
    rows = course.grade_notebook("hal", FIXTURES / "01_sum.ipynb", tmp_path / "slow.ipynb",
                                 course.GradeOptions(cell_timeout=30, notebook_timeout=2))
    assert [(r["outcome"], r["reason"]) for r in rows] == [
        ("timeout", "stopped by the notebook time limit (2 s)"),
        ("not-run", "notebook time limit (2 s) reached")]
    deaf = solved(rel, inst)  # ignores the interrupt: the kernel is given up, not waited for
    cell(deaf, "ex-add")["source"] = ("def add(a, b):\n    import signal\n"
                                      "    signal.signal(signal.SIGINT, signal.SIG_IGN)\n    while True:\n        pass")
    save(deaf, tmp_path / "deaf.ipynb")
    t = time.monotonic()
    rows = course.grade_notebook("hal", FIXTURES / "01_sum.ipynb", tmp_path / "deaf.ipynb",
                                 course.GradeOptions(cell_timeout=2, notebook_timeout=60))
    assert [(r["outcome"], r["reason"]) for r in rows] == [
        ("timeout", "stopped by the cell time limit (2 s)"),
        ("not-run", "the kernel did not recover from a timeout")]
    assert time.monotonic() - t < 30
    dead = solved(rel, inst)
    cell(dead, "ex-add")["source"] = "def add(a, b):\n    import os\n    os._exit(1)"
    save(dead, tmp_path / "dead.ipynb")
    rows = course.grade_notebook("ivy", FIXTURES / "01_sum.ipynb", tmp_path / "dead.ipynb")
    assert [(r["outcome"], r["reason"], r["score"]) for r in rows] == [
        ("error", "the kernel died running this cell", "0"), ("not-run", "the kernel died", "0")]


# --- the real notebooks ----------------------------------------------------------------------

REAL = course.numbered_notebooks(ROOT / "notebooks")


@pytest.mark.skipif(not REAL, reason="no numbered notebooks in notebooks/ yet")
def test_real_notebooks_solutions_full_marks_release_zero(tmp_path, data_root):
    """Each real notebook is graded twice: as solved (full marks) and as released (0 on every check)."""
    course.release(tmp_path / "release", ROOT / "notebooks")
    unchecked = [nb.name for nb in REAL
                 if not any("check" in c["metadata"].get("tags", []) for c in load(nb)["cells"])]
    assert unchecked == ["08_results.ipynb"], unchecked  # 08 only reads results/: no exercise
    for nb in REAL:
        rel, inst = load(tmp_path / "release" / nb.name), load(nb)
        save(solved(rel, inst), tmp_path / "subs" / "solution" / nb.name)
        save(rel, tmp_path / "subs" / "released" / nb.name)
    rows = course.grade(tmp_path / "subs", tmp_path / "grades.csv", ROOT / "notebooks",
                        options=course.GradeOptions(workers=2, cell_timeout=300))
    bad = [(r["notebook"], r["check"], r["outcome"], r["reason"], r["warnings"]) for r in rows
           if r["student"] == "solution" and r["outcome"] != "pass"]
    assert not bad, bad
    passed = [(r["notebook"], r["check"]) for r in rows
              if r["student"] == "released" and r["outcome"] == "pass"]
    assert not passed, passed


@pytest.mark.skipif(len(REAL) < 2, reason="needs notebooks 01 and 02")
def test_real_class_of_three_sequential_equals_parallel(tmp_path, data_root):
    """The acceptance run: three students on notebooks 01 and 02 (right, wrong and tampered
    answers), released and graded with -n 0 and -n 2; the two grades.csv must be identical.
    The wall times are printed, not asserted (the budget is 3 minutes in CI)."""
    two = [nb for nb in REAL if nb.name[:2] in ("01", "02")]
    assert [nb.name for nb in two] == ["01_attention.ipynb", "02_adamw.ipynb"]
    course.release(tmp_path / "release", ROOT / "notebooks")
    for nb in two:
        rel, inst = load(tmp_path / "release" / nb.name), load(nb)
        save(solved(rel, inst), tmp_path / "subs" / "ada" / nb.name)  # everything right
        bob = solved(rel, inst)
        if nb.name.startswith("01"):  # one plausible wrong answer: no 1/sqrt(d)
            c = cell(bob, "attn-ex-attention")
            assert " / math.sqrt(query.size(-1))" in c["source"]
            c["source"] = c["source"].replace(" / math.sqrt(query.size(-1))", "")
            save(bob, tmp_path / "subs" / "bob" / nb.name)  # bob never hands in 02
        cy = solved(rel, inst) if nb.name.startswith("01") else copy.deepcopy(rel)
        if nb.name.startswith("02"):  # no answers, every check "fixed" and outputs pasted
            for c in cy["cells"]:
                if "check" in c["metadata"].get("tags", []):
                    c["source"] = "assert True"
                    c["outputs"] = cell(inst, c["id"]).get("outputs", [])
        save(cy, tmp_path / "subs" / "cy" / nb.name)
    took = {}  # notebooks 03-08 are missing-file for everyone: no kernel runs for them
    for n in (0, 2):
        t = time.monotonic()
        course.grade(tmp_path / "subs", tmp_path / f"n{n}" / "grades.csv", ROOT / "notebooks",
                     options=course.GradeOptions(workers=n))
        took[n] = time.monotonic() - t
    print(f"class of three on 01, 02: -n 0 {took[0]:.0f} s, -n 2 {took[2]:.0f} s")
    assert (tmp_path / "n0" / "grades.csv").read_bytes() == (tmp_path / "n2" / "grades.csv").read_bytes()
    rows = [r for r in csv.DictReader(open(tmp_path / "n0" / "grades.csv"))
            if r["notebook"] in {nb.name for nb in two}]
    out = {(r["student"], r["notebook"][:2], r["check"]): r["outcome"] for r in rows}
    assert {o for (s, _, _), o in out.items() if s == "ada"} == {"pass"}
    assert out["bob", "01", "attn-check-attention"] == "fail"
    assert out["bob", "01", "attn-check-mask"] == "pass"  # the rest of 01 still earns its points
    assert {o for (s, n, _), o in out.items() if s == "bob" and n == "02"} == {"missing-file"}
    assert {o for (s, n, _), o in out.items() if s == "cy" and n == "01"} == {"pass"}
    assert "pass" not in {o for (s, n, _), o in out.items() if s == "cy" and n == "02"}


# --- LMS files, --only, progress, the student's check, the hand-out folder --------------------

# Gradescope's documented keys (gradescope-autograders.readthedocs.io, "Autograder
# Specifications", results.json), written out here independently of course.reports
GS_TOP = {"score", "execution_time", "output", "output_format", "test_output_format",
          "test_name_format", "visibility", "stdout_visibility", "extra_data", "tests",
          "leaderboard"}
GS_TEST = {"score", "max_score", "status", "name", "name_format", "number", "output",
           "output_format", "tags", "visibility", "extra_data"}
GS_VISIBILITY = {"hidden", "after_due_date", "after_published", "visible"}


def test_gradescope_results_json_has_the_documented_keys(graded_class):
    folder, _ = graded_class[0]
    rows = list(csv.DictReader(open(folder / "grades.csv")))
    for student in ("ada", "bob", "cy"):
        res = json.loads((folder / "gradescope" / student / "results.json").read_text())
        assert set(res) <= GS_TOP and res["visibility"] in GS_VISIBILITY
        mine = [r for r in rows if r["student"] == student]
        assert len(res["tests"]) == len(mine)
        for t, r in zip(res["tests"], mine):
            assert set(t) <= GS_TEST and {"name", "score", "max_score", "output"} <= set(t)
            assert t["name"] == f"{r['notebook']}: {r['check']}"
            assert (t["score"], t["max_score"]) == (float(r["score"]), float(r["points"]))
            assert t["status"] == ("passed" if r["outcome"] == "pass" else "failed")
            assert r["outcome"] in t["output"]
        assert res["score"] == sum(float(r["score"]) for r in mine)
    cy = json.loads((folder / "gradescope" / "cy" / "results.json").read_text())
    assert cy["score"] == 1 and cy["tests"][3]["output"].startswith("fail: AssertionError: hidden")


def test_gradebook_csv_one_row_per_student(graded_class):
    folder, _ = graded_class[0]
    assert (folder / "gradebook.csv").read_text() == (
        "Student,SIS Login ID,01_sum (3),02_scale (4)\n"
        "ada,ada,3,4\nbob,bob,0,0\ncy,cy,0,1\n")


def test_only_grades_the_assigned_notebooks_with_progress(released, tmp_path, capsys):
    subs = make_class(released, tmp_path)
    assert course.main(["grade", str(subs), "--out", str(tmp_path / "g" / "grades.csv"),
                        "--notebooks", str(FIXTURES), "--only", "02", "-n", "2"]) == 0
    out = capsys.readouterr()
    assert sorted(ln.split(" ", 2)[2] for ln in out.err.splitlines() if ln.startswith("graded ")) \
        == ["ada/02_scale.ipynb", "bob/02_scale.ipynb", "cy/02_scale.ipynb"]
    assert "graded 3/3 " in out.err
    rows = list(csv.DictReader(open(tmp_path / "g" / "grades.csv")))
    assert {r["notebook"] for r in rows} == {"02_scale.ipynb"}
    assert course.totals_table(rows).splitlines()[1:] == [
        "ada            4        4", "bob            0        4", "cy             1        4"]
    assert course.main(["grade", str(subs), "--out", str(tmp_path / "x.csv"),
                        "--notebooks", str(FIXTURES), "--only", "09"]) == 1
    assert "--only 09: no such notebook" in capsys.readouterr().err


def test_student_check_prints_visible_verdicts_and_total(tmp_path, capsys):
    """`course check` on an instructor copy with two answers changed: a wrong one fails; one
    that is wrong only on the hidden input passes, since hidden checks are not run."""
    nb = load(FIXTURES / "01_sum.ipynb")
    cell(nb, "ex-add")["source"] = "def add(a, b):\n    return abs(a) + b  # fails add(-1, 1) only"
    cell(nb, "ex-mean")["source"] = "def mean(xs):\n    return sum(xs)"
    save(nb, tmp_path / "mine" / "01_sum.ipynb")
    assert course.main(["check", str(tmp_path / "mine" / "01_sum.ipynb")]) == 1
    lines = [ln.split() for ln in capsys.readouterr().out.splitlines()]
    assert lines[1][:5] == ["pass", "2", "/", "2", "check-add"]
    assert lines[2][:5] == ["fail", "0", "/", "1", "check-mean"]
    assert " ".join(lines[3]).startswith("Total: 2 / 3")
    save(solved(load(FIXTURES / "01_sum.ipynb"), load(FIXTURES / "01_sum.ipynb")),
         tmp_path / "ok" / "01_sum.ipynb")
    assert course.main(["check", str(tmp_path / "ok" / "01_sum.ipynb")]) == 0


def test_student_check_of_a_released_notebook_and_of_no_notebook(tmp_path, capsys):
    """`python -m minbert.check` (the hand-out's) on the released fixture: every exercise
    unanswered, so every check is "not done yet" and the total 0; a file that is no notebook
    is refused with its name, before any kernel starts."""
    from minbert import check as student
    course.release(tmp_path / "rel", FIXTURES, package=False)
    assert student.main([str(tmp_path / "rel" / "01_sum.ipynb")]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split()[:3] for ln in lines[1:3]] == [["not", "done", "yet"]] * 2, lines
    assert lines[3].startswith("Total: 0 / 3"), lines
    bad = tmp_path / "bad.ipynb"
    bad.write_text("{not json")
    assert student.main([str(bad)]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "not a Jupyter notebook" in err, err


def test_release_is_a_complete_world_readable_student_folder(tmp_path):
    """The hand-out folder: released notebooks, the package, data instructions, a README; no
    marker, hidden-check line or solution line of any notebook in its notebooks, no hidden
    line anywhere, every file readable by others."""
    source = ROOT / "notebooks" if REAL else FIXTURES
    course.release(tmp_path / "out", source)
    out = tmp_path / "out"
    assert (out / "minbert" / "__init__.py").exists() and (out / "README.md").exists()
    assert (out / "data" / "README.md").exists() and (out / "minbert" / "check.py").exists()
    assert not (out / "course").exists() and not (out / "minbert" / "course").exists(), \
        "the grader (its inputs, oracles, harness) is another package: it stays home"
    hidden, solution, visible = set(), set(), ""
    for nb in course.numbered_notebooks(source):
        for c in load(nb)["cells"]:
            tags = c["metadata"].get("tags", [])
            hidden |= secret_lines(c["source"]) if "check" in tags else set()
            solution |= secret_lines(c["source"]) if "exercise" in tags else set()
            visible += course.student_source(c) + "\n"
    solution = {s for s in solution if s not in visible}  # e.g. `loss.backward()` in a hint
    assert hidden and solution
    for p in out.rglob("*"):
        assert p.stat().st_mode & 0o004, p  # readable by others
        if p.is_file() and p.suffix in (".py", ".ipynb", ".md"):
            text = p.read_text(encoding="utf-8")
            assert not any(m in text for m in course.MARKERS), p
            assert not [h for h in hidden if h in text], p
            if p.suffix == ".ipynb":
                assert not [s for s in solution if json.dumps(s)[1:-1] in text], p
    assert not list(out.rglob("*.pyc")) and not (out / "notebooks").exists()


def test_guard_never_flags_the_solutions_or_the_stubs():
    """Every exercise of every notebook, as solved in the instructor copy and as released,
    raises no review flag, nor does ordinary code (a loop variable named like a setup name);
    a call of torch's internals in the same cell is flagged with its line."""
    notebooks = REAL or course.numbered_notebooks(FIXTURES)
    for nb in notebooks:
        inst = load(nb)
        ctx = guard.Context(inst)
        for c in inst["cells"]:
            if "exercise" in c["metadata"].get("tags", []):
                assert guard.flags(c["id"], c["source"], ctx) == [], (nb.name, c["id"])
                assert guard.flags(c["id"], course.student_source(c), ctx) == [], (nb.name, c["id"])
                patched = c["source"] + "\nimport torch\nmm = torch.ops.aten.mm"
                n = len(patched.splitlines())
                assert guard.flags(c["id"], patched, ctx) == [
                    f"exercise {c['id']} line {n}: uses `torch.ops.aten.mm`, a finished "
                    "implementation"], (nb.name, c["id"])
                honest = c["source"] + "\nfor t in range(2):\n    data = [x for x in range(t)]\n"
                assert guard.flags(c["id"], honest, ctx) == [], "loop variables are ordinary code"

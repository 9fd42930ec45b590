"""The hand-out folder away from the repository (docs/instructors.md, section 2): notebook 08
finds the results the release ships and runs to its end there; `python -m minbert.check` run in it
scores an untouched notebook 0 and the instructor's answers full marks; `make check` takes
the student's file and refuses none or an instructor copy."""
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import course
from minbert.env import RESULTS_ENV
from minbert.report import results as R

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def handout(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("handout")
    assert ROOT not in out.resolve().parents, "the hand-out must lie outside the repository"
    course.release(out, ROOT / "notebooks")
    return out


def student_env() -> dict:
    """A student's shell in CI mode: no path to the repository's package or results."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", RESULTS_ENV)}
    return {**env, "MINBERT_CI": "1"}


def test_release_ships_what_08_reads(handout):
    shipped = sorted(p.relative_to(handout / "results").as_posix()
                     for p in (handout / "results").rglob("*"))
    json_files = [p.relative_to(ROOT / "results") for p in R.result_files(ROOT / "results")]
    assert json_files, "the repository has result JSONs"
    assert {f"{p.as_posix()}.gz" for p in json_files} <= set(shipped)
    assert {f"figures/{p.name}" for p in (ROOT / "results" / "figures").glob("*.png")} <= \
        set(shipped)
    one = json_files[0]
    assert R.read_result(handout / "results" / f"{one}.gz") == R.read_result(ROOT / "results" / one)
    readme = (handout / "README.md").read_text()
    assert "python -m minbert.check 01_attention.ipynb" in readme


def test_the_handout_ships_only_the_taught_package(handout):
    """The grader (`course/`: oracles, drawn inputs, the harness, the verdicts) is another
    package: nothing of it is in the hand-out, and the hand-out's own check is minbert's."""
    names = {p.name for p in handout.rglob("*")}
    assert not (handout / "course").exists() and not (handout / "minbert" / "course").exists()
    assert not {"verdict.py", "harness.py", "sandbox.py", "nbvalplugin.py", "grading.py"} & names
    assert not [n for n in names if n.startswith("oracles")]
    assert (handout / "minbert" / "check.py").is_file()


def test_handout_sets_up_without_the_repository(handout):
    """The README installs from the folder itself: torch first (environment.yml's pin), then
    requirements.txt, which lists pyproject.toml's dependencies but torch (read here with
    packaging's parser, not the release's)."""
    from packaging.requirements import Requirement
    readme = (handout / "README.md").read_text()
    pin = next(x.strip(" -") for x in (ROOT / "environment.yml").read_text().splitlines()
               if x.strip(" -").startswith("torch=="))
    assert f"pip install {pin}" in readme and "pip install -r requirements.txt" in readme
    assert "course repository" not in readme and "-e ." not in readme
    shipped = [Requirement(x).name for x in (handout / "requirements.txt").read_text().splitlines()
               if x and not x.startswith("#")]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert shipped == [Requirement(x).name for x in pyproject if Requirement(x).name != "torch"]


def test_08_runs_to_the_end_in_the_handout(handout, monkeypatch):
    """Run in the hand-out folder as a student would (CI mode), with a last cell that says
    which package and results it used: the hand-out's own."""
    for key, value in student_env().items():
        monkeypatch.setenv(key, value)
    for key in ("PYTHONPATH", RESULTS_ENV):
        monkeypatch.delenv(key, raising=False)
    nb = nbformat.read(handout / "08_results.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(
        "import minbert\nprint(minbert.__file__)\nprint(RESULTS)\nprint(len(df))"))
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(handout)}}).execute()
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert not errors, errors
    used = nb.cells[-1].outputs[0]["text"].split("\n")
    assert Path(used[0]) == handout / "minbert" / "__init__.py"
    assert Path(used[1]) == handout / "results" and int(used[2]) > 0


def student_check(folder: Path, name: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "minbert.check", name], cwd=folder,
                          env=student_env(), capture_output=True, text=True, timeout=600)


def test_student_check_in_the_handout(handout, data_root):
    """The README's command, run in the hand-out folder: 0 points untouched, full points with
    the instructor's solutions typed into the exercise cells."""
    name = "01_attention.ipynb"
    untouched = student_check(handout, name)
    total = re.search(r"Total: (\S+) / (\S+)", untouched.stdout)
    assert untouched.returncode == 1 and total and total[1] == "0" and float(total[2]) > 0, \
        untouched.stdout + untouched.stderr
    released, instructor = course.read_notebook(handout / name), \
        course.read_notebook(ROOT / "notebooks" / name)
    answers = {c["id"]: c["source"] for c in instructor["cells"]
               if "exercise" in c["metadata"].get("tags", [])}
    for c in released["cells"]:
        c["source"] = answers.get(c["id"], c["source"])
    (handout / name).write_text(course.dumps_notebook(released))
    solved = student_check(handout, name)
    assert solved.returncode == 0 and f"Total: {total[2]} / {total[2]}" in solved.stdout, \
        solved.stdout + solved.stderr


def make(*args, venv) -> subprocess.CompletedProcess:
    """make in the repository, with a virtual environment that does not exist: the refusals
    come before anything is built, and -n only prints."""
    return subprocess.run(["make", "--no-print-directory", *args, f"VENV={venv}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)  # under `make test`
    # too (a make inside make prints "Entering directory" by default)


def test_make_check_takes_the_students_file(handout, tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed (apt-get install -y make)")
    venv = tmp_path / "no-venv"
    for args in ((), ("FILE=notebooks/01_attention.ipynb",),
                 ("FILE=./notebooks/../notebooks/02_adamw.ipynb",),
                 (f"FILE={ROOT / 'notebooks' / '01_attention.ipynb'}",)):
        r = make("check", *args, venv=venv)
        assert r.returncode != 0 and "make check FILE=" in r.stderr, (args, r.stderr)
        assert not r.stdout and not venv.exists(), args  # refused before anything ran
    mine = handout / "01_attention.ipynb"
    r = make("-n", "check", f"FILE={mine}", venv=venv)
    assert r.stdout.splitlines()[-1] == f'python -m minbert.check "{mine}"', r.stdout

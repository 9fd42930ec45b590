"""The student release: a folder to hand out. Every numbered instructor notebook with its
solutions stubbed out, its hidden checks removed and only the metadata a student needs; the
`minbert` package (which the notebooks import); the data instructions; what notebook 08
reads (the repository's result JSONs, gzipped, and its figures); a short README. No
instructor notebook, test or instructor doc goes in; every file is world-readable."""
import gzip
import shutil
import tomllib
from pathlib import Path

from minbert import files

from .notebooks import (HIDDEN, MARKERS, SOLUTION, dumps_notebook, instructor_notebooks, kind,
                        points, read_notebook)

CELL_META = ("tags", "collapsed", "scrolled", "jupyter", "editable", "deletable")  # kept on release
NB_META = ("kernelspec", "language_info")


def replace_blocks(source: str, markers: tuple, stub, where: str) -> str:
    """Replace every `markers` block (marker lines included) by stub(indent) lines."""
    begin, end = markers
    out, indent = [], None
    for line in source.splitlines(keepends=True):
        s = line.strip()
        if s == begin:
            if indent is not None:
                raise ValueError(f"{where}: nested {begin!r}")
            indent = line[: len(line) - len(line.lstrip())]
        elif s == end:
            if indent is None:
                raise ValueError(f"{where}: {end!r} without {begin!r}")
            out += [f"{indent}{text}\n" for text in stub]
            indent = None
        elif indent is None:
            out.append(line)
    if indent is not None:
        raise ValueError(f"{where}: {begin!r} without {end!r}")
    return "".join(out).rstrip("\n") if not source.endswith("\n") else "".join(out)


def student_source(cell: dict, where: str = "") -> str:
    """What the student sees: solutions stubbed out, hidden checks removed."""
    stub = ["# YOUR CODE HERE", "raise NotImplementedError"] if cell["cell_type"] == "code" \
        else ["YOUR ANSWER HERE"]
    src = replace_blocks(cell["source"], SOLUTION, stub, where)
    src = replace_blocks(src, HIDDEN, [], where)
    leftover = [m for m in MARKERS if m in src]
    if leftover:  # a marker not on a line of its own would leak what follows it
        raise ValueError(f"{where}: {leftover[0]!r} must stand on a line of its own")
    return src


def check_cell(cell: dict, where: str) -> str | None:
    """The cell's kind, after the checks that make it releasable and gradable."""
    k = kind(cell)
    if not cell.get("id"):
        raise ValueError(f"{where} has no id: save it with nbformat >= 4.5 (JupyterLab 3+)")
    if k == "exercise" and SOLUTION[0] not in cell["source"]:
        raise ValueError(f"{where} is tagged exercise but has no {SOLUTION[0]!r} block")
    if k and cell["cell_type"] != "code":
        raise ValueError(f"{where} is tagged {k} but is not a code cell")
    return k


def release_cell(cell: dict, where: str) -> dict:
    """The student's copy of one cell: no outputs, the kept metadata, and for exercise and
    check cells their id, kind (and points) under metadata.minbert."""
    k = check_cell(cell, where)
    cid = cell["id"]
    meta = {key: cell["metadata"][key] for key in CELL_META if key in cell["metadata"]}
    if k:
        meta["minbert"] = {"id": cid, "kind": k}
        if k == "check":
            meta["minbert"]["points"] = points(cell)
    new = {"cell_type": cell["cell_type"], "id": cid, "metadata": meta,
           "source": student_source(cell, where)}
    if cell["cell_type"] == "code":
        new.update(outputs=[], execution_count=None)
    if "attachments" in cell and cell["cell_type"] != "code":
        new["attachments"] = cell["attachments"]
    return new


def release_notebook(nb: dict, name: str = "notebook") -> dict:
    nb_meta = nb.get("metadata", {})
    return {"cells": [release_cell(cell, f"{name}: cell {i} (id {cell.get('id')!r})")
                      for i, cell in enumerate(nb["cells"])],
            "metadata": {k: nb_meta[k] for k in NB_META if k in nb_meta},
            "nbformat": 4, "nbformat_minor": max(5, nb.get("nbformat_minor", 5))}


PACKAGE = Path(files.__file__).resolve().parent  # the taught package, all the hand-out ships
RESULTS = PACKAGE.parent / "results"  # the repository's: what notebook 08 reads there
SKIP = ("__pycache__", "*.pyc", "*.egg-info", ".*")
STUDENT_README = """# {title}

Your course folder. Work through `01_...` to `{last}` in order in JupyterLab, started
from this folder, and hand in the notebooks under their names (do not rename them).

Set up once (Python 3.11 or newer), from this folder:

    python -m venv .venv && . .venv/bin/activate
    pip install {torch}      # first: the build the course is tested with (CPU)
    pip install -r requirements.txt
    jupyter lab

- `minbert/`: the course package the notebooks import from this folder. What you write
  flows into it: an exercise that passes its check is saved in `yours/` (one file a
  piece), and the later notebooks run your version; until then they run stand-ins, and
  each notebook prints one line saying which pieces are yours.
- `data/README.md`: how to get the data files (or set `MINBERT_DATA`).
- `results/`: the course's results-table runs, which `{last}` reads (one gzipped
  JSON per run, every dev prediction included) and the figures it shows.
- Before handing in, score your own notebook on its visible checks, from this folder:

      python -m minbert.check 01_attention.ipynb

  It runs the notebook top to bottom in a fresh kernel (small data and steps, as the
  grader does) and prints each visible check's verdict, its points and your total. The
  grader also runs hidden checks, so your grade can be lower.
"""


def requirements() -> tuple[str, str]:
    """(the torch pin of environment.yml, requirements.txt: the package's dependencies from
    pyproject.toml, torch left out: it is installed first, on its own)."""
    root = PACKAGE.parent
    torch = next(line.strip(" -") for line in (root / "environment.yml").read_text().splitlines()
                 if line.strip(" -").startswith("torch=="))
    deps = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    lines = [d for d in deps if not d.startswith("torch")]
    return torch, f"# pip install {torch} first, then: pip install -r requirements.txt\n" \
        + "\n".join(lines) + "\n"


def release(out_dir, notebooks_dir="notebooks", package: bool = True) -> list[Path]:
    """Write the student folder `out_dir`: the student version of every numbered notebook of
    `notebooks_dir`, and (package=True) the package, data instructions and a README.
    Returns the notebooks written."""
    # all or nothing: every notebook is checked before one is written
    texts = {path.name: dumps_notebook(release_notebook(read_notebook(path), path.name))
             for path in instructor_notebooks(notebooks_dir)}
    out = Path(out_dir)
    for name, text in texts.items():
        files.write_text(out / name, text)
    if package:
        if not RESULTS.is_dir():
            raise FileNotFoundError(f"{RESULTS}: no results/ beside the package to ship")
        copy_package(out)
        copy_results(out)
        names = sorted(texts)
        torch, reqs = requirements()
        files.write_text(out / "requirements.txt", reqs)
        files.write_text(out / "README.md", STUDENT_README.format(
            title="minbert: the student folder", last=names[-1], torch=torch))
        data_readme = PACKAGE.parent / "data" / "README.md"
        if data_readme.exists():
            files.write_text(out / "data" / "README.md", data_readme.read_text(encoding="utf-8"))
    return [out / name for name in texts]


def copy_package(out: Path) -> None:
    """out/minbert: the taught package as installed here (the grader, `course/`, is another
    package and never shipped), world-readable, replaced whole; every SOLUTION block of its
    files (a written-out exercise answer) removed, so the hand-out runs the stand-ins before
    them, or the student's saved code (minbert.yours)."""
    tmp = out / ".minbert.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(PACKAGE, tmp, ignore=shutil.ignore_patterns(*SKIP))
    for p in (tmp / "checks").glob("*.py"):
        p.write_text(strip_hidden(p.read_text(encoding="utf-8"), p.name), encoding="utf-8")
    for p in tmp.rglob("*.py"):  # the written-out answers go; their stand-ins stay
        text = p.read_text(encoding="utf-8")
        p.write_text(replace_blocks(text, SOLUTION, [], str(p.relative_to(tmp))), encoding="utf-8")
    world_readable(tmp)
    files.replace_dir(tmp, out / "minbert")


def copy_results(out: Path) -> None:
    """out/results, replaced whole: every result JSON of RESULTS gzipped (a quarter of the
    size, every dev prediction kept; notebook 08 reads either) and the figures it shows."""
    tmp = out / ".results.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    for f in sorted(RESULTS.rglob("*.json")):
        # mtime=0: releasing twice gives the same bytes
        files.write_bytes(tmp / f.relative_to(RESULTS).with_suffix(".json.gz"),
                          gzip.compress(f.read_bytes(), compresslevel=6, mtime=0))
    for f in sorted((RESULTS / "figures").glob("*.png")):
        files.write_bytes(tmp / "figures" / f.name, f.read_bytes())
    world_readable(tmp)
    files.replace_dir(tmp, out / "results")


def world_readable(folder: Path) -> None:
    for p in [folder, *folder.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)


HIDDEN_BEGIN, HIDDEN_END = "# BEGIN HIDDEN CHECK", "# END HIDDEN CHECK"


def strip_hidden(source: str, name: str = "module") -> str:
    """A check module for the student release: each `# BEGIN HIDDEN CHECK` ... `# END HIDDEN
    CHECK` block (the hidden half of a check: its inputs and expected values) becomes one
    `raise`, so the hand-out holds no hidden check; the grader imports the instructor's copy."""
    out, inside = [], False
    for number, line in enumerate(source.splitlines(), start=1):
        if line.strip().startswith(HIDDEN_BEGIN):
            if inside:
                raise ValueError(f"{name}, line {number}: {HIDDEN_BEGIN} inside another block")
            inside = True
            out.append(line[:len(line) - len(line.lstrip())] + 'raise RuntimeError("the hidden '
                       'half of this check runs in the instructor\'s grader only")')
        elif line.strip().startswith(HIDDEN_END):
            if not inside:
                raise ValueError(f"{name}, line {number}: {HIDDEN_END} without {HIDDEN_BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{name}: {HIDDEN_BEGIN} never closed by {HIDDEN_END}")
    return "\n".join(out) + "\n"

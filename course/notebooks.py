"""Notebooks as plain JSON, and the conventions the release and the grader rely on.

Cells tagged `exercise` hold a `### BEGIN SOLUTION` / `### END SOLUTION` block; cells tagged
`check` assert an exercise and may hold a `### BEGIN HIDDEN CHECKS` / `### END HIDDEN CHECKS`
block; a check's points live in `cell.metadata.minbert.points` (default 1). See
docs/notebooks.md; the tags and points are read by minbert/check.py, which the hand-out
ships. Plain JSON (not nbformat) keeps `release` fast and its output byte-stable.
"""
import copy
import json
import stat
from pathlib import Path

from minbert.check import fmt, kind, points, tags  # the cell conventions, shared with the hand-out

SOLUTION = ("### BEGIN SOLUTION", "### END SOLUTION")
HIDDEN = ("### BEGIN HIDDEN CHECKS", "### END HIDDEN CHECKS")
MARKERS = SOLUTION + HIDDEN
SECRET_MIN = 8  # shorter solution lines (`pass`, `return x`) are too common to withhold


def numbered_notebooks(folder) -> list[Path]:
    return sorted(Path(folder).glob("[0-9][0-9]_*.ipynb"))


def instructor_notebooks(folder) -> list[Path]:
    """The numbered notebooks of `folder`; FileNotFoundError if there are none."""
    paths = numbered_notebooks(folder)
    if not paths:
        raise FileNotFoundError(f"no numbered notebooks (NN_name.ipynb) in {folder}")
    return paths


def read_notebook(path) -> dict:
    """json-load a notebook and join every cell source into one string.
    Raises ValueError (invalid JSON or not a notebook) and OSError."""
    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"not valid JSON ({e})") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list) or not all(
            isinstance(c, dict) and "cell_type" in c for c in nb["cells"]):
        raise ValueError("not a Jupyter notebook (no list of cells)")
    for cell in nb["cells"]:
        src = cell.get("source", "")
        cell["source"] = "".join(src) if isinstance(src, list) else str(src)
        cell.setdefault("metadata", {})
    return nb


def dumps_notebook(nb: dict) -> str:
    """Deterministic text: sources as line lists (like nbformat), sorted keys, indent 1."""
    nb = copy.deepcopy(nb)
    for cell in nb["cells"]:
        cell["source"] = cell["source"].splitlines(keepends=True)
    return json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def secret_lines(source: str) -> set:
    """The stripped lines inside solution and hidden-check blocks (what the grader never quotes
    back, guard.clean_reason), short ones left out."""
    out, inside = set(), False
    for line in source.splitlines():
        s = line.strip()
        if s in (SOLUTION[0], HIDDEN[0]):
            inside = True
        elif s in (SOLUTION[1], HIDDEN[1]):
            inside = False
        elif inside and len(s) >= SECRET_MIN:
            out.add(s)
    return out


class Ungradable(Exception):
    """A submitted file that cannot be graded at all: every check scores 0 with `outcome`."""

    def __init__(self, outcome: str, reason: str):
        super().__init__(reason)
        self.outcome = outcome


def load_submission(path, name: str) -> dict:
    """The student's notebook: a regular file of its own, in a folder that is no link."""
    path = Path(path)
    if path.parent.is_symlink():
        raise Ungradable("error", f"the student's folder is a symbolic link; {name} not read")
    if not path.exists() and not path.is_symlink():
        raise Ungradable("missing-file", f"{name} not found in the submission")
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode):
        raise Ungradable("error", f"{name} is a symbolic link, not a file: hand in the notebook "
                                  "itself")
    if not stat.S_ISREG(st.st_mode):
        raise Ungradable("error", f"{name} is not a regular file")
    if st.st_nlink > 1:
        raise Ungradable("error", f"{name} is hard-linked to another file: hand in a copy of "
                                  "your own")
    try:
        return read_notebook(path)
    except (ValueError, OSError, UnicodeDecodeError) as e:
        raise Ungradable("error", f"cannot read {name}: {e}") from None

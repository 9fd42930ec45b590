"""`python -m course check NB.ipynb`: the student's own check (minbert/check.py), on any copy.

The hand-out ships `python -m minbert.check`; this command runs the same check on an
instructor copy too: its hidden-check blocks are removed first (a released notebook has
none), so the total is what the student would see.
"""
from pathlib import Path

import nbformat

from minbert.check import check as student_check

from .notebooks import HIDDEN, kind, read_notebook
from .releasing import replace_blocks


def visible(nb: dict, name: str) -> dict:
    for i, cell in enumerate(nb["cells"]):
        if kind(cell) == "check":
            cell["source"] = replace_blocks(cell["source"], HIDDEN, [], f"{name}: cell {i}")
    return nb


def check(path, cell_timeout: float = 300, out=None) -> int:
    """Print the verdicts; 0 when every visible check passed, else 1."""
    path = Path(path).resolve()
    nb = nbformat.from_dict(visible(read_notebook(path), path.name))
    return student_check(path, cell_timeout, out, nb=nb)

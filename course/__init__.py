"""The instructor's course tooling, a package of its own beside the taught `minbert`: the
student release, sandboxed grading and the student's check on any copy (docs/instructors.md).

    python -m course release --out DIR [--notebooks notebooks/]
    python -m course grade SUBMISSIONS --out grades.csv [-n N] [--only 01 02] [--strict]
                           [--cell-timeout S] [--notebook-timeout S] [--memory MB] [--work-mb MB]
    python -m course check 01_attention.ipynb

`release` writes the student folder (every notebooks/NN_*.ipynb with solutions stubbed out and
hidden checks removed, the taught package `minbert/` without its written-out answers, data
instructions); nothing of this package is in it. `grade` runs each student's exercise cells
inside the pristine instructor notebook with nbval, one sandboxed kernel per notebook, and
scores each check outside the kernel, on inputs it drew itself, against its own oracle.
`check` is the hand-out's `python -m minbert.check` (minbert/check.py), run on a copy with its
hidden checks removed. The modules: notebooks (the JSON; the cell conventions are
minbert/check.py's), releasing, guard (review flags, fresh imports, clean reasons), verdict
(plans, the harness cell, reading results), oracles and oracles_* (each check's drawn inputs
and oracle), harness (the code pasted into the kernel), sandbox (the kernel launcher),
staging (the neutral copies the sandbox binds), nbvalplugin, engine (one nbval run), grading,
reports, checking, cli.
"""
from .cli import main
from .grading import GradeOptions, assemble, grade, grade_notebook
from .notebooks import (HIDDEN, MARKERS, SOLUTION, dumps_notebook, numbered_notebooks,
                        read_notebook)
from .releasing import release, release_notebook, student_source
from .reports import feedback, gradebook, gradescope, to_csv, totals_table

__all__ = ["GradeOptions", "HIDDEN", "MARKERS", "SOLUTION", "assemble", "dumps_notebook",
           "feedback", "grade", "grade_notebook", "gradebook", "gradescope", "main",
           "numbered_notebooks", "read_notebook", "release", "release_notebook",
           "student_source", "to_csv", "totals_table"]

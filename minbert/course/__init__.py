"""Course tooling: the student release, sandboxed grading and a student's check (docs/instructors.md).

    python -m minbert.course release --out DIR [--notebooks notebooks/]
    python -m minbert.course grade SUBMISSIONS --out grades.csv [-n N] [--only 01 02] [--strict]
                                   [--cell-timeout S] [--notebook-timeout S] [--memory MB]
                                   [--work-mb MB]
    python -m minbert.course check 01_attention.ipynb

`release` writes the student folder (every notebooks/NN_*.ipynb with solutions stubbed out and
hidden checks removed, the package, data instructions); `grade` runs each student's exercise
cells inside the pristine instructor notebook with nbval, one sandboxed kernel per notebook,
and scores each check outside the kernel, on inputs it drew itself, against its own oracle;
`check` runs a student's own notebook and prints its visible checks' verdicts. The modules:
notebooks (the JSON and the cell conventions), releasing, guard (review flags, fresh
imports, clean reasons), verdict (plans, the harness cell, reading results), oracles and
oracles_* (each check's drawn inputs and oracle), harness (the code pasted into the kernel),
sandbox (the kernel launcher), nbvalplugin, engine (one nbval run), grading, reports,
checking, cli.
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

"""Course tooling: the student release and tamper-proof grading (docs/instructors.md).

    python -m minbert.course release --out DIR [--notebooks notebooks/]
    python -m minbert.course grade SUBMISSIONS --out grades.csv [-n N] [--notebooks notebooks/]
                                   [--cell-timeout S] [--notebook-timeout S]

`release` writes the student version of every notebooks/NN_*.ipynb (solutions stubbed out,
hidden checks removed); `grade` runs each student's exercise cells inside the pristine
instructor notebook and scores its check cells. The modules: notebooks (the JSON and the
cell conventions), releasing, kernel (running a notebook), grading, cli.
"""
from .cli import main
from .grading import assemble, feedback, grade, grade_notebook, to_csv, totals_table
from .kernel import run_cells
from .notebooks import (HIDDEN, MARKERS, SOLUTION, dumps_notebook, numbered_notebooks,
                        read_notebook)
from .releasing import release, release_notebook, student_source

__all__ = ["HIDDEN", "MARKERS", "SOLUTION", "assemble", "dumps_notebook", "feedback", "grade",
           "grade_notebook", "main", "numbered_notebooks", "read_notebook", "release",
           "release_notebook", "run_cells", "student_source", "to_csv", "totals_table"]

"""The command line: `python -m course release|grade|check ...`."""
import argparse
import sys
from pathlib import Path

from .checking import check
from .grading import GradeOptions, grade
from .releasing import release
from .reports import totals_table

DESCRIPTION = "The instructor's course tooling: the student release, sandboxed grading " \
              "(docs/instructors.md) and the student's check (python -m minbert.check) on any copy."


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m course", description=DESCRIPTION)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("release", help="write the student folder: released notebooks, package, "
                                       "data instructions")
    r.add_argument("--out", required=True, type=Path)
    r.add_argument("--notebooks", default="notebooks", type=Path)
    g = sub.add_parser("grade", help="grade SUBMISSIONS/<student>/NN_*.ipynb (runs student code "
                                     "in a sandbox)")
    g.add_argument("submissions", type=Path)
    g.add_argument("--out", required=True, type=Path, help="grades.csv; feedback/, gradebook.csv "
                                                           "and gradescope/ go next to it")
    g.add_argument("-n", type=int, default=0, help="parallel kernels (pytest-xdist; 0: one at a time)")
    g.add_argument("--notebooks", default="notebooks", type=Path)
    g.add_argument("--only", nargs="+", metavar="NN", help="grade only these notebooks (01 02, "
                                                          "or names); the maximum counts only them")
    g.add_argument("--strict", action="store_true", help="score 0 every check of a notebook whose "
                                                         "exercise code was flagged")
    g.add_argument("--cell-timeout", type=float, default=120, help="seconds per cell (default 120)")
    g.add_argument("--notebook-timeout", type=float, default=600,
                   help="seconds per notebook (default 600)")
    g.add_argument("--memory", type=int, default=8192, help="MB of address space per kernel "
                                                           "(default 8192)")
    g.add_argument("--grader-memory", type=int, default=4096,
                   help="MB of address space per grading process, outside the sandbox (pytest "
                        "and its workers; default 4096)")
    g.add_argument("--work-mb", type=int, default=256, help="MB of the kernel's writable work "
                                                            "folder, its /tmp too (default 256)")
    g.add_argument("--no-sandbox", action="store_true", help="run kernels without bubblewrap "
                                                             "(resource limits only)")
    c = sub.add_parser("check", help="run a notebook's visible checks in a fresh kernel and "
                                     "print each verdict and your total (students)")
    c.add_argument("notebook", type=Path)
    c.add_argument("--cell-timeout", type=float, default=300)
    return p


def main(argv=None) -> int:
    """0 on success; 1, with the message on stderr, for bad notebooks or missing folders."""
    a = parser().parse_args(argv)
    try:
        if a.cmd == "release":
            for path in release(a.out, a.notebooks):
                print(path)
        elif a.cmd == "check":
            return check(a.notebook, a.cell_timeout)
        else:
            options = GradeOptions(
                workers=a.n, cell_timeout=a.cell_timeout, notebook_timeout=a.notebook_timeout,
                strict=a.strict, sandbox=False if a.no_sandbox else None,
                limits={"memory": a.memory, "work_mb": a.work_mb,
                        "grader_memory": a.grader_memory},
                progress=lambda line: print(f"graded {line}", file=sys.stderr, flush=True))
            rows = grade(a.submissions, a.out, a.notebooks, a.only, options)
            print(totals_table(rows))
            print(f"wrote {a.out}, gradebook.csv, feedback/ and gradescope/ in {a.out.parent}")
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0

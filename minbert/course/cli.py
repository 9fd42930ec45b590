"""The command line: `python -m minbert.course release ...` and `... grade ...`."""
import argparse
import sys
from pathlib import Path

from .grading import grade, totals_table
from .releasing import release

DESCRIPTION = "Course tooling: the student release and tamper-proof grading (docs/instructors.md)."


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m minbert.course", description=DESCRIPTION)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("release", help="write student versions of notebooks/NN_*.ipynb")
    r.add_argument("--out", required=True, type=Path)
    r.add_argument("--notebooks", default="notebooks", type=Path)
    g = sub.add_parser("grade", help="grade SUBMISSIONS/<student>/NN_*.ipynb (runs student code!)")
    g.add_argument("submissions", type=Path)
    g.add_argument("--out", required=True, type=Path, help="grades.csv; feedback/ goes next to it")
    g.add_argument("-n", type=int, default=0, help="parallel workers (0: sequential, in-process)")
    g.add_argument("--notebooks", default="notebooks", type=Path)
    g.add_argument("--cell-timeout", type=float, default=120, help="seconds per cell (default 120)")
    g.add_argument("--notebook-timeout", type=float, default=600,
                   help="seconds per notebook (default 600)")
    return p


def main(argv=None) -> int:
    """0 on success; 1, with the message on stderr, for bad notebooks or missing folders."""
    a = parser().parse_args(argv)
    try:
        if a.cmd == "release":
            for path in release(a.out, a.notebooks):
                print(path)
        else:
            rows = grade(a.submissions, a.out, a.notebooks, a.n, a.cell_timeout,
                         a.notebook_timeout)
            print(totals_table(rows))
            print(f"wrote {a.out} and {a.out.parent / 'feedback'}/")
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0

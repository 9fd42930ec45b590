"""`python -m minbert.check 01_attention.ipynb`: your score on a notebook's visible checks,
before you hand it in.

It runs the notebook top to bottom in a fresh kernel, from the notebook's folder (so the
`minbert/` beside it is the one imported), in CI mode as the grader does (small data and
steps; a failing check raises instead of printing), and prints each check cell's verdict, its
points and your total. The grader scores the same exercises on inputs of its own, outside your
kernel, and also runs hidden checks, so your grade can be lower than this total.

The cell conventions live here, the one place both the student's check and the instructor's
tooling (`course/`) read them: a code cell tagged `exercise` is yours to write, one tagged
`check` asserts the exercises since the previous check; a check's points are
`cell.metadata.minbert.points` (default 1). See docs/notebooks.md.
"""
import argparse
import os
import sys
from pathlib import Path

from .env import CHECKS_ENV, CI_ENV

def tags(cell: dict) -> list:
    meta = cell.get("metadata")
    t = meta.get("tags", []) if isinstance(meta, dict) else []
    return t if isinstance(t, list) else []


def kind(cell: dict) -> str | None:
    """'exercise', 'check' or None (a cell may not be both)."""
    t = tags(cell)
    if "exercise" in t and "check" in t:
        raise ValueError(f"cell {cell.get('id')!r} is tagged both exercise and check")
    return "exercise" if "exercise" in t else "check" if "check" in t else None


def points(cell: dict) -> float:
    p = (cell["metadata"].get("minbert") or {}).get("points", 1)
    if isinstance(p, bool) or not isinstance(p, (int, float)) or p < 0:
        raise ValueError(f"check cell {cell.get('id')!r}: points must be a number >= 0, got {p!r}")
    return p


def fmt(x: float) -> str:
    """Points and seconds as people write them: 2, 0.5, 120."""
    return f"{x:g}"


def run(nb, folder: Path, cell_timeout: float) -> dict:
    """Execute every code cell of `nb` (an nbformat notebook) in a fresh kernel started in
    `folder`; {cell index: (status, ename, message)}, status ok | error | not-run."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    ran: dict = {}

    def executed(cell, cell_index, execute_reply):
        c = execute_reply.get("content", {})
        line = (str(c.get("evalue", "")).strip().splitlines() or [""])[0][:200]
        ran[cell_index] = ("ok", "", "") if c.get("status") == "ok" else \
            ("error", str(c.get("ename", "Error")), line)

    env = {**os.environ, CI_ENV: "1", CHECKS_ENV: "raise",
           # the folder's minbert/ first, as in JupyterLab started there
           "PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])
           .rstrip(os.pathsep)}
    client = NotebookClient(nb, timeout=cell_timeout, allow_errors=True, kernel_name="python3",
                            resources={"metadata": {"path": str(folder)}},
                            on_cell_executed=executed)
    try:
        client.execute(env=env)  # the kernel's cwd: resources' path
    except (CellTimeoutError, DeadKernelError):
        pass  # the cell that ran out of time (or killed the kernel) and every later one: not run
    return ran


def verdict(ran: dict, i: int, exercises: list) -> tuple[str, str]:
    """pass | fail | error | not done yet | not run, and why, for the check cell `i` whose
    exercises since the previous check are `exercises` (cell indices)."""
    for j in exercises:  # an unanswered or broken exercise explains its check
        status, ename, line = ran.get(j, ("not-run", "", ""))
        if ename == "NotImplementedError":
            return "not done yet", "exercise not implemented"
        if status == "error":
            return "error", f"exercise cell {j}: {ename}: {line}".rstrip(": ")
    status, ename, line = ran.get(i, ("not-run", "", ""))
    if status == "not-run":
        return "not run", "stopped before this cell (a cell ran out of time or the kernel died)"
    if status == "ok":
        return "pass", ""
    if ename == "NotImplementedError":  # the check called an exercise still handed out as is
        return "not done yet", "exercise not implemented"
    return ("fail" if ename == "AssertionError" else "error"), f"{ename}: {line}".rstrip(": ")


def check(path, cell_timeout: float = 300, out=None, nb=None) -> int:
    """Print each check's verdict and the total; 0 when every check passed, else 1. `nb`: the
    notebook to run in place of the file's (an nbformat node); the kernel starts in the
    file's folder either way."""
    import nbformat
    out = out or sys.stdout
    path = Path(path).resolve()
    try:
        nb = nb or nbformat.read(path, as_version=4)
    except Exception as e:  # nbformat raises several kinds for a file that is no notebook
        raise ValueError(f"{path}: not a Jupyter notebook ({type(e).__name__}: {e})") from None
    cells = nb.cells
    if not any(c.cell_type == "code" and kind(c) == "check" for c in cells):
        print(f"{path.name} has no check cells", file=out)
        return 0
    print(f"running {path.name} in a fresh kernel (visible checks only) ...", file=out, flush=True)
    ran = run(nb, path.parent, cell_timeout)
    got = total = 0.0
    exercises: list[int] = []
    for i, c in enumerate(cells):
        k = kind(c) if c.cell_type == "code" else None
        if k == "exercise":
            exercises.append(i)
        if k != "check":
            continue
        outcome, why = verdict(ran, i, exercises)
        exercises = []
        p = points(c)
        score = p if outcome == "pass" else 0
        got, total = got + score, total + p
        print(f"  {outcome:<12} {fmt(score):>4} / {fmt(p):<4} {c.get('id', i)}"
              + (f"  {why}" if why else ""), file=out)
    print(f"Total: {fmt(got)} / {fmt(total)} (visible checks; the grader scores your exercises "
          "on its own inputs and runs hidden checks too)", file=out)
    return 0 if got == total else 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m minbert.check", description=__doc__.split("\n\n")[0])
    p.add_argument("notebook", type=Path)
    p.add_argument("--cell-timeout", type=float, default=300, help="seconds per cell (default 300)")
    a = p.parse_args(argv)
    try:
        return check(a.notebook, a.cell_timeout)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

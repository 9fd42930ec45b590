"""`python -m minbert.course check NB.ipynb`: a student's score before hand-in.

Runs the student's own notebook top to bottom in a fresh kernel (CI mode, checks raising, the
notebook's folder as working directory, no sandbox: it is the student's own code) and prints
each visible check's verdict, its points and the total. Hidden checks are not run (a released
notebook has none; in an instructor copy they are removed first), so the grader's total can be
lower.
"""
import copy
import sys
from pathlib import Path

from .engine import Job, run_jobs
from .grading import score_checks
from .notebooks import HIDDEN, fmt, kind, points, read_notebook
from .releasing import replace_blocks


def visible(nb: dict, name: str) -> dict:
    nb = copy.deepcopy(nb)
    for i, cell in enumerate(nb["cells"]):
        if kind(cell) == "check":
            cell["source"] = replace_blocks(cell["source"], HIDDEN, [], f"{name}: cell {i}")
        if cell["cell_type"] == "code":
            cell.update(outputs=[], execution_count=None)
    return nb


def check(path, cell_timeout: float = 300, out=None) -> int:
    """Print the verdicts; 0 when every visible check passed, else 1."""
    out = out or sys.stdout
    path = Path(path).resolve()
    nb = visible(read_notebook(path), path.name)
    checks = [c for c in nb["cells"] if kind(c) == "check"]
    if not checks:
        print(f"{path.name} has no check cells", file=out)
        return 0
    for c in nb["cells"]:
        c.setdefault("id", f"cell-{id(c)}")
    print(f"running {path.name} in a fresh kernel (visible checks only) ...", file=out, flush=True)
    ran = run_jobs([Job(path.name, nb, None, work=path.parent)], 0, cell_timeout,
                   notebook_timeout=10 * cell_timeout, sandbox=False)[0]
    by_index = {i: ran[c["id"]] for i, c in enumerate(nb["cells"]) if c["id"] in ran}
    got = total = 0.0
    for c, (outcome, reason, _) in zip(checks, score_checks(nb, by_index, {})):
        p = points(c)
        score = p if outcome == "pass" else 0
        got, total = got + score, total + p
        line = reason.strip().splitlines()[0][:200] if reason.strip() else ""
        print(f"  {outcome:<8} {fmt(score):>4} / {fmt(p):<4} {c['id']}"
              + (f"  {line}" if line else ""), file=out)
    print(f"Total: {fmt(got)} / {fmt(total)} (visible checks; the grader also runs hidden ones)",
          file=out)
    return 0 if got == total else 1

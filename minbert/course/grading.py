"""Tamper-proof grading: only the student's exercise cells are copied into the pristine
instructor notebook, which runs in a fresh kernel; each check cell scores by whether it
raised. Editing, faking or deleting a check gains nothing, and no submission stops the class
from being graded.
"""
import copy
import csv
import io
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from minbert import files

from .kernel import run_cells
from .notebooks import fmt, instructor_notebooks, kind, points, read_notebook, tags
from .releasing import student_source

COLUMNS = ("student", "notebook", "check", "points", "score", "outcome", "reason", "warnings")
# exercise code runs in the kernel that runs the checks: these can reach the checks themselves
SUSPICIOUS = ("get_ipython", "builtins", "sys.modules", "IPython", "ipykernel")


# --- assemble: the student's exercise cells in the instructor's notebook --------------------

def assemble(inst: dict, student: dict) -> tuple[dict, dict]:
    """The instructor notebook with the exercise sources of `student` (matched by cell id,
    else by order among exercise-tagged cells); returns (notebook, {cell id: [warnings]})."""
    nb = copy.deepcopy(inst)
    by_id: dict = {}
    for c in student["cells"]:
        by_id.setdefault(c.get("id"), []).append(c)
    ids = {c["id"] for c in nb["cells"]}
    lost = [c for c in nb["cells"] if kind(c) == "exercise" and c["id"] not in by_id]
    spare = [c for c in student["cells"] if c.get("cell_type") == "code"
             and "exercise" in tags(c) and c.get("id") not in ids]
    by_order = {id(c): s for c, s in zip(lost, spare)}
    warn = {}
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell.update(outputs=[], execution_count=None)
        w = merge_cell(cell, by_id.get(cell["id"], []), by_order.get(id(cell)))
        if w:
            warn[cell["id"]] = w
    return nb, warn


def merge_cell(cell: dict, mine: list, by_order: dict | None) -> list[str]:
    """Take the student's source into instructor `cell` if it is an exercise; `mine` are the
    submission's cells of its id, `by_order` the one matched by position. Returns warnings."""
    cid, k = cell["id"], kind(cell)
    w = []
    if len(mine) > 1:
        w.append(f"{k or 'cell'} {cid}: appears {len(mine)} times in the submission; "
                 "the first is used")
    if k == "check":
        w += check_warnings(cell, mine)
    elif k == "exercise":
        w += take_exercise(cell, mine, by_order)
    return w


def check_warnings(cell: dict, mine: list) -> list[str]:
    """A check is always graded from the instructor's copy; say if the student changed it."""
    if not mine:
        return [f"check {cell['id']}: deleted in the submission; graded from the instructor's copy"]
    if mine[0].get("cell_type") != "code" or \
            mine[0]["source"].strip() != student_source(cell).strip():
        return [f"check {cell['id']}: edited in the submission; graded from the instructor's copy"]
    return []


def take_exercise(cell: dict, mine: list, by_order: dict | None) -> list[str]:
    """Put the student's answer in exercise `cell` (the released stub if there is none)."""
    cid, w = cell["id"], []
    if not mine and by_order is not None:
        mine = [by_order]
        w.append(f"exercise {cid}: cell id not found; matched by position among exercise cells")
    if mine and mine[0].get("cell_type") == "code":
        cell["source"] = mine[0]["source"]
        touched = [s for s in SUSPICIOUS if s in cell["source"]]
        if touched:
            w.append(f"exercise {cid}: uses {touched[0]}; review it by hand")
    else:
        what = f"turned into a {mine[0].get('cell_type')} cell" if mine else \
            "missing from the submission"
        w.append(f"exercise {cid}: {what}; graded as not implemented")
        cell["source"] = student_source(cell)
    return w


# --- score one notebook -------------------------------------------------------------------

class Ungradable(Exception):
    """A submitted file that cannot be graded at all: every check scores 0 with `outcome`."""

    def __init__(self, outcome: str, reason: str):
        super().__init__(reason)
        self.outcome = outcome


def load_submission(path, name: str) -> dict:
    if not Path(path).exists():
        raise Ungradable("missing-file", f"{name} not found in the submission")
    try:
        return read_notebook(path)
    except (ValueError, OSError, UnicodeDecodeError) as e:
        raise Ungradable("error", f"cannot read {name}: {e}") from None


def grade_notebook(student: str, inst_path, student_path, cell_timeout: float = 120,
                   notebook_timeout: float = 600) -> list[dict]:
    """One row per instructor check cell (notebook order), its `warnings` a list.
    Never raises on a bad submission."""
    inst_path = Path(inst_path)
    inst = read_notebook(inst_path)
    rows = [dict(student=student, notebook=inst_path.name, check=c["id"], points=fmt(points(c)),
                 score="0", outcome="", reason="", warnings=[])
            for c in inst["cells"] if kind(c) == "check"]
    if not rows:  # nothing to grade (e.g. 08_results, which only reads results/): run nothing
        return rows
    try:
        nb, warn = assemble(inst, load_submission(student_path, inst_path.name))
        ran = run_cells(nb, inst_path.parent, cell_timeout, notebook_timeout)
    except Ungradable as e:
        return fill_all(rows, e.outcome, str(e))
    except Exception as e:  # the grader must finish the class whatever one notebook does
        return fill_all(rows, "error", f"grader error: {type(e).__name__}: {e}")
    for r, (outcome, reason, notes) in zip(rows, score_checks(nb, ran, warn)):
        r.update(outcome=outcome, reason=reason, warnings=notes,
                 score=r["points"] if outcome == "pass" else "0")
    return rows


def fill_all(rows: list[dict], outcome: str, reason: str) -> list[dict]:
    for r in rows:
        r.update(outcome=outcome, reason=reason)
    return rows


def score_checks(nb: dict, ran: dict, warn: dict):
    """(outcome, reason, warnings) of each check cell, in notebook order. A check answers for
    the cells since the previous check: a broken exercise among them explains its result, and
    other cells there that raised (setup, data) become its warnings, as do the cells' own."""
    linked: list[int] = []  # exercise cells since the previous check
    broken: list[str] = []  # other cells since the previous check that raised
    for i, cell in enumerate(nb["cells"]):
        k = kind(cell)
        if k == "exercise":
            linked.append(i)
        elif k is None and ran.get(i, ("ok",))[0] in ("error", "timeout"):
            broken.append(f"cell {cell['id']} raised {ran[i][1]}" if ran[i][0] == "error"
                          else f"cell {cell['id']} {ran[i][1]}")
        if k != "check":
            continue
        outcome, reason = check_outcome(*ran.get(i, ("not-run", "not executed")))
        outcome, reason = blame_exercise(nb, ran, linked, outcome, reason)
        notes = broken + [w for j in linked + [i] for w in warn.get(nb["cells"][j]["id"], [])]
        yield outcome, reason, notes
        linked, broken = [], []


def check_outcome(status: str, reason: str) -> tuple[str, str]:
    """pass, fail (an AssertionError), error, timeout or not-run."""
    if status == "error" and reason.startswith("AssertionError"):
        return "fail", reason
    return {"ok": "pass", "error": "error"}.get(status, status), reason


def blame_exercise(nb: dict, ran: dict, linked: list, outcome: str, reason: str):
    """A broken exercise cell explains its check's failure; a syntax error in one
    overrides even a pass."""
    for j in linked:
        ex_status, ex_reason = ran.get(j, ("ok", ""))
        syntax = ex_reason.startswith("SyntaxError")
        if ex_status in ("error", "timeout") and (outcome != "pass" or syntax):
            return ("timeout" if ex_status == "timeout" else "error",
                    f"exercise cell {nb['cells'][j]['id']}: {ex_reason}")
    return outcome, reason


# --- the class ------------------------------------------------------------------------------

def _grade_job(args) -> list[dict]:
    return grade_notebook(*args)


def grade(submissions, out_csv, notebooks_dir="notebooks", workers: int = 0,
          cell_timeout: float = 120, notebook_timeout: float = 600) -> list[dict]:
    """Grade every student folder in `submissions` against every numbered instructor notebook;
    write grades.csv and feedback/<student>.md next to it. workers=0 runs in-process."""
    notebooks = instructor_notebooks(notebooks_dir)
    students = sorted(p.name for p in Path(submissions).iterdir()
                      if p.is_dir() and not p.name.startswith("."))
    if not students:
        raise FileNotFoundError(f"no student folders in {submissions}")
    jobs = [(s, nb.resolve(), Path(submissions, s, nb.name), cell_timeout, notebook_timeout)
            for s in students for nb in notebooks]
    if workers <= 0:
        results = [_grade_job(j) for j in jobs]
    else:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(_grade_job, jobs))  # map keeps the job order
    rows = [r for res in results for r in res]
    out_csv = Path(out_csv)
    files.write_text(out_csv, to_csv(rows))
    for s in students:
        mine = [r for r in rows if r["student"] == s]
        files.write_text(out_csv.parent / "feedback" / f"{s}.md", feedback(s, mine))
    return rows


# --- reports --------------------------------------------------------------------------------

def to_csv(rows: list[dict]) -> str:
    """grades.csv: one line per check, the warnings joined by "; "."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows({**r, "warnings": "; ".join(r["warnings"])} for r in rows)
    return buf.getvalue()


def total(rows: list[dict], column: str) -> str:
    return fmt(sum(float(r[column]) for r in rows))


def feedback(student: str, rows: list[dict]) -> str:
    """feedback/<student>.md: totals per notebook, each check's outcome and its warnings."""
    lines = [f"# Feedback for {student}", "", f"Total: {total(rows, 'score')} / "
             f"{total(rows, 'points')}", ""]
    for name in sorted({r["notebook"] for r in rows}):
        mine = [r for r in rows if r["notebook"] == name]
        lines += [f"## {name}: {total(mine, 'score')} / {total(mine, 'points')}", ""]
        for r in mine:
            lines.append(f"- `{r['check']}`: **{r['outcome']}** ({r['score']} / {r['points']})"
                         + (f" — {r['reason']}" if r["reason"] else ""))
            lines += [f"  - warning: {w}" for w in r["warnings"]]
        lines.append("")
    return "\n".join(lines)


def totals_table(rows: list[dict]) -> str:
    """The class's totals, for the terminal (rows as grade returns them or as grades.csv holds)."""
    students = sorted({r["student"] for r in rows})
    width = max([len("student")] + [len(s) for s in students])
    lines = [f"{'student':<{width}}  {'total':>7}  {'max':>7}"]
    for s in students:
        mine = [r for r in rows if r["student"] == s]
        lines.append(f"{s:<{width}}  {total(mine, 'score'):>7}  {total(mine, 'points'):>7}")
    return "\n".join(lines)

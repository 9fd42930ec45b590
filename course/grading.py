"""Tamper-proof grading: only the student's exercise cells are copied into the pristine
instructor notebook, which nbval runs in a fresh, sandboxed kernel (engine.py, sandbox.py);
each check cell becomes a harness that returns the student's outputs on grader-drawn inputs,
scored here against the grader's oracle (oracles.py, verdict.py). Editing, faking or deleting
a check gains nothing, patching the kernel changes only the student's own outputs, calls of
finished implementations are review flags (guard.py; `strict` scores that exercise 0), and no
submission stops the class from being graded.
"""
import copy
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from minbert import files

from . import guard, reports
from .engine import Job, run_jobs
from .notebooks import (Ungradable, fmt, instructor_notebooks, kind, load_submission, points,
                        read_notebook, tags)
from .releasing import student_source
from .sandbox import bwrap


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
    warn, ctx = {}, guard.Context(inst)
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell.update(outputs=[], execution_count=None)
        w = merge_cell(cell, by_id.get(cell["id"], []), by_order.get(id(cell)))
        if kind(cell) == "check":
            cell["source"] = guard.fresh_imports(cell["source"], ctx)
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
    else:
        what = f"turned into a {mine[0].get('cell_type')} cell" if mine else \
            "missing from the submission"
        w.append(f"exercise {cid}: {what}; graded as not implemented")
        cell["source"] = student_source(cell)
    return w


# --- score one notebook -------------------------------------------------------------------

class Graded:
    """One (student, notebook): its rows (one per check cell), and what is to be run."""

    def __init__(self, student: str, inst_path, student_path):
        inst_path = Path(inst_path)
        self.inst = read_notebook(inst_path)
        self.rows = [dict(student=student, notebook=inst_path.name, check=c["id"],
                          points=fmt(points(c)), score="0", outcome="", reason="", warnings=[])
                     for c in self.inst["cells"] if kind(c) == "check"]
        self.job, self.flags = None, {}
        if not self.rows:  # nothing to grade (e.g. 08_results, which only reads results/)
            return
        try:
            nb, self.warn = assemble(self.inst, load_submission(student_path, inst_path.name))
        except Ungradable as e:
            fill_all(self.rows, e.outcome, str(e))
            return
        ctx = guard.Context(self.inst)
        self.secrets = ctx.secrets
        self.flags = review_flags(nb, ctx)
        from . import oracles  # here: torch and transformers load only when grading
        self.plans = oracles.plan_notebook(nb, oracles.grading_key(inst_path.read_bytes()),
                                           student, inst_path.name)
        for c in nb["cells"]:
            if kind(c) == "check" and c["id"] not in self.plans:
                self.warn.setdefault(c["id"], []).append(
                    f"check {c['id']}: scored in the kernel (no grader-side check)")
        self.nb = nb
        self.job = Job(f"{student}/{inst_path.name}", nb, inst_path.parent)

    def score(self, ran: dict, strict: bool) -> list[dict]:
        """Fill the rows from {cell id: (status, reason)}."""
        if self.job is None:
            return self.rows
        from . import oracles
        by_index = {i: ran[c["id"]] for i, c in enumerate(self.nb["cells"]) if c["id"] in ran}
        for i, c in enumerate(self.nb["cells"]):
            if i in by_index and kind(c) != "check":  # the kernel's words are not repeated
                by_index[i] = (by_index[i][0], oracles.plain_reason(by_index[i][1]))
            if c["id"] in self.plans:
                by_index[i] = oracles.verdict(self.plans[c["id"]], *ran.get(
                    c["id"], ("not-run", "not executed")), self.job.results.get(c["id"]))
        for r, (outcome, reason, notes) in zip(self.rows, score_checks(self.nb, by_index,
                                                                       self.warn)):
            flags = self.flags.get(r["check"], [])
            r.update(outcome=outcome, reason=guard.clean_reason(reason, self.secrets),
                     warnings=[guard.clean_reason(n, self.secrets) for n in notes] + flags,
                     score=r["points"] if outcome == "pass" else "0")
            if strict and flags:
                r.update(outcome="flagged", score="0", reason=f"--strict: {flags[0]}")
        return self.rows


def review_flags(nb: dict, ctx) -> dict:
    """{check id: the review flags of the exercise cells it answers for (those since the
    previous check)}: calls of finished implementations, for the instructor to read."""
    out, pending = {}, []
    for c in nb["cells"]:
        if kind(c) == "exercise":
            pending += [f"review flag: {f}" for f in guard.flags(c["id"], c["source"], ctx)]
        elif kind(c) == "check":
            out[c["id"]], pending = pending, []
    return out


@dataclass(frozen=True)
class GradeOptions:
    """How the notebooks are run and scored; the command line's flags (cli.py).
    workers: parallel kernels (pytest-xdist; 0: one at a time); strict: a flagged notebook's
    checks score 0; sandbox: bubblewrap on (None: when it is installed); limits: overrides of
    engine.DEFAULT_LIMITS (e.g. {"memory": MB}); progress(line): one line per notebook."""
    workers: int = 0
    cell_timeout: float = 120
    notebook_timeout: float = 600
    strict: bool = False
    sandbox: bool | None = None
    limits: dict | None = None
    progress: Callable[[str], None] | None = None


def grade_notebook(student: str, inst_path, student_path,
                   options: GradeOptions = GradeOptions()) -> list[dict]:
    """One row per instructor check cell (notebook order), its `warnings` a list.
    Never raises on a bad submission."""
    return run_all([Graded(student, inst_path, student_path)], options)[0]


def run_all(graded: list, options: GradeOptions = GradeOptions()) -> list[list[dict]]:
    """Run the notebooks of every `Graded` through nbval (one pytest run) and score them."""
    todo = [g for g in graded if g.job is not None]
    sandbox = options.sandbox
    if sandbox is None:
        sandbox = bwrap() is not None
        if not sandbox and todo:
            print("WARNING: bubblewrap (bwrap) not found: the SANDBOX IS OFF; student code "
                  "runs with resource limits only (apt-get install bubblewrap)", file=sys.stderr)
    try:
        ran = run_jobs([g.job for g in todo], options.workers, options.cell_timeout,
                       options.notebook_timeout, options.limits, sandbox,
                       options.progress) if todo else []
    except Exception as e:  # the grader must finish the class whatever one notebook does
        for g in todo:
            fill_all(g.rows, "error", f"grader error: {type(e).__name__}: {str(e)[:200]}")
        return [g.rows for g in graded]
    for g, res in zip(todo, ran):
        g.score(res, options.strict)
    return [g.rows for g in graded]


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
    """pass, fail (an AssertionError), error, timeout or not-run (a grader-side verdict is
    already one of these)."""
    if status in ("error", "fail") and reason.startswith("AssertionError"):
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

def pick_notebooks(notebooks_dir, only=None) -> list[Path]:
    """The numbered notebooks, or those whose number or name is in `only` (`01`, `02_adamw`)."""
    notebooks = instructor_notebooks(notebooks_dir)
    if not only:
        return notebooks
    chosen = [nb for nb in notebooks if nb.name[:2] in only or nb.stem in only or nb.name in only]
    unknown = [o for o in only if not any(o in (nb.name[:2], nb.stem, nb.name) for nb in notebooks)]
    if unknown:
        raise ValueError(f"--only {' '.join(unknown)}: no such notebook in {notebooks_dir}")
    return chosen


def grade(submissions, out_csv, notebooks_dir="notebooks", only=None,
          options: GradeOptions = GradeOptions()) -> list[dict]:
    """Grade every student folder in `submissions` against the numbered instructor notebooks
    (or those in `only`); write grades.csv, feedback/<student>.md, gradebook.csv and
    gradescope/<student>/results.json next to it."""
    notebooks = pick_notebooks(notebooks_dir, only)
    students = sorted(p.name for p in Path(submissions).iterdir()
                      if p.is_dir() and not p.name.startswith("."))
    if not students:
        raise FileNotFoundError(f"no student folders in {submissions}")
    out_csv = Path(out_csv)
    graded = [Graded(s, nb.resolve(), Path(submissions, s, nb.name))
              for s in students for nb in notebooks]
    rows = [r for res in run_all(graded, options) for r in res]
    reports.write_all(out_csv, rows, students)
    return rows

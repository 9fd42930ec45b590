"""What grading writes: grades.csv, feedback/<student>.md, a totals table, and two files an
LMS reads: gradescope/<student>/results.json (Gradescope's autograder format) and
gradebook.csv (one row per student, one column per notebook, as Canvas imports)."""
import csv
import io
import json
from pathlib import Path

from minbert import files

from .notebooks import fmt

COLUMNS = ("student", "notebook", "check", "points", "score", "outcome", "reason", "warnings")
# https://gradescope-autograders.readthedocs.io/en/latest/specs/ (the keys written here)
GRADESCOPE_KEYS = {"score", "output", "visibility", "tests"}
GRADESCOPE_TEST_KEYS = {"name", "score", "max_score", "status", "output", "visibility"}


def to_csv(rows: list[dict]) -> str:
    """grades.csv: one line per check, the warnings joined by "; "."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows({**r, "warnings": "; ".join(warnings(r))} for r in rows)
    return buf.getvalue()


def warnings(row: dict) -> list[str]:
    """A row's warnings as a list (grade's rows hold a list, grades.csv a "; "-joined line)."""
    w = row.get("warnings") or []
    return list(w) if isinstance(w, (list, tuple)) else [w]


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
            lines += [f"  - warning: {w}" for w in warnings(r)]
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


def gradescope(rows: list[dict]) -> dict:
    """One student's results.json: a test per check, named `notebook: check`."""
    tests = [{"name": f"{r['notebook']}: {r['check']}", "score": float(r["score"]),
              "max_score": float(r["points"]),
              "status": "passed" if r["outcome"] == "pass" else "failed",
              "output": "; ".join([f"{r['outcome']}" + (f": {r['reason']}" if r["reason"] else "")]
                                  + [f"warning: {w}" for w in warnings(r)]),
              "visibility": "visible"} for r in rows]
    return {"score": sum(t["score"] for t in tests),
            "output": f"Total: {total(rows, 'score')} / {total(rows, 'points')}",
            "visibility": "visible", "tests": tests}


def gradebook(rows: list[dict]) -> str:
    """gradebook.csv: `Student`, `SIS Login ID` (the folder name), then per notebook
    `NN_name (max)` holding the student's points."""
    names = sorted({r["notebook"] for r in rows})
    maxima = {n: total([r for r in rows if r["notebook"] == n and r["student"] == rows[0]["student"]],
                       "points") for n in names}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["Student", "SIS Login ID"] + [f"{Path(n).stem} ({maxima[n]})" for n in names])
    for s in sorted({r["student"] for r in rows}):
        w.writerow([s, s] + [total([r for r in rows if r["student"] == s and r["notebook"] == n],
                                   "score") for n in names])
    return buf.getvalue()


def write_all(out_csv: Path, rows: list[dict], students: list[str]) -> None:
    folder = Path(out_csv).parent
    files.write_text(out_csv, to_csv(rows))
    files.write_text(folder / "gradebook.csv", gradebook(rows))
    for s in students:
        mine = [r for r in rows if r["student"] == s]
        files.write_text(folder / "feedback" / f"{s}.md", feedback(s, mine))
        files.write_json(folder / "gradescope" / s / "results.json", gradescope(mine))

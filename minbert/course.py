"""Course tooling: the student release and tamper-proof grading (docs/instructors.md).

    python -m minbert.course release --out DIR [--notebooks notebooks/]
    python -m minbert.course grade SUBMISSIONS --out grades.csv [-n N] [--notebooks notebooks/]
                                   [--cell-timeout S] [--notebook-timeout S]

Conventions (docs/notebooks.md): cells tagged `exercise` hold a `### BEGIN SOLUTION` /
`### END SOLUTION` block, cells tagged `check` assert an exercise and may hold a
`### BEGIN HIDDEN CHECKS` / `### END HIDDEN CHECKS` block; points live in
`cell.metadata.minbert.points` (default 1). Grading copies only the student's exercise
cells into the pristine instructor notebook, runs it in a fresh kernel (MINBERT_CI=1) and
scores each check by whether it raised, so editing or deleting a check gains nothing.
"""
import argparse
import copy
import csv
import io
import json
import math
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from time import monotonic

SOLUTION = ("### BEGIN SOLUTION", "### END SOLUTION")
HIDDEN = ("### BEGIN HIDDEN CHECKS", "### END HIDDEN CHECKS")
MARKERS = SOLUTION + HIDDEN
CELL_META = ("tags", "collapsed", "scrolled", "jupyter", "editable", "deletable")  # kept on release
NB_META = ("kernelspec", "language_info")
COLUMNS = ("student", "notebook", "check", "points", "score", "outcome", "reason", "warnings")
# exercise code runs in the kernel that runs the checks: these can reach the checks themselves
SUSPICIOUS = ("get_ipython", "builtins", "sys.modules", "IPython", "ipykernel")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


# --- notebooks as plain JSON --------------------------------------------------------------

def numbered_notebooks(folder) -> list[Path]:
    return sorted(Path(folder).glob("[0-9][0-9]_*.ipynb"))


def read_notebook(path) -> dict:
    """json-load a notebook and join every cell source into one string.
    Raises ValueError (invalid JSON or not a notebook) and OSError."""
    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"not valid JSON ({e})") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list) or not all(
            isinstance(c, dict) and "cell_type" in c for c in nb["cells"]):
        raise ValueError("not a Jupyter notebook (no list of cells)")
    for cell in nb["cells"]:
        src = cell.get("source", "")
        cell["source"] = "".join(src) if isinstance(src, list) else str(src)
        cell.setdefault("metadata", {})
    return nb


def dumps_notebook(nb: dict) -> str:
    """Deterministic text: sources as line lists (like nbformat), sorted keys, indent 1."""
    nb = copy.deepcopy(nb)
    for cell in nb["cells"]:
        cell["source"] = cell["source"].splitlines(keepends=True)
    return json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def write_atomic(path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


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
    return f"{x:g}"


# --- release ------------------------------------------------------------------------------

def replace_blocks(source: str, markers: tuple, stub, where: str) -> str:
    """Replace every `markers` block (marker lines included) by stub(indent) lines."""
    begin, end = markers
    out, indent = [], None
    for line in source.splitlines(keepends=True):
        s = line.strip()
        if s == begin:
            if indent is not None:
                raise ValueError(f"{where}: nested {begin!r}")
            indent = line[: len(line) - len(line.lstrip())]
        elif s == end:
            if indent is None:
                raise ValueError(f"{where}: {end!r} without {begin!r}")
            out += [f"{indent}{text}\n" for text in stub]
            indent = None
        elif indent is None:
            out.append(line)
    if indent is not None:
        raise ValueError(f"{where}: {begin!r} without {end!r}")
    return "".join(out).rstrip("\n") if not source.endswith("\n") else "".join(out)


def student_source(cell: dict, where: str = "") -> str:
    """What the student sees: solutions stubbed out, hidden checks removed."""
    stub = ["# YOUR CODE HERE", "raise NotImplementedError"] if cell["cell_type"] == "code" \
        else ["YOUR ANSWER HERE"]
    src = replace_blocks(cell["source"], SOLUTION, stub, where)
    src = replace_blocks(src, HIDDEN, [], where)
    leftover = [m for m in MARKERS if m in src]
    if leftover:  # a marker not on a line of its own would leak what follows it
        raise ValueError(f"{where}: {leftover[0]!r} must stand on a line of its own")
    return src


def release_notebook(nb: dict, name: str = "notebook") -> dict:
    nb_meta = nb.get("metadata", {})
    out = {"cells": [], "metadata": {k: nb_meta[k] for k in NB_META if k in nb_meta},
           "nbformat": 4, "nbformat_minor": max(5, nb.get("nbformat_minor", 5))}
    for i, cell in enumerate(nb["cells"]):
        cid, k = cell.get("id"), kind(cell)
        where = f"{name}: cell {i} (id {cid!r})"
        if not cid:
            raise ValueError(f"{where} has no id: save it with nbformat >= 4.5 (JupyterLab 3+)")
        if k == "exercise" and SOLUTION[0] not in cell["source"]:
            raise ValueError(f"{where} is tagged exercise but has no {SOLUTION[0]!r} block")
        if k and cell["cell_type"] != "code":
            raise ValueError(f"{where} is tagged {k} but is not a code cell")
        meta = {key: cell["metadata"][key] for key in CELL_META if key in cell["metadata"]}
        if k:
            meta["minbert"] = {"id": cid, "kind": k}
            if k == "check":
                meta["minbert"]["points"] = points(cell)
        new = {"cell_type": cell["cell_type"], "id": cid, "metadata": meta,
               "source": student_source(cell, where)}
        if cell["cell_type"] == "code":
            new.update(outputs=[], execution_count=None)
        if "attachments" in cell and cell["cell_type"] != "code":
            new["attachments"] = cell["attachments"]
        out["cells"].append(new)
    return out


def release(out_dir, notebooks_dir="notebooks") -> list[Path]:
    paths = numbered_notebooks(notebooks_dir)
    if not paths:
        raise FileNotFoundError(f"no numbered notebooks (NN_name.ipynb) in {notebooks_dir}")
    texts = {path.name: dumps_notebook(release_notebook(read_notebook(path), path.name))
             for path in paths}  # all or nothing: check every notebook before writing one
    for name, text in texts.items():
        write_atomic(Path(out_dir) / name, text)
    return [Path(out_dir) / name for name in texts]


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
        cid, k, w = cell["id"], kind(cell), []
        mine = by_id.get(cid, [])
        if cell["cell_type"] == "code":
            cell.update(outputs=[], execution_count=None)
        if len(mine) > 1:
            w.append(f"{k or 'cell'} {cid}: appears {len(mine)} times in the submission; "
                     "the first is used")
        if k == "check" and not mine:
            w.append(f"check {cid}: deleted in the submission; graded from the instructor's copy")
        elif k == "check" and (mine[0].get("cell_type") != "code"
                               or mine[0]["source"].strip() != student_source(cell).strip()):
            w.append(f"check {cid}: edited in the submission; graded from the instructor's copy")
        elif k == "exercise":
            if not mine and id(cell) in by_order:
                mine = [by_order[id(cell)]]
                w.append(f"exercise {cid}: cell id not found; matched by position among "
                         "exercise cells")
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
        if w:
            warn[cid] = w
    return nb, warn


# --- execute ------------------------------------------------------------------------------

def error_reason(ename: str, evalue: str, traceback: list) -> str:
    if ename == "NotImplementedError":
        return "exercise not implemented"
    line = (evalue or "").strip().splitlines()[0] if (evalue or "").strip() else ""
    if ename == "SyntaxError":  # drop IPython's temporary file name
        line = re.sub(r"\(\S+, line (\d+)\)", r"(line \1)", line)
    if not line:  # bare `assert x == y`: show the failing line from the traceback
        arrows = [ln.strip() for ln in ANSI.sub("", "\n".join(traceback)).splitlines()
                  if ln.strip().startswith("---->")]
        line = "at " + re.sub(r"^---->\s*\d*\s*", "", arrows[-1]) if arrows else ""
    return f"{ename}: {line}" if line else ename


TIMED_OUT = {"ename": "CellTimeoutError", "evalue": "", "traceback": []}


def run_cells(nb: dict, cwd, cell_timeout: float, notebook_timeout: float) -> dict:
    """Run every code cell in one fresh kernel; {cell index: (status, reason)} with status
    ok | error | timeout | not-run. Errors never stop the run; a timeout interrupts the cell.
    Status comes from the kernel's execute reply, never from (fakeable) stored outputs."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    node = nbformat.from_dict(nb)
    reply = {}
    client = NotebookClient(
        node, kernel_name="python3", allow_errors=True, shutdown_kernel="immediate",
        iopub_timeout=1,  # outputs are not scored, so do not wait long for them
        interrupt_on_timeout=True, error_on_timeout=TIMED_OUT,  # a timeout ends as an error reply
        on_cell_executed=lambda cell, cell_index, execute_reply:
            reply.update(execute_reply["content"]),
        resources={"metadata": {"path": str(cwd)}})  # the kernel's working directory

    def execute(cell, index, timeout) -> str:
        """Returns 'ok', 'timeout' or 'error' (details in `reply`)."""
        reply.clear()
        client.timeout = math.ceil(timeout)
        client.execute_cell(cell, index)
        if reply.get("status") != "error":
            return "ok"
        return "timeout" if reply.get("ename") == TIMED_OUT["ename"] else "error"

    env = {**os.environ, "MINBERT_CI": "1"}  # MINBERT_DATA passes through
    results, stop = {}, None
    with client.setup_kernel(env=env, stderr=subprocess.DEVNULL):  # no kernel log noise
        deadline = monotonic() + notebook_timeout
        for i, cell in enumerate(node.cells):
            if cell.cell_type != "code":
                continue
            left = deadline - monotonic()
            if stop is None and left <= 0:
                stop = f"notebook time limit ({fmt(notebook_timeout)} s) reached"
            if stop:
                results[i] = ("not-run", stop)
                continue
            try:
                status = execute(cell, i, min(cell_timeout, left))
                if status == "timeout":
                    which, limit = ("cell", cell_timeout) if cell_timeout <= left \
                        else ("notebook", notebook_timeout)
                    results[i] = ("timeout", f"stopped by the {which} time limit ({fmt(limit)} s)")
                    # the kernel was interrupted: does it answer again?
                    if execute(nbformat.v4.new_code_cell("pass"), i, min(10, cell_timeout)) != "ok":
                        stop = "the kernel did not recover from a timeout"
                    node.cells[i] = cell  # execute_cell stored the probe there
                elif status == "error":
                    results[i] = ("error", error_reason(reply.get("ename", "Error"),
                                                        reply.get("evalue", ""),
                                                        reply.get("traceback", [])))
                else:
                    results[i] = ("ok", "")
            except DeadKernelError:
                results[i], stop = ("error", "the kernel died running this cell"), "the kernel died"
    return results


# --- grade --------------------------------------------------------------------------------

def grade_notebook(student: str, inst_path, student_path, cell_timeout: float = 120,
                   notebook_timeout: float = 600) -> list[dict]:
    """One row per instructor check cell (notebook order). Never raises on a bad submission."""
    inst_path = Path(inst_path)
    inst = read_notebook(inst_path)
    rows = [dict(student=student, notebook=inst_path.name, check=c["id"], points=fmt(points(c)),
                 score="0", outcome="", reason="", warnings="")
            for c in inst["cells"] if kind(c) == "check"]

    if not rows:  # nothing to grade (e.g. 08_results, which only reads results/): run nothing
        return rows

    def fill_all(outcome, reason):
        for r in rows:
            r.update(outcome=outcome, reason=reason)
        return rows

    if not Path(student_path).exists():
        return fill_all("missing-file", f"{inst_path.name} not found in the submission")
    try:
        sub = read_notebook(student_path)
    except (ValueError, OSError, UnicodeDecodeError) as e:
        return fill_all("error", f"cannot read {inst_path.name}: {e}")
    try:
        nb, warn = assemble(inst, sub)
        ran = run_cells(nb, inst_path.parent, cell_timeout, notebook_timeout)
    except Exception as e:  # the grader must finish the class whatever one notebook does
        return fill_all("error", f"grader error: {type(e).__name__}: {e}")
    linked: list[int] = []  # exercise cells since the previous check
    broken: list[str] = []  # other cells since the previous check that raised (setup, data)
    row = iter(rows)
    for i, cell in enumerate(nb["cells"]):
        k = kind(cell)
        if k == "exercise":
            linked.append(i)
        elif k is None and ran.get(i, ("ok",))[0] in ("error", "timeout"):
            broken.append(f"cell {cell['id']} raised {ran[i][1]}" if ran[i][0] == "error"
                          else f"cell {cell['id']} {ran[i][1]}")
        if k != "check":
            continue
        r = next(row)
        status, reason = ran.get(i, ("not-run", "not executed"))
        outcome = {"ok": "pass", "error": "error"}.get(status, status)
        if status == "error" and reason.startswith("AssertionError"):
            outcome = "fail"
        for j in linked:  # a broken exercise cell explains its check's failure
            ex_status, ex_reason = ran.get(j, ("ok", ""))
            syntax = ex_reason.startswith("SyntaxError")
            if ex_status in ("error", "timeout") and (outcome != "pass" or syntax):
                outcome = "timeout" if ex_status == "timeout" else "error"
                reason = f"exercise cell {nb['cells'][j]['id']}: {ex_reason}"
                break
        notes = broken + [w for j in linked + [i] for w in warn.get(nb["cells"][j]["id"], [])]
        r.update(outcome=outcome, reason=reason, warnings="; ".join(notes),
                 score=r["points"] if outcome == "pass" else "0")
        linked, broken = [], []
    return rows


def _grade_job(args) -> list[dict]:
    return grade_notebook(*args)


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def feedback(student: str, rows: list[dict]) -> str:
    total, most = sum(float(r["score"]) for r in rows), sum(float(r["points"]) for r in rows)
    lines = [f"# Feedback for {student}", "", f"Total: {fmt(total)} / {fmt(most)}", ""]
    for name in sorted({r["notebook"] for r in rows}):
        mine = [r for r in rows if r["notebook"] == name]
        got, of = sum(float(r["score"]) for r in mine), sum(float(r["points"]) for r in mine)
        lines += [f"## {name}: {fmt(got)} / {fmt(of)}", ""]
        for r in mine:
            lines.append(f"- `{r['check']}`: **{r['outcome']}** ({r['score']} / {r['points']})"
                         + (f" — {r['reason']}" if r["reason"] else ""))
            lines += [f"  - warning: {w}" for w in r["warnings"].split("; ") if w]
        lines.append("")
    return "\n".join(lines)


def grade(submissions, out_csv, notebooks_dir="notebooks", workers: int = 0,
          cell_timeout: float = 120, notebook_timeout: float = 600) -> list[dict]:
    """Grade every student folder in `submissions` against every numbered instructor notebook;
    write grades.csv and feedback/<student>.md next to it. workers=0 runs in-process."""
    notebooks = numbered_notebooks(notebooks_dir)
    if not notebooks:
        raise FileNotFoundError(f"no numbered notebooks (NN_name.ipynb) in {notebooks_dir}")
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
    write_atomic(out_csv, to_csv(rows))
    for s in students:
        mine = [r for r in rows if r["student"] == s]
        write_atomic(out_csv.parent / "feedback" / f"{s}.md", feedback(s, mine))
    return rows


def totals_table(rows: list[dict]) -> str:
    students = sorted({r["student"] for r in rows})
    width = max([len("student")] + [len(s) for s in students])
    lines = [f"{'student':<{width}}  {'total':>7}  {'max':>7}"]
    for s in students:
        mine = [r for r in rows if r["student"] == s]
        lines.append(f"{s:<{width}}  {fmt(sum(float(r['score']) for r in mine)):>7}  "
                     f"{fmt(sum(float(r['points']) for r in mine)):>7}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m minbert.course", description=__doc__.split("\n")[0])
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
    a = p.parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())

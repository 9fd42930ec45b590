"""Wall time of grading a class with `python -m course grade` (docs/instructors.md, "Parallel").

A class of --students (default 10) on the notebooks --only (default 01 02): the first 70 % hand
in the released notebooks with the instructor's answers typed into the exercise cells, the
rest hand them in untouched. The class is graded in the sandbox with `-n` workers; with
--compare also with `-n 0`, in the same run, and the two outputs are compared byte for byte
(grades.csv, gradebook.csv, feedback/, gradescope/), with the ratio of the two times.

    MINBERT_DATA=../shared/data python benchmarks/bench_grading.py            # 10 students, -n 2
    MINBERT_DATA=../shared/data python benchmarks/bench_grading.py --compare  # and -n 0
"""
from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import course  # noqa: E402


def make_class(folder: Path, n: int, only: list[str]) -> Path:
    course.release(folder / "release", ROOT / "notebooks", package=False)
    subs = folder / "submissions"
    for path in sorted((folder / "release").glob("*.ipynb")):
        if path.name[:2] not in only:
            continue
        answers = {c["id"]: c["source"] for c in course.read_notebook(
            ROOT / "notebooks" / path.name)["cells"] if "exercise" in c["metadata"].get("tags", [])}
        for i in range(n):
            nb = course.read_notebook(path)
            if i < round(0.7 * n):
                for c in nb["cells"]:
                    c["source"] = answers.get(c.get("id"), c["source"])
            student = f"s{i:02d}_{'solved' if i < round(0.7 * n) else 'untouched'}"
            (subs / student).mkdir(parents=True, exist_ok=True)
            (subs / student / path.name).write_text(course.dumps_notebook(nb))
    return subs


def grade(subs: Path, out: Path, workers: int, only: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "course", "grade", str(subs), "--out",
                    str(out / "grades.csv"), "--only", *only, "-n", str(workers)],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def files(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--students", type=int, default=10)
    ap.add_argument("--only", nargs="+", default=["01", "02"])
    ap.add_argument("-n", type=int, default=2, help="workers (default 2)")
    ap.add_argument("--compare", action="store_true", help="also grade with -n 0")
    a = ap.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="minbert-bench-grading-"))
    subs = make_class(folder, a.students, a.only)
    t = grade(subs, folder / f"n{a.n}", a.n, a.only)
    kernels = a.students * len(a.only)
    print(f"class of {a.students} on {' '.join(a.only)} ({kernels} kernels), -n {a.n}: {t:.0f} s")
    totals: dict = {}
    for r in csv.DictReader((folder / f"n{a.n}" / "grades.csv").open()):
        totals[r["student"]] = totals.get(r["student"], 0) + float(r["score"])
    print("totals:", " ".join(f"{s} {v:g}" for s, v in sorted(totals.items())))
    if a.compare:
        t0 = grade(subs, folder / "n0", 0, a.only)
        same = files(folder / "n0") == files(folder / f"n{a.n}")
        print(f"-n 0: {t0:.0f} s; -n {a.n} / -n 0 = {t / t0:.2f}; outputs byte-identical: {same}")
    print(f"(left in {folder})")


if __name__ == "__main__":
    main()

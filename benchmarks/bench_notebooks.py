"""Wall time of every numbered notebook under nbval, in CI mode and in student mode (issue: performance).

Each notebook runs alone in a fresh `python -m pytest --nbval-lax notebooks/NN_*.ipynb`
(its own kernel), one after the other, so the times add up to what CI spends on them.
CI mode sets MINBERT_CI=1 (the shrunk budgets of minbert.env.pick); student mode unsets it
(what a student's "Run All" does; nbval then only checks the cells marked NBVAL_CHECK_OUTPUT
against outputs saved in CI mode, so student mode reports times, and nbval's verdict on
those cells is expected to differ).

    python benchmarks/bench_notebooks.py                 # CI mode, every notebook
    python benchmarks/bench_notebooks.py --mode both     # + student mode (about 10 min)
    python benchmarks/bench_notebooks.py --only 01 02    # a subset
    python benchmarks/bench_notebooks.py --handout --mode student   # the hand-out, see below

--handout: the student's edition instead. The release is written to a fresh folder outside
the repository with nothing answered and no saved piece, and each notebook runs there as
"Run All" does (nbconvert --execute, its own kernel, the hand-out's own package and
results); the line printed per notebook gives its time, whether it ran to the end, and its
pieces line (which pieces ran as stand-ins).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(nb: Path, mode: str) -> tuple[float, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    env.pop("MINBERT_CI", None)
    if mode == "ci":
        env["MINBERT_CI"] = "1"
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "--nbval-lax", str(nb)], cwd=ROOT, env=env, capture_output=True, text=True)
    last = (r.stdout.strip().splitlines() or ["(no output)"])[-1]
    return time.perf_counter() - t, last


def run_handout(nb: Path, mode: str, yours: Path) -> tuple[float, str]:
    """Run All of the hand-out's notebook `nb` in its folder -> (seconds, what it said)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", MINBERT_YOURS=str(yours))
    for key in ("MINBERT_CI", "MINBERT_CHECKS", "PYTHONPATH", "MINBERT_RESULTS"):
        env.pop(key, None)
    if mode == "ci":
        env.update(MINBERT_CI="1", MINBERT_CHECKS="report")
    out = nb.parent / "executed"
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "nbconvert", "--to", "notebook", "--execute",
                        "--ExecutePreprocessor.timeout=3600", "--output-dir", str(out), nb.name],
                       cwd=nb.parent, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if r.returncode:
        return dt, "FAILED: " + r.stderr.strip().splitlines()[-1]
    cells = json.loads((out / nb.name).read_text())["cells"]
    text = "".join("".join(o.get("text", "")) for c in cells for o in c.get("outputs", []))
    pieces = next((x for x in text.splitlines() if x.startswith("pieces:")), "(no pieces line)")
    return dt, f"ran to the end; 'not done yet' x{text.count('not done yet')}; {pieces}"


def handout_folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="minbert-handout-"))
    subprocess.run([sys.executable, "-m", "course", "release", "--out", str(folder / "h")],
                   cwd=ROOT, check=True, capture_output=True)
    return folder / "h"


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=("ci", "student", "both"), default="ci")
    ap.add_argument("--only", nargs="*", help="notebook number prefixes, e.g. 01 02")
    ap.add_argument("--handout", action="store_true", help="the released notebooks, in a hand-out")
    args = ap.parse_args(argv)
    where = handout_folder() if args.handout else ROOT / "notebooks"
    nbs = sorted(p for p in where.glob("[0-9][0-9]_*.ipynb")
                 if not args.only or p.name[:2] in args.only)
    modes = ("ci", "student") if args.mode == "both" else (args.mode,)
    total = {m: 0.0 for m in modes}
    print(f"{'notebook':<24} " + " ".join(f"{m + ' s':>10}" for m in modes) + "  nbval (last line)")
    for nb in nbs:
        cells = []
        for m in modes:
            dt, last = run_handout(nb, m, where.parent / "yours") if args.handout else run(nb, m)
            total[m] += dt
            cells.append((dt, last))
        print(f"{nb.name:<24} " + " ".join(f"{dt:>10.0f}" for dt, _ in cells)
              + "  " + " | ".join(last for _, last in cells), flush=True)
    print(f"{'total':<24} " + " ".join(f"{total[m]:>10.0f}" for m in modes))


if __name__ == "__main__":
    main()

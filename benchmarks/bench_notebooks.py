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
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
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


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=("ci", "student", "both"), default="ci")
    ap.add_argument("--only", nargs="*", help="notebook number prefixes, e.g. 01 02")
    args = ap.parse_args(argv)
    nbs = sorted(p for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")
                 if not args.only or p.name[:2] in args.only)
    modes = ("ci", "student") if args.mode == "both" else (args.mode,)
    total = {m: 0.0 for m in modes}
    print(f"{'notebook':<24} " + " ".join(f"{m + ' s':>10}" for m in modes) + "  nbval (last line)")
    for nb in nbs:
        cells = []
        for m in modes:
            dt, last = run(nb, m)
            total[m] += dt
            cells.append((dt, last))
        print(f"{nb.name:<24} " + " ".join(f"{dt:>10.0f}" for dt, _ in cells)
              + "  " + " | ".join(last for _, last in cells), flush=True)
    print(f"{'total':<24} " + " ".join(f"{total[m]:>10.0f}" for m in modes))


if __name__ == "__main__":
    main()

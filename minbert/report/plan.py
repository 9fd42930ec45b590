"""How long the results table takes: a cost model of one seed per row (experiments.py).

    python -m minbert.report.plan --preset cpu [--threads 1] [--results results]

The model counts *sentence passes*: one sentence of at most max_length tokens through the
encoder, forward and backward (a pair encoded separately is two; a joint pair is two, as it has
as many tokens). Training makes (rounds x batch x passes per example) of them; scoring the dev
sets at every curve point (and encoding every example once for a frozen row) costs a third of a
pass each (forward only). Each optimizer step adds a fixed cost (AdamW over every weight, and a
small batch uses the cores less well), which is why batch-8 row 14 takes twice row 2's time for
the same passes. PASS and STEP are a least-squares fit to committed `results/cpu` JSONs (how,
and how well: benchmarks/README.md, "The cost model"). The machine varies up to 4x, so the
estimate is a plan; the wall times in the result JSONs (with each machine's measured matmul
rate) are the facts, and `--results` prints them beside it.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..trainer import epoch_rounds
from .presets import PRESETS, mlm_settings, preset_settings, row_config
from .results import load_results
from .rows import ROWS

# seconds per sentence pass (max_length 64) and per optimizer step, by torch threads (above)
PASS = {1: 0.0136, 2: 0.0076}
STEP = {1: 0.34, 2: 0.19}
FORWARD = 1 / 3      # a forward-only pass (scoring, frozen encoding) against forward + backward

# examples per task (minbert.data: Quora = the package's train / held-out split of quora-dev.csv)
SIZES = {"train": {"sst": 8544, "quora": 16242, "sts": 6040},
         "dev": {"sst": 1101, "quora": 3970, "sts": 863}}
PASSES = {"sst": 1, "quora": 2, "sts": 2}  # sentence passes per example


def estimate_seconds(preset: str, rows=None, threads: int = 2) -> dict:
    """Rough seconds per row for one seed: training passes, scoring at every curve point, the
    frozen rows' one encoding pass, and the MLM pre-steps of rows 11 and 13."""
    s, out, per = preset_settings(preset), {}, PASS[threads]
    size = lambda split, c, t: getattr(c, f"n_{split}") or SIZES[split][t]  # noqa: E731
    for row in rows or ROWS:
        c = row_config(row, 0, s) if ROWS[row].changes is not None else row_config(2, 0, s)
        dev = sum(size("dev", c, t) * PASSES[t] for t in c.tasks)
        every = sum(size("train", c, t) * PASSES[t] for t in c.tasks)
        if ROWS[row].changes is None:  # zero-shot: embed Quora train and every dev set
            out[row] = per * FORWARD * (size("train", c, "quora") * 2 + dev)
            continue
        batches = {t: -(-size("train", c, t) // c.batch_size) for t in c.tasks}
        # each task's batches an epoch
        rounds, steps = epoch_rounds(batches, c.schedule, c.max_batches_per_task)
        passes = c.epochs * c.batch_size * sum(PASSES[t] * n for t, n in steps.items())
        updates = c.epochs * (rounds if c.mode == "pcgrad" else sum(steps.values()))
        points = c.epochs * c.evals_per_epoch + 1
        if c.encoder == "frozen":  # encoded once (minbert.frozen); the heads cost next to nothing
            sec = per * FORWARD * (every + dev)
        else:
            sec = per * (passes + FORWARD * dev * points) + STEP[threads] * updates
        if ROWS[row].mlm:  # MLM micro-batches of max_length tokens: 1 pass per 64 tokens
            m = mlm_settings(ROWS[row].mlm, s, 0)
            micro = -(-(m.get("n_texts") or 1707) // m["batch_size"]) * m["epochs"]
            sec += per * (micro + m["head_warmup_steps"]) * m["batch_size"] * m["max_length"] / 64
        out[row] = sec
    return out


def measured_minutes(results) -> dict:
    """{(row, seed): (train minutes, torch threads, load at start)} of the JSONs in a folder."""
    out = {}
    for _, d in load_results(results).iterrows():
        sec = d["train_time_s"] if d["resumed"] else d["wall_time_s"]  # resumed: the sum
        out[d["row"], d["seed"]] = (sec / 60,
                                    d["device"].get("torch_threads"),
                                    (d["device"].get("load_average_at_start") or [None])[0])
    return out


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m minbert.report.plan", description=__doc__.split("\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    p.add_argument("--threads", type=int, choices=sorted(PASS), default=2)
    p.add_argument("--results", default=None, help="print the measured times of this folder")
    a = p.parse_args(argv)
    est = estimate_seconds(a.preset, threads=a.threads)
    seen = measured_minutes(Path(a.results) / a.preset) if a.results else {}
    for row, sec in est.items():
        runs = [f"seed {s}: {m:.1f} min ({t} thread(s), load {ld})"
                for (r, s), (m, t, ld) in seen.items() if r == row]
        print(f"row {row:2d} {ROWS[row].name:<20} ~{sec / 60:6.1f} min   " + "; ".join(runs))
    print(f"total ~{sum(est.values()) / 60:.0f} min per seed with {a.threads} thread(s) "
          f"({PASS[a.threads]} s a sentence pass, {STEP[a.threads]} s a step)")


if __name__ == "__main__":
    main()

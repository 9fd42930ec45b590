"""How long the results table takes: a cost model of one seed per row (experiments.py).

    python -m minbert.plan --preset cpu [--threads 1] [--results results]

The model counts *sentence passes*: one sentence of at most max_length tokens through the
encoder, forward and backward (a pair encoded separately is two; a joint pair is two, as it has
as many tokens). Training makes (rounds x batch x passes per example) of them; scoring the dev
sets at every curve point (and encoding every example once for a frozen row) costs a third of a
pass each (forward only). COST is seconds per pass, fitted to the committed `results/cpu` JSONs
(`train_time_s`), which say the machine varies: the same work cost 0.010 s a pass with two threads
on the quiet 2-core box (row 6), 0.018 with one thread next to a second run (row 8, load 1) and
0.033-0.037 with one thread under load 6-7 (rows 2 and 9). So the estimate is a plan; the wall
times in the result JSONs (with each machine's measured matmul rate) are the facts, and
`--results` prints them beside it.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from . import train as T
from .experiments import PRESETS, ROWS, mlm_settings, preset_settings, row_config
from .results import load_results

# seconds per sentence pass (max_length 64, batch 32) on the quiet 2-core box, by torch threads
COST = {2: 0.010, 1: 0.018}
FORWARD = 1 / 3      # a forward-only pass (scoring, frozen encoding) against forward + backward

# examples per task (minbert.data: Quora = the package's train / held-out split of quora-dev.csv)
SIZES = {"train": {"sst": 8544, "quora": 16242, "sts": 6040},
         "dev": {"sst": 1101, "quora": 3970, "sts": 863}}
PASSES = {"sst": 1, "quora": 2, "sts": 2}  # sentence passes per example


def estimate_seconds(preset: str, rows=None, threads: int = 2) -> dict:
    """Rough seconds per row for one seed: training passes, scoring at every curve point, the
    frozen rows' one encoding pass, and the MLM pre-steps of rows 11 and 13."""
    s, out, per = preset_settings(preset), {}, COST[threads]
    size = lambda split, c, t: getattr(c, f"n_{split}") or SIZES[split][t]  # noqa: E731
    for row in rows or ROWS:
        c = row_config(row, 0, s) if ROWS[row].changes is not None else row_config(2, 0, s)
        dev = sum(size("dev", c, t) * PASSES[t] for t in c.tasks)
        every = sum(size("train", c, t) * PASSES[t] for t in c.tasks)
        if ROWS[row].changes is None:  # zero-shot: embed Quora train and every dev set
            out[row] = per * FORWARD * (size("train", c, "quora") * 2 + dev)
            continue
        batches = {t: -(-size("train", c, t) // c.batch_size) for t in c.tasks}
        steps = T.epoch_rounds(batches, c)[1]  # each task's batches an epoch
        passes = c.epochs * c.batch_size * sum(PASSES[t] * n for t, n in steps.items())
        points = c.epochs * c.evals_per_epoch + 1
        if c.encoder == "frozen":  # encoded once (minbert.frozen); the heads cost next to nothing
            sec = per * FORWARD * (every + dev)
        else:
            sec = per * (passes + FORWARD * dev * points)  # PCGrad about the same (rows 2, 9)
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
    p = argparse.ArgumentParser(prog="python -m minbert.plan", description=__doc__.split("\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    p.add_argument("--threads", type=int, choices=sorted(COST), default=2)
    p.add_argument("--results", default=None, help="print the measured times of this folder")
    a = p.parse_args(argv)
    est = estimate_seconds(a.preset, threads=a.threads)
    seen = measured_minutes(Path(a.results) / a.preset) if a.results else {}
    for row, sec in est.items():
        runs = [f"seed {s}: {m:.1f} min ({t} thread(s), load {ld})"
                for (r, s), (m, t, ld) in seen.items() if r == row]
        print(f"row {row:2d} {ROWS[row].name:<20} ~{sec / 60:6.1f} min   " + "; ".join(runs))
    print(f"total ~{sum(est.values()) / 60:.0f} min per seed on a quiet box with {a.threads} "
          f"thread(s) (COST {COST[a.threads]} s a sentence pass)")


if __name__ == "__main__":
    main()

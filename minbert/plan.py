"""How long the results table takes: a cost model of one seed per row (experiments.py).

    python -m minbert.plan --preset cpu        # estimated minutes per row and in all

COST holds seconds per training round (one batch of every task: 3 optimizer steps; PCGrad
3 backwards and 1 step) and per scored dev example, measured with short runs of
`train.train_epoch` on the course's shared 2-core machine (torch 2 threads, max_length 64;
benchmarks/README.md). Those machines vary up to 4x in speed: the estimate is a plan, the
wall times in the result JSONs (with each machine's measured matmul rate) are the facts.
"""
from __future__ import annotations

import argparse

from .experiments import PRESETS, ROWS, mlm_settings, preset_settings, row_config

# Cost model behind the cpu estimate (seconds, measured here; see the docstring).
# round = one batch of every task (3 optimizer steps; PCGrad: 3 backwards, 1 step).
COST = {"round_finetune_8": 1.6, "round_finetune_64": 11.8, "round_frozen_8": 0.17,
        "round_pcgrad_8": 2.4, "round_separate_8": 5.0, "eval_example": 0.016,
        "mlm_step_4": 1.06}


# examples per task (minbert.data: Quora = the package's train / held-out split of quora-dev.csv)
SIZES = {"train": {"sst": 8544, "quora": 16242, "sts": 6040},
         "dev": {"sst": 1101, "quora": 3970, "sts": 863}}


def estimate_seconds(preset: str, rows=None) -> dict:
    """Rough seconds per row for one seed: rounds x COST per round (scaled by batch size
    and task count) + dev scoring at every point and once more for the predictions + MLM."""
    s, out = preset_settings(preset), {}
    size = lambda split, c, t: getattr(c, f"n_{split}") or SIZES[split][t]  # noqa: E731
    for row in rows or ROWS:
        c = row_config(row, 0, s) if ROWS[row].changes is not None else None
        if c is None:  # zero-shot: embed Quora train and every dev set
            c = row_config(2, 0, s)
            out[row] = COST["eval_example"] * (size("train", c, "quora")
                                               + sum(size("dev", c, t) for t in c.tasks))
            continue
        rounds = min(-(-size("train", c, t) // c.batch_size) for t in c.tasks)
        rounds = min(rounds, c.max_batches_per_task or rounds) * c.epochs
        key = ("round_frozen_8" if c.encoder == "frozen" else "round_pcgrad_8"
               if c.mode == "pcgrad" else "round_separate_8" if c.pair_mode == "separate"
               else "round_finetune_8")
        per_round = COST[key] * c.batch_size / 8 if c.batch_size < 64 else COST["round_finetune_64"]
        sec = rounds * per_round * len(c.tasks) / 3
        points = c.epochs * c.evals_per_epoch + 1
        sec += COST["eval_example"] * sum(size("dev", c, t) for t in c.tasks) * points
        if ROWS[row].mlm:
            m = mlm_settings(ROWS[row].mlm, s, 0)
            micro = -(-(m.get("n_texts") or 1707) // m["batch_size"]) * m["epochs"]
            sec += (micro + m["head_warmup_steps"] / 2) * COST["mlm_step_4"] * m["max_length"] / 128
        out[row] = sec
    return out


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m minbert.plan", description=__doc__.split("\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    a = p.parse_args(argv)
    est = estimate_seconds(a.preset)
    for row, sec in est.items():
        print(f"row {row:2d} {ROWS[row].name:<20} ~{sec / 60:6.1f} min")
    print(f"total ~{sum(est.values()) / 60:.0f} min per seed (COST: {COST})")


if __name__ == "__main__":
    main()

"""Reading the results table back: result JSONs -> tables and error analysis (notebook 08).

    df = load_results("results")          # one row per result JSON (any preset, any seed)
    print(format_table(summary_table(df)).to_string(index=False))
    error_analysis(df, k=5)               # the most confident wrong predictions per run
    paired_difference(df, "cpu", 9, 2)    # PCGrad minus the baseline, with a bootstrap CI

SEED_REPORT holds the seed report's own numbers (its results table, as printed; see
results/README.md for their quirks: dev or test is not said; "Average" is the simple mean;
single runs; the fine-tuned single-task SST 0.743 is likely not comparable).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import bootstrap

from .data import TASKS
from .metrics import METRIC, metric, overall, simple_mean

# ../shared/seed-report/results.csv: row -> SST acc, Quora acc, STS r, the report's "Average".
# None: a number the report does not give.
SEED_REPORT = {
    1: dict(sst=0.302, quora=0.377, sts=0.225, mean=0.301),
    2: dict(sst=0.499, quora=0.650, sts=0.351, mean=0.500),
    3: dict(sst=0.596, quora=None, sts=None, mean=None),
    4: dict(sst=0.743, quora=None, sts=None, mean=None),
    5: dict(sst=None, quora=0.378, sts=None, mean=None),
    6: dict(sst=None, quora=0.791, sts=None, mean=None),
    7: dict(sst=None, quora=None, sts=0.226, mean=None),
    8: dict(sst=None, quora=None, sts=0.352, mean=None),
    9: dict(sst=0.669, quora=0.487, sts=0.380, mean=0.512),
    10: dict(sst=None, quora=None, sts=0.142, mean=None),
    11: dict(sst=0.416, quora=0.634, sts=0.289, mean=0.446),
    12: dict(sst=0.466, quora=0.579, sts=0.337, mean=0.461),
    13: dict(sst=0.357, quora=0.727, sts=0.293, mean=0.459),
}


def load_results(folder) -> "pd.DataFrame":
    """One row per result JSON under `folder` (recursively), sorted by preset, row, seed."""
    recs = []
    for f in sorted(Path(folder).rglob("row*-seed*.json")):
        r = json.loads(f.read_text())
        rec = {k: r.get(k) for k in ("preset", "dry_run", "row", "name", "description", "seed",
                                     "wall_time_s", "git_commit", "history", "conflict",
                                     "predictions", "config", "device", "mlm")}
        for t in TASKS:
            rec[t] = r["dev"].get(t, {}).get(METRIC[t], np.nan)
        rec["file"] = str(f)
        recs.append(rec)
    cols = ["preset", "row", "name", "seed", *TASKS]
    if not recs:
        return pd.DataFrame(columns=cols)
    return pd.DataFrame(recs).sort_values(["preset", "row", "seed"]).reset_index(drop=True)


def summary_table(df) -> "pd.DataFrame":
    """Per preset x row: mean and std over seeds of SST acc, Quora acc, STS r, their simple
    mean and the CS224N overall score; the seed report's numbers (its "Average" is the
    simple mean) and ours minus theirs."""
    d = df.copy()
    d["mean3"] = simple_mean(d["sst"], d["quora"], d["sts"])
    d["overall"] = overall(d["sst"], d["quora"], d["sts"])
    metrics = [*TASKS, "mean3", "overall"]
    g = d.groupby(["preset", "row", "name"], sort=True)
    out = g[metrics].mean()
    std = g[metrics].std(ddof=1).fillna(0.0)  # one seed: std 0
    for m in metrics:
        out[m + "_std"] = std[m]
    out["seeds"] = g.size()
    out = out.reset_index()
    for m, key in (*((t, t) for t in TASKS), ("mean3", "mean")):
        out["seed_" + m] = pd.to_numeric([SEED_REPORT.get(r, {}).get(key) for r in out["row"]])
        out["diff_" + m] = out[m] - out["seed_" + m]
    return out


def format_table(summary, digits=3) -> "pd.DataFrame":
    """The seed's layout: one line per row, 'mean ± std' per metric, seed and difference."""

    def pm(m, s):
        return "-" if pd.isna(m) else f"{m:.{digits}f} ± {s:.{digits}f}"

    def num(x):
        return "-" if pd.isna(x) else f"{x:+.{digits}f}" if isinstance(x, float) else str(x)
    rows = []
    for _, r in summary.iterrows():
        line = {"preset": r["preset"], "row": int(r["row"]), "name": r["name"],
                "seeds": int(r["seeds"])}
        for m, label in (("sst", "SST acc"), ("quora", "Quora acc"), ("sts", "STS r"),
                         ("mean3", "mean"), ("overall", "overall")):
            line[label] = pm(r[m], r[m + "_std"])
        for m in ("sst", "quora", "sts", "mean3"):  # the seed gives no overall score
            seed = r["seed_" + m]
            name = "mean" if m == "mean3" else m
            line[f"seed {name}"] = "-" if pd.isna(seed) else f"{seed:.{digits}f}"
            line[f"Δ {name}"] = num(r["diff_" + m])
        rows.append(line)
    return pd.DataFrame(rows)


def error_analysis(df, k=5) -> "pd.DataFrame":
    """Per run and task, the k most confident wrong predictions (SST, Quora) or the k
    largest |pred - gold| (STS), with both sentences."""
    rows = []
    for _, r in df.iterrows():
        for task, preds in (r["predictions"] or {}).items():
            if task == "sts":
                wrong = sorted(preds, key=lambda p: -abs(p["pred"] - p["gold"]))
            else:
                wrong = sorted((p for p in preds if p["pred"] != p["gold"]),
                               key=lambda p: (-(p["confidence"] or 0), p["id"]))
            for p in wrong[:k]:
                rows.append({"preset": r["preset"], "row": r["row"], "name": r["name"],
                             "seed": r["seed"], "task": task, **p})
    return pd.DataFrame(rows)




# ------------------------------------------------------------------ significance
def _aligned(df, preset, row, base, task):
    """Per common seed: (gold, pred of row, pred of base) over the dev ids both predicted."""
    out = []
    a = df[(df["preset"] == preset) & (df["row"] == row)].set_index("seed")["predictions"]
    b = df[(df["preset"] == preset) & (df["row"] == base)].set_index("seed")["predictions"]
    for seed in sorted(set(a.index) & set(b.index)):
        pa = {p["id"]: p for p in (a[seed] or {}).get(task, [])}
        pb = {p["id"]: p for p in (b[seed] or {}).get(task, [])}
        ids = sorted(set(pa) & set(pb))
        if ids:
            out.append((np.array([pa[i]["gold"] for i in ids], dtype=float),
                        np.array([pa[i]["pred"] for i in ids], dtype=float),
                        np.array([pb[i]["pred"] for i in ids], dtype=float)))
    return out


def _std(x) -> float:
    return float(np.std(x, ddof=1)) if len(x) > 1 else 0.0


def paired_difference(df, preset, row, base, tasks=TASKS, n_resamples=2000, seed=0) -> dict:
    """row minus base: per task (and for the simple mean when all three are given) the
    difference of the metric per seed, their mean and std, and a 95 % percentile interval
    from a paired bootstrap over dev examples (scipy.stats.bootstrap): each resample draws
    the dev examples of a task with replacement, the same examples for both rows and every
    seed, and the statistic is the difference averaged over the seeds."""
    per_task = {t: _aligned(df, preset, row, base, t) for t in tasks}
    if not all(per_task.values()):
        return {}

    def diff(t, idx):
        return np.mean([metric(t, pa[idx], g[idx]) - metric(t, pb[idx], g[idx])
                        for g, pa, pb in per_task[t]])

    out = {}
    for t in tasks:
        n = len(per_task[t][0][0])
        per_seed = [metric(t, pa, g) - metric(t, pb, g) for g, pa, pb in per_task[t]]
        ci = bootstrap((np.arange(n),), lambda i, t=t: diff(t, i), vectorized=False,
                       n_resamples=n_resamples, method="percentile", random_state=seed)
        out[t] = dict(diff=float(np.mean(per_seed)), std=_std(per_seed), seeds=len(per_seed),
                      per_seed=per_seed,
                      low=float(ci.confidence_interval.low), high=float(ci.confidence_interval.high))
    if tuple(tasks) == TASKS:
        samples = tuple(np.arange(len(per_task[t][0][0])) for t in TASKS)
        ci = bootstrap(samples, lambda *ix: np.mean([diff(t, i) for t, i in zip(TASKS, ix)]),
                       vectorized=False, n_resamples=n_resamples, method="percentile",
                       random_state=seed)
        per_seed = list(np.mean([out[t]["per_seed"] for t in TASKS], axis=0))
        out["mean"] = dict(diff=float(np.mean(per_seed)), std=_std(per_seed),
                           seeds=len(per_seed), per_seed=per_seed, low=float(ci.confidence_interval.low),
                           high=float(ci.confidence_interval.high))
    return out

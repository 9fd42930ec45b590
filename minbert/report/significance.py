"""Is one row better than another? Paired bootstrap intervals over the dev examples (notebook 08).

    paired_difference(df, "cpu", 9, 2)    # PCGrad minus the baseline, with a bootstrap CI
    significance_table(df, "cpu")         # every extension / single-task row vs row 2
    pcgrad_verdict(significance_table(df, "cpu"))   # the seed's headline claim, in words

`df` is results.load_results(...): one row per result JSON, with every dev prediction.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import bootstrap

from ..data import TASKS
from ..metrics import METRIC, metric


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


def _metric_along(task, pred, gold):
    """metrics.metric over the last axis, for a whole batch of bootstrap resamples at once:
    accuracy, or Pearson r written out (tests compare both with scipy on single resamples)."""
    if METRIC[task] == "acc":
        return (pred == gold).mean(-1)
    x, y = pred - pred.mean(-1, keepdims=True), gold - gold.mean(-1, keepdims=True)
    return (x * y).sum(-1) / np.sqrt((x * x).sum(-1) * (y * y).sum(-1))


def _interval(samples, statistic, n_resamples, seed) -> tuple:
    """The 95 % percentile interval of scipy's bootstrap (vectorized, batches of 200)."""
    ci = bootstrap(samples, statistic, vectorized=True, n_resamples=n_resamples,
                   batch=200, method="percentile", random_state=seed).confidence_interval
    return float(ci.low), float(ci.high)


def paired_difference(df, preset, row, base, tasks=TASKS, n_resamples=2000, seed=0) -> dict:
    """row minus base: per task (and for the simple mean when all three are given) the
    difference of the metric per seed, their mean and std, and a 95 % percentile interval
    from a paired bootstrap over dev examples (scipy.stats.bootstrap): each resample draws
    the dev examples of a task with replacement, the same examples for both rows and every
    seed, and the statistic is the difference averaged over the seeds (pooled seeds)."""
    per_task = {t: _aligned(df, preset, row, base, t) for t in tasks}
    if not all(per_task.values()):
        return {}

    # accuracy is a mean over examples: average the per-example differences over the seeds
    # once, then a resample's difference is the mean of those at its indices (fast, exact)
    right = {t: np.mean([(pa == g).astype(float) - (pb == g) for g, pa, pb in per_task[t]],
                        axis=0) for t in tasks if METRIC[t] == "acc"}

    def diff(t, idx):  # idx: (..., n) resampled example indices -> (...) differences
        if t in right:
            return right[t][idx].mean(-1)
        return np.mean([_metric_along(t, pa[idx], g[idx]) - _metric_along(t, pb[idx], g[idx])
                        for g, pa, pb in per_task[t]], axis=0)

    out = {}
    for t in tasks:
        per_seed = [metric(t, pa, g) - metric(t, pb, g) for g, pa, pb in per_task[t]]
        low, high = _interval((np.arange(len(per_task[t][0][0])),),
                              lambda i, axis=-1, t=t: diff(t, i), n_resamples, seed)
        out[t] = dict(diff=float(np.mean(per_seed)), std=_std(per_seed), seeds=len(per_seed),
                      per_seed=per_seed, low=low, high=high)
    if tuple(tasks) == TASKS:
        samples = tuple(np.arange(len(per_task[t][0][0])) for t in TASKS)
        low, high = _interval(samples, lambda *ix, axis=-1: np.mean(
            [diff(t, i) for t, i in zip(TASKS, ix)], axis=0), n_resamples, seed)
        per_seed = list(np.mean([out[t]["per_seed"] for t in TASKS], axis=0))
        out["mean"] = dict(diff=float(np.mean(per_seed)), std=_std(per_seed),
                           seeds=len(per_seed), per_seed=per_seed, low=low, high=high)
    return out


def significance_table(df, preset, base=2, n_resamples=2000) -> "pd.DataFrame":
    """Every trained row against the multitask baseline (row 2): per task it has, and for the
    simple mean, the difference (mean ± std over common seeds) and the 95 % paired-bootstrap
    interval; "significant" when the interval excludes 0."""
    rows = []
    d = df[df["preset"] == preset]
    for row in sorted(set(d["row"]) - {0, base}):
        one = d[d["row"] == row].iloc[0]
        tasks = tuple(t for t in TASKS if not pd.isna(one[t]))
        res = paired_difference(df, preset, row, base, tasks, n_resamples=n_resamples)
        for key, v in res.items():
            rows.append({"row": int(row), "name": one["name"], "vs": base, "metric": key,
                         "seeds": v["seeds"], "diff": v["diff"], "std": v["std"],
                         "low": v["low"], "high": v["high"],
                         "significant": not (v["low"] <= 0 <= v["high"])})
    return pd.DataFrame(rows)


def pcgrad_verdict(sig) -> str:
    """The seed's headline claim (PCGrad beats the multitask baseline, +0.012 mean in one
    run), tested here: plain words from the significance table's row-9 mean line."""
    line = sig[(sig["row"] == 9) & (sig["metric"] == "mean")] if len(sig) else sig
    if not len(line):
        return "PCGrad (row 9) vs the baseline (row 2): not run yet."
    v = line.iloc[0]
    what = ("PCGrad is better than the baseline" if v["low"] > 0 else
            "PCGrad is worse than the baseline" if v["high"] < 0 else
            "no difference between PCGrad and the baseline can be told apart from noise")
    holds = ("holds here" if v["low"] > 0 else "is contradicted here" if v["high"] < 0 else
             "is not supported here (one seed: the interval covers the dev sample, not seeds)"
             if v["seeds"] < 2 else "is not supported here")
    return (f"PCGrad minus baseline, simple mean: {v['diff']:+.3f} ± {v['std']:.3f} over "
            f"{v['seeds']} seed(s), 95% interval [{v['low']:+.3f}, {v['high']:+.3f}]: {what}; "
            f"the seed's claim (PCGrad +0.012 better) {holds}.")


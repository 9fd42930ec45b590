"""minbert.results.paired_difference against hand-computed differences and intervals."""
import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr

from minbert import results as R


def run(row, seed, sst, quora, sts):
    """A result-JSON-like row: predictions per task as (id, gold, pred)."""
    preds = {t: [{"id": f"{t}{i}", "gold": g, "pred": p} for i, (g, p) in enumerate(v)]
             for t, v in (("sst", sst), ("quora", quora), ("sts", sts))}
    return {"preset": "p", "row": row, "seed": seed, "predictions": preds}


def test_paired_difference_by_hand():
    rng = np.random.default_rng(0)
    gold_s = rng.normal(size=40)
    a_s, b_s = gold_s + rng.normal(scale=0.5, size=40), gold_s + rng.normal(scale=1.0, size=40)
    rows = []
    for seed in (0, 1):
        # row 1 is right on every SST example, row 0 on half; Quora both identical
        rows.append(run(1, seed, [(1, 1)] * 20, [(0, 1), (1, 1)] * 10,
                        list(zip(gold_s, a_s + seed))))
        rows.append(run(0, seed, [(1, 1), (1, 0)] * 10, [(0, 1), (1, 1)] * 10,
                        list(zip(gold_s, b_s))))
    df = pd.DataFrame(rows)
    d = R.paired_difference(df, "p", 1, 0, n_resamples=500)
    assert d["sst"]["diff"] == pytest.approx(0.5) and d["sst"]["std"] == 0.0
    assert d["sst"]["seeds"] == 2 and d["sst"]["low"] <= 0.5 <= d["sst"]["high"]
    assert 0.2 < d["sst"]["low"] and d["sst"]["high"] < 0.8  # 20 examples: not a point
    assert d["quora"] == {**d["quora"], "diff": 0.0, "low": 0.0, "high": 0.0}  # identical rows
    r = pearsonr(a_s, gold_s)[0] - pearsonr(b_s, gold_s)[0]  # a shift does not change r
    assert d["sts"]["diff"] == pytest.approx(r) and d["sts"]["std"] == pytest.approx(0.0, abs=1e-12)
    assert d["sts"]["low"] < r < d["sts"]["high"]
    assert d["mean"]["diff"] == pytest.approx((0.5 + 0.0 + r) / 3)
    # the same seed draws the same interval; a row missing gives no comparison
    assert R.paired_difference(df, "p", 1, 0, n_resamples=500) == d
    assert R.paired_difference(df, "p", 1, 7) == {}

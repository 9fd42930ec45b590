"""minbert.report.significance.paired_difference against hand-computed differences and intervals;
where minbert.report.results finds and how it reads the result JSONs."""
import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr

from minbert.env import RESULTS_ENV
from minbert.report import results as R
from minbert.report import significance as S

ROOT = Path(__file__).resolve().parents[1]


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
    d = S.paired_difference(df, "p", 1, 0, n_resamples=500)
    assert d["sst"]["diff"] == pytest.approx(0.5) and d["sst"]["std"] == 0.0
    assert d["sst"]["seeds"] == 2 and d["sst"]["low"] <= 0.5 <= d["sst"]["high"]
    assert 0.2 < d["sst"]["low"] and d["sst"]["high"] < 0.8  # 20 examples: not a point
    assert d["quora"] == {**d["quora"], "diff": 0.0, "low": 0.0, "high": 0.0}  # identical rows
    r = pearsonr(a_s, gold_s)[0] - pearsonr(b_s, gold_s)[0]  # a shift does not change r
    assert d["sts"]["diff"] == pytest.approx(r) and d["sts"]["std"] == pytest.approx(0.0, abs=1e-12)
    assert d["sts"]["low"] < r < d["sts"]["high"]
    assert d["mean"]["diff"] == pytest.approx((0.5 + 0.0 + r) / 3)
    # the same seed draws the same interval; a row missing gives no comparison
    assert S.paired_difference(df, "p", 1, 0, n_resamples=500) == d
    assert S.paired_difference(df, "p", 1, 7) == {}


def test_bootstrap_metric_matches_scipy_and_accuracy_by_hand():
    rng = np.random.default_rng(1)
    pred, gold = rng.normal(size=(3, 50)), rng.normal(size=(3, 50))
    r = S._metric_along("sts", pred, gold)
    assert r == pytest.approx([pearsonr(p, g)[0] for p, g in zip(pred, gold)], abs=1e-12)
    acc = S._metric_along("sst", np.array([[1, 2, 3, 4]]), np.array([[1, 2, 0, 0]]))
    assert acc.tolist() == [0.5]


def test_significance_table_and_pcgrad_verdict():
    rows = []
    for seed in (0, 1, 2):  # row 9 right on 30 of 40 SST examples where row 2 is on 10
        rows.append(run(9, seed, [(1, 1)] * 30 + [(1, 0)] * 10, [(1, 1)] * 40,
                        [(i, i) for i in range(40)]))
        rows.append(run(2, seed, [(1, 1)] * 10 + [(1, 0)] * 30, [(1, 1)] * 40,
                        [(i, i) for i in range(40)]))
    df = pd.DataFrame(rows)
    for t in ("sst", "quora", "sts"):
        df[t] = 0.5
    df["name"] = df["row"].map({9: "pcgrad", 2: "multitask-finetune"})
    sig = S.significance_table(df, "p", n_resamples=300)
    assert list(sig["metric"]) == ["sst", "quora", "sts", "mean"]
    sst = sig[sig["metric"] == "sst"].iloc[0]
    assert sst["diff"] == pytest.approx(0.5) and sst["significant"] and sst["seeds"] == 3
    assert not sig[sig["metric"] == "quora"].iloc[0]["significant"]  # identical: 0 in [0, 0]
    words = S.pcgrad_verdict(sig)
    assert "+0.167" in words and "PCGrad is better" in words and "holds here" in words
    flipped = sig.assign(diff=-sig["diff"], low=-sig["high"], high=-sig["low"])
    assert "contradicted" in S.pcgrad_verdict(flipped) and "worse" in S.pcgrad_verdict(flipped)
    assert "not run" in S.pcgrad_verdict(sig.iloc[0:0])


def test_error_kinds_on_the_seed_table_1():
    """The seed's Table 1 (report.txt), one pair per kind, classified as the report reads them."""
    table1 = [("Why do I need a passport to go to Jamaica from Honduras?",
               "Why do I need a passport to go to Jamaica from Germany?", "shared phrase"),
              ("Which are the worst Bollywood movies of 2016?",
               "Which are the best Bollywood movies in 2016?", "antonym swap"),
              ("What is a civil war?",
               "What is your review of Captain America: Civil War (2016 movie)?", "topic overlap")]
    for s1, s2, kind in table1:
        assert R.error_kind(s1, s2) == kind, (s1, s2)
    assert R.error_kind("How old are you?", "Where is Paris?") == "other"
    assert R.overlap("a b c", "a b d") == pytest.approx(2 / 4)
    assert R.longest_shared_run("x a b c y".split(), "a b c z".split()) == 3


def test_learning_table_floors_by_hand():
    """Majority class of the stored dev golds (3 of 4 SST golds are 1: floor 0.75), r 0.5 for
    STS, and the zero-shot row's numbers as a second line."""
    sst = [(1, 1), (1, 1), (1, 1), (0, 1)]
    df = pd.DataFrame([run(0, 0, sst, [(1, 1), (0, 1)], [(1, 1), (2, 2)]),
                       run(2, 0, sst, [(1, 1), (0, 1)], [(1, 1), (2, 2)]),
                       run(4, 0, sst, [(1, 1), (0, 1)], [(1, 1), (2, 2)])])
    df["name"] = ["zero-shot", "multitask", "sst-only"]
    df[["sst", "quora", "sts"]] = [[0.75, 0.5, 0.8], [0.80, 0.6, 0.6], [0.70, np.nan, np.nan]]
    t = R.learning_table(df, "p").set_index("row")
    assert t.loc[2, "sst floor"] == 0.75 and t.loc[2, "quora floor"] == 0.5
    assert t.loc[2, "learns"] and t.loc[2, "below zero-shot"] == "sts"
    assert not t.loc[4, "learns"] and t.loc[4, "below zero-shot"] == "sst"


def test_committed_results_reproduce_from_their_predictions():
    """Every committed result JSON: the dev metric recomputed from its stored (gold, pred)
    pairs, with scipy / numpy as the oracle, is the reported one, and the dev sets are whole."""
    import json
    from pathlib import Path
    files = sorted((Path(__file__).parents[1] / "results").rglob("row*-seed*.json"))
    if not files:
        pytest.skip("no committed results")
    full = {"sst": 1101, "quora": 3970, "sts": 863}
    for f in files:
        r = json.loads(f.read_text())
        for t, preds in r["predictions"].items():
            gold = np.array([p["gold"] for p in preds])
            pred = np.array([p["pred"] for p in preds])
            got = pearsonr(pred, gold)[0] if t == "sts" else float(np.mean(pred == gold))
            want = r["dev"][t]["pearson" if t == "sts" else "acc"]
            assert got == pytest.approx(want, abs=1e-12), (f.name, t)
            if r["preset"] == "cpu":
                assert len(preds) == full[t] == len({p["id"] for p in preds}), (f.name, t)


def test_by_metric_groups_ours_seed_and_delta_without_changing_a_cell():
    flat = pd.DataFrame([{"row": 2, "name": "b", "seeds": 3, "SST acc": "0.491 ± 0.010",
                          "STS r": "0.872 ± 0.001", "mean": "0.728 ± 0.002",
                          "overall": "0.749 ± 0.002", "seed sst": "0.499", "Δ sst": "-0.008",
                          "seed sts": "0.351", "Δ sts": "+0.521", "seed mean": "0.500",
                          "Δ mean": "+0.228"}])
    g = R.by_metric(flat)
    assert list(g.columns) == [("row", ""), ("name", ""), ("seeds", ""),
                               ("SST acc", "ours"), ("SST acc", "seed"), ("SST acc", "Δ"),
                               ("STS r", "ours"), ("STS r", "seed"), ("STS r", "Δ"),
                               ("mean", "ours"), ("mean", "seed"), ("mean", "Δ"),
                               ("overall", "ours")]
    assert sorted(map(str, g.iloc[0])) == sorted(map(str, flat.iloc[0]))  # moved, not changed
    assert g[("SST acc", "Δ")].iloc[0] == "-0.008" and g[("STS r", "seed")].iloc[0] == "0.351"


def test_results_dir_is_one_rule_and_names_the_places_it_looked_at(tmp_path, monkeypatch):
    monkeypatch.delenv(RESULTS_ENV, raising=False)
    assert R.results_dir() == ROOT / "results"  # beside the package
    assert R.results_dir(ROOT / "results") == ROOT / "results"
    monkeypatch.setenv(RESULTS_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError) as e:
        R.results_dir()
    assert str(tmp_path) in str(e.value) and f"${RESULTS_ENV}" in str(e.value)
    assert str(ROOT / "results") in str(e.value)  # and where it would look without it
    record = {"row": 2, "seed": 0, "preset": "p", "dev": {"sst": {"acc": 0.5}}}
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "row02-x-seed0.json.gz").write_bytes(gzip.compress(json.dumps(record).encode()))
    assert R.results_dir() == tmp_path  # a gzipped JSON, as the release ships them
    df = R.load_results(tmp_path)
    assert len(df) == 1 and df.loc[0, "sst"] == 0.5

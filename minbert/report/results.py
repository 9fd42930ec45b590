"""Reading the results table back: result JSONs -> tables and error analysis (notebook 08).

    df = load_results(results_dir())      # one row per result JSON (any preset, any seed)
    print(format_table(summary_table(df)).to_string(index=False))
    error_analysis(df, k=5)               # the most confident wrong predictions per run
    quora_false_positives(df, "cpu", 13)  # the seed's Table 1, for our run: kinds of error

Row against row with a paired bootstrap: report/significance.py.
SEED_REPORT holds the seed report's own numbers (its results table, as printed; see
results/README.md for their quirks: dev or test is not said; "Average" is the simple mean;
single runs; the fine-tuned single-task SST 0.743 is likely not comparable).
"""
from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import TASKS
from ..env import RESULTS_ENV, chosen_folder
from ..metrics import METRIC, overall, simple_mean

# results/ beside the package: the repository's, or the student folder's (course release)
BESIDE_PACKAGE = Path(__file__).resolve().parents[2] / "results"
RESULT_FILES = ("row*-seed*.json", "row*-seed*.json.gz")  # .gz: as the release ships them

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


def result_files(folder) -> list:
    """The result JSONs under `folder` (recursively; gzipped ones too), sorted by path."""
    return sorted(f for pattern in RESULT_FILES for f in Path(folder).rglob(pattern))


def results_dir(path=None) -> Path:
    """The folder of result JSONs notebook 08 reads: `path` > $MINBERT_RESULTS > the
    `results/` folder beside the minbert package (the repository's `results/`; in the student
    folder of `python -m course release`, its `results/`). No search: a folder without
    result JSONs is an error that names it."""
    folder, source = chosen_folder(path, RESULTS_ENV, BESIDE_PACKAGE)
    if not result_files(folder):
        raise FileNotFoundError(
            f"no result JSONs ({' or '.join(RESULT_FILES)}) under {folder} (from {source}; the "
            f"rule: the path argument, else ${RESULTS_ENV}, else {BESIDE_PACKAGE}): set "
            f"{RESULTS_ENV} to the folder that holds them (the course repository's results/, "
            f"or the results/ of the student folder)")
    return folder


def read_result(path) -> dict:
    path = Path(path)
    data = path.read_bytes()
    return json.loads(gzip.decompress(data) if path.suffix == ".gz" else data)


def load_results(folder) -> "pd.DataFrame":
    """One row per result JSON under `folder` (recursively), sorted by preset, row, seed."""
    recs, keys = [], ("preset", "dry_run", "row", "name", "description", "seed", "wall_time_s",
                      "git_commit", "history", "conflict", "predictions", "config", "device",
                      "mlm", "resumed", "train_time_s")
    for f in result_files(folder):
        r = read_result(f)
        rec = {k: r.get(k) for k in keys}
        for t in TASKS:
            rec[t] = r["dev"].get(t, {}).get(METRIC[t], np.nan)
        rec["file"] = str(f)
        recs.append(rec)
    if not recs:
        return pd.DataFrame(columns=[*keys, *TASKS, "file"])
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


def format_table(summary, digits=3, missing="-") -> "pd.DataFrame":
    """The seed's layout: one line per row, 'mean ± std' per metric, seed and difference;
    `missing` where a number is not given (None: left missing, for report.tables to show)."""

    def pm(m, s):
        return missing if pd.isna(m) else f"{m:.{digits}f} ± {s:.{digits}f}"

    def num(x):
        return missing if pd.isna(x) else f"{x:+.{digits}f}" if isinstance(x, float) else str(x)
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
            line[f"seed {name}"] = missing if pd.isna(seed) else f"{seed:.{digits}f}"
            line[f"Δ {name}"] = num(r["diff_" + m])
        rows.append(line)
    return pd.DataFrame(rows)


def by_metric(table) -> "pd.DataFrame":
    """format_table's columns under a two-level header, per metric ours, the seed's and Δ
    side by side (notebook 08: narrower, so a line fits a laptop's width)."""
    label = {"sst": "SST acc", "quora": "Quora acc", "sts": "STS r", "mean": "mean"}

    def key(column):
        kind, _, m = column.partition(" ")
        if kind in ("seed", "Δ") and m in label:
            return label[m], kind
        return (column, "ours") if column in (*label.values(), "overall") else (column, "")
    keys = [key(c) for c in table.columns]
    groups = list(dict.fromkeys(group for group, _ in keys))
    out = table.set_axis(pd.MultiIndex.from_tuples(keys), axis=1)
    return out[sorted(out.columns, key=lambda k: groups.index(k[0]))]  # stable: ours, seed, Δ


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


# ---------------------------------------------------- the seed's Table 1 (Quora errors)
# Antonyms that flip a question's meaning (the seed's example: worst / best), by hand.
ANTONYMS = [("best", "worst"), ("good", "bad"), ("most", "least"), ("more", "less"),
            ("advantages", "disadvantages"), ("pros", "cons"), ("increase", "decrease"),
            ("rich", "poor"), ("before", "after"), ("high", "low"), ("easy", "hard"),
            ("easiest", "hardest"), ("love", "hate"), ("buy", "sell"), ("win", "lose"),
            ("men", "women"), ("male", "female"), ("positive", "negative"), ("first", "last"),
            ("cheap", "expensive"), ("cheapest", "expensive"), ("old", "new"),
            ("start", "stop"), ("true", "false"), ("top", "bottom"), ("better", "worse"),
            ("biggest", "smallest"), ("big", "small"), ("fast", "slow"), ("safe", "dangerous")]
STOP = set("a an the of in on to for is are was were do does did i you my your what which "
           "how why who when where can could should would will be it its and or with from "
           "by at as that this there their me we our".split())


def words(text) -> list:
    return re.findall(r"[a-z0-9']+", text.lower())


def longest_shared_run(a: list, b: list) -> int:
    """The longest run of consecutive words that both sentences contain."""
    best, prev = 0, [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b):
            if x == y:
                cur[j + 1] = prev[j] + 1
                best = max(best, cur[j + 1])
        prev = cur
    return best


def error_kind(s1, s2) -> str:
    """The seed's three kinds of false paraphrase, in this order: "antonym swap" (one sentence
    says best, the other worst), "shared phrase" (a run of >= 4 words in common, a content
    word swapped: Jamaica from Honduras / from Germany), "topic overlap" (content words in
    common, little else: What is a civil war? / Captain America: Civil War); else "other"."""
    a, b = words(s1), words(s2)
    only_a, only_b = set(a) - set(b), set(b) - set(a)
    if any((x in only_a and y in only_b) or (y in only_a and x in only_b) for x, y in ANTONYMS):
        return "antonym swap"
    if longest_shared_run(a, b) >= 4 and (only_a | only_b) - STOP:
        return "shared phrase"
    return "topic overlap" if (set(a) & set(b)) - STOP else "other"


def overlap(s1, s2) -> float:
    """Jaccard overlap of the two sentences' word sets."""
    a, b = set(words(s1)), set(words(s2))
    return len(a & b) / max(len(a | b), 1)


def quora_false_positives(df, preset, row, seed=0) -> "pd.DataFrame":
    """Every Quora pair the run called a paraphrase that is not one, most confident first,
    with its word overlap and error kind (the seed's Table 1 shows three, all high overlap)."""
    r = df[(df["preset"] == preset) & (df["row"] == row) & (df["seed"] == seed)]
    if not len(r):
        return pd.DataFrame(columns=["confidence", "overlap", "kind", "sentence1", "sentence2"])
    fp = [p for p in r.iloc[0]["predictions"]["quora"] if p["pred"] == 1 and p["gold"] == 0]
    out = pd.DataFrame([{"id": p["id"], "confidence": p["confidence"],
                         "overlap": round(overlap(p["sentence1"], p["sentence2"]), 2),
                         "kind": error_kind(p["sentence1"], p["sentence2"]),
                         "sentence1": p["sentence1"], "sentence2": p["sentence2"]} for p in fp])
    return out.sort_values(["confidence", "id"], ascending=[False, True]).reset_index(drop=True)


# ------------------------------------------------------------- does every row learn?
BARS = {"sst": 0.47, "quora": 0.82, "sts": 0.87}  # the results issue's bar for the best row


def learning_table(df, preset) -> "pd.DataFrame":
    """Per trained row (mean over seeds): each task's metric against the majority class of
    its dev set (SST, Quora; from the stored gold labels) or r = 0.5 (STS), and against the
    zero-shot row 0; `learns` is True when every task it trains clears its floor."""
    d = df[df["preset"] == preset]
    zero = d[d["row"] == 0][list(TASKS)].mean() if (d["row"] == 0).any() else None
    floors = {}
    for t in ("sst", "quora"):  # every run scores the same full dev set: any one will do
        one = next((preds[t] for preds in d["predictions"] if preds and t in preds), None)
        if one:
            floors[t] = pd.Series([p["gold"] for p in one]).value_counts(normalize=True).max()
    floors["sts"] = 0.5
    rows = []
    for (row, name), g in d[d["row"] != 0].groupby(["row", "name"]):
        line = {"row": int(row), "name": name, "seeds": len(g)}
        ok, below = [], []
        for t in TASKS:
            v = g[t].mean()
            if pd.isna(v):
                continue
            line[t], line[t + " floor"] = v, floors.get(t)
            ok.append(t not in floors or v > floors[t])
            if zero is not None and v < zero[t]:
                below.append(t)
        line["learns"], line["below zero-shot"] = all(ok), ", ".join(below) or "-"
        rows.append(line)
    return pd.DataFrame(rows)

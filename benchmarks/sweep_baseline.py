"""A small sweep for the cpu preset's course baseline, on a held-out part of TRAIN (never dev).

    python benchmarks/sweep_baseline.py --out runs/sweep            # every config, resumable
    python benchmarks/sweep_baseline.py --out runs/sweep --configs A B --threads 1
    python benchmarks/sweep_baseline.py --out runs/sweep --summary  # print the table only

The course data folder ($MINBERT_DATA) is copied into OUT/data with each task's train split
cut in two by sha1(id): 90 % stays train, 10 % becomes that folder's "dev" file. Dev sets of
the real data are never read, so the choice of settings cannot leak into the results table.
Quora: the package's train split (80 % of quora-dev.csv, minbert.data) is cut the same way and
written as quora-train.csv / quora-dev.csv, so minbert.data reads them as a real split.

Each config is one `python -m minbert.train` run (multitask round-robin, the full held-out
train data, dev metrics after every epoch); an interrupted run resumes from its checkpoint.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from minbert import data  # noqa: E402

HOLD_OUT_PERCENT = 10
BASE = ["--mode", "multitask", "--lr", "5e-5", "--head-lr", "1e-3", "--pooling", "mean",
        "--batch-size", "32", "--max-length", "64", "--epochs", "3"]
CONFIGS = {  # name -> flags added to BASE (later flags win)
    "A": ["--pair-mode", "separate"],                 # the measured recipe
    "B": ["--pair-mode", "joint"],                    # pairs as one [CLS] a [SEP] b [SEP]
    "C": ["--pair-mode", "separate", "--lr", "1e-4"],
    "D": ["--pair-mode", "separate", "--head-lr", "3e-3"],
    # every Quora batch once an epoch (A: the shortest loader, STS's, sets the rounds, so
    # Quora sees ~37 % of its pairs an epoch); 1.7x A's steps an epoch, hence 2 epochs
    "E": ["--pair-mode", "separate", "--schedule", "spread", "--epochs", "2"],
    # E with the lr decayed linearly to 0 over the two epochs (Devlin et al. 2019's schedule,
    # no warmup): the end of a constant-lr run is noisy (row 12's SST: 0.43-0.49 over seeds)
    "F": ["--pair-mode", "separate", "--schedule", "spread", "--epochs", "2",
          "--lr-decay", "linear"],
}


def held_out(ex_id: str) -> bool:
    return int(hashlib.sha1(("sweep:" + ex_id).encode()).hexdigest()[:8], 16) % 100 \
        < HOLD_OUT_PERCENT


def write_rows(path: Path, header, rows):
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    os.replace(tmp, path)


def make_data(src: Path, dest: Path) -> Path:
    """dest holds ids-sst/sts train+dev and quora-train/dev cut from the TRAIN splits."""
    dest.mkdir(parents=True, exist_ok=True)
    if (dest / "done").is_file():
        return dest
    quora_train_ids = {e.id for e in data.load("quora", "train", src)}
    for task, name, train_name, dev_name in (
            ("sst", "ids-sst-train.csv", "ids-sst-train.csv", "ids-sst-dev.csv"),
            ("sts", "sts-train.csv", "sts-train.csv", "sts-dev.csv"),
            ("quora", "quora-dev.csv", "quora-train.csv", "quora-dev.csv")):
        with open(src / name, encoding="utf-8", newline="") as f:
            reader = csv.reader(f, delimiter="\t")
            header = next(reader)
            col = [h.strip() for h in header].index("id")
            rows = [r for r in reader if r]
        if task == "quora":
            rows = [r for r in rows if r[col].strip() in quora_train_ids]
        write_rows(dest / train_name, header, [r for r in rows if not held_out(r[col].strip())])
        write_rows(dest / dev_name, header, [r for r in rows if held_out(r[col].strip())])
    (dest / "done").write_text("ok\n")
    return dest


def summary(out: Path) -> str:
    lines = [f"{'config':<6} {'epoch':>5} {'sst':>6} {'quora':>6} {'sts':>6} {'mean':>6} "
             f"{'min':>6}  flags"]
    for name, flags in CONFIGS.items():
        h = out / name / "history.json"
        if not h.is_file():
            continue
        for e in json.loads(h.read_text()):
            d = e["dev"]
            s, q, r = d["sst"]["acc"], d["quora"]["acc"], d["sts"]["pearson"]
            lines.append(f"{name:<6} {e['epoch']:>5} {s:6.3f} {q:6.3f} {r:6.3f} "
                         f"{(s + q + r) / 3:6.3f} {e['wall_time_s'] / 60:5.1f}m  {' '.join(flags)}")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="runs/sweep", type=Path)
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for the runs")
    p.add_argument("--summary", action="store_true", help="print the table and stop")
    a = p.parse_args(argv)
    if a.summary:
        print(summary(a.out))
        return
    folder = make_data(data.data_dir(), a.out / "data")
    env = dict(os.environ)
    if a.threads:
        env["OMP_NUM_THREADS"] = str(a.threads)
    for name in a.configs:
        run = a.out / name
        if (run / "metrics.json").is_file():
            print(f"{name}: done, skipped", flush=True)
            continue
        cmd = [sys.executable, "-m", "minbert.train", *BASE, *CONFIGS[name], "--data", str(folder),
               "--out", str(run), "--no-progress"]
        if (run / "checkpoint.pt").is_file():
            cmd.append("--resume")
        print(f"{name}: {' '.join(cmd)}", flush=True)
        t0 = time.time()
        subprocess.run(cmd, env=env, check=True)
        print(f"{name}: {time.time() - t0:.0f} s", flush=True)
    print(summary(a.out))


if __name__ == "__main__":
    main()

"""Every row of the seed report's results table, one command (notebook 08_results).

    python -m minbert.experiments show --preset cpu            # rows x settings, side by side
    python -m minbert.experiments run --all --seeds 3 --preset cpu --results results/ \\
        --runs runs/experiments
    python -m minbert.experiments run --rows 0 2 9 --preset cpu-demo --results results/
    python -m minbert.experiments table --results results/

`run` trains each row x seed (and its MLM pre-step), skips those whose result JSON exists,
resumes interrupted ones from their checkpoint (`train.run(resume=True)`), and writes one
JSON per run, atomically, to RESULTS/<preset>/rowNN-<name>-seedS.json: the row, its
description and resolved config, seed, git commit, package versions, device, wall time,
per-epoch history (train and dev metrics, gradient-conflict statistics where the mode
logs them), final dev metrics, and every dev prediction with both sentences, the gold
label and the model's confidence (for error analysis). Checkpoints stay in RUNS (gitignored).

ROWS holds the seed's settings (bert-base-uncased, CS224N defaults: batch 8, dropout 0.3,
10 epochs, lr 1e-3 frozen / 1e-5 fine-tuned). A PRESET scales them to a machine:
  gpu       the seed's exact settings: bert-base-uncased, all the data, its epochs and
            batch sizes, max_length 128, CUDA; MLM presets v1/v2 as in minbert.mlm.
  cpu       the table to commit, on 2 CPU cores with the bundled minilm-l6 (6 layers,
            hidden 384): every row's 10 epochs -> 4; 800 train examples per task
            (minbert.data.subset: the same 800 every epoch, reshuffled), 300 dev examples
            per task, max_length 64; batch sizes, dropouts and learning rates are the
            seed's. MLM pre-steps: 400 CFIMDB reviews at max_length 128, 3 epochs (v1:
            300 steps of batch 4; v2: 10 steps of 4 x 32), head warm-up 20 steps.
            Cost model (COST, from short micro-benchmarks of train_epoch on the shared 2-core
            machine of this session at load average 2-4, torch 2 threads, max_length 64):
            one round of 3 batch-8 fine-tuning steps 1.6 s, of 3 batch-64 steps 11.8 s,
            frozen 0.17 s, a PCGrad round 2.4 s, a separate-pairs (cosine) round 5.0 s;
            scoring 0.016 s per dev example; an MLM batch-4 step at length 128 1.06 s.
            `plan --preset cpu` turns that into about 2 h 6 min for one seed of all 14 rows
            (budget: 2 h 15 min). On the idle machine the whole seed took 27 min (the
            committed results/cpu; each JSON has its wall time), ~4x slower when other jobs
            loaded it: time the first row and shrink n_train if needed.
  cpu-demo  rows 0, 2, 9 only, 1 seed, 160 train / 200 dev examples per task, 2 epochs,
            max_length 64: a one-minute smoke run of the table, not it.
  tiny      for tests: 16 / 16 examples, 1 epoch, 2 batches per task, max_length 32.
`--dry-run` caps any preset (8 examples, 1 epoch, 2 batches, 2 MLM steps, CPU unless
`--device` says otherwise) so that the gpu preset's configs can be exercised in CI on a
locally saved random BERT (`--model FOLDER`); with `--device cuda` the same dry run of all
14 rows ran on an H200 (bert-base-shaped random weights).

Row 0 (zero-shot) trains nothing: STS = Pearson r of 5 * clamp(cos(u, v), 0, 1) of the
mean-pooled sentence embeddings; Quora = cos(u, v) > t with t chosen to maximise
accuracy on the train split, accuracy on dev; SST has no zero-shot reading from a
sentence encoder: its number is the majority-class baseline (the train split's most
frequent label), not a model.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from . import train as T

# ------------------------------------------------------------------------- the rows
# name, description, TrainConfig overrides (the seed's values), MLM pre-step (v1 / v2)
SEED = dict(batch_size=8, dropout=0.3, epochs=10)
ROWS = {
    0: ("zero-shot", "no training: cosine of mean-pooled embeddings (STS r, Quora threshold "
        "from train); SST = majority-class baseline", None, None),
    1: ("multitask-pretrain", "frozen BERT, the three heads trained round-robin (lr 1e-3)",
        dict(SEED, mode="multitask", option="pretrain", lr=1e-3), None),
    2: ("multitask-finetune", "round-robin multitask fine-tuning (lr 1e-5): the baseline",
        dict(SEED, mode="multitask", option="finetune", lr=1e-5), None),
    3: ("sst-pretrain", "single-task SST, frozen BERT", dict(SEED, mode="single", tasks=("sst",),
        option="pretrain", lr=1e-3), None),
    4: ("sst-finetune", "single-task SST, fine-tuned", dict(SEED, mode="single", tasks=("sst",),
        option="finetune", lr=1e-5), None),
    5: ("quora-pretrain", "single-task Quora, frozen BERT", dict(SEED, mode="single",
        tasks=("quora",), option="pretrain", lr=1e-3), None),
    6: ("quora-finetune", "single-task Quora, fine-tuned", dict(SEED, mode="single",
        tasks=("quora",), option="finetune", lr=1e-5), None),
    7: ("sts-pretrain", "single-task STS, frozen BERT", dict(SEED, mode="single", tasks=("sts",),
        option="pretrain", lr=1e-3), None),
    8: ("sts-finetune", "single-task STS, fine-tuned", dict(SEED, mode="single", tasks=("sts",),
        option="finetune", lr=1e-5), None),
    # pcgrad_reduction="mean": the seed used Tseng's PCGrad, which averages (minbert.pcgrad)
    9: ("pcgrad", "multitask fine-tuning with PCGrad (one step per round, mean reduction)",
        dict(SEED, mode="pcgrad", option="finetune", lr=1e-5, pcgrad_reduction="mean"), None),
    # pair_mode applies to both pair tasks: Quora then reads [u, v, |u-v|, u*v] too
    10: ("cosine", "multitask fine-tuning, STS trained as cos(u, v) vs score/5 (Sentence-BERT "
         "CosineSimilarityLoss), pairs encoded separately", dict(SEED, mode="multitask",
         option="finetune", lr=1e-5, sts_loss="cosine_mse", pair_mode="separate"), None),
    11: ("mlm-v1", "extra MLM pre-training on CFIMDB (v1: batch 4, 3 epochs), then row 2",
         dict(SEED, mode="multitask", option="finetune", lr=1e-5), "v1"),
    12: ("adjusted", "row 2 with adjusted hyper-parameters: batch 64, dropout 0.5",
         dict(SEED, mode="multitask", option="finetune", lr=1e-5, batch_size=64, dropout=0.5),
         None),
    13: ("adjusted-mlm-v2", "row 12 after MLM v2 (batch 4 x 32 accumulation, 3 epochs)",
         dict(SEED, mode="multitask", option="finetune", lr=1e-5, batch_size=64, dropout=0.5),
         "v2"),
}

# The seed report's published dev numbers (SST acc, Quora acc, STS Pearson r), bert-base-uncased.
# TODO: fill from the seed report itself; None = not known here (never guessed).
# The cosine row's STS r 0.142 is the figure quoted in minbert/losses.py and notebook 07.
SEED_REPORT = {row: {"sst": None, "quora": None, "sts": None} for row in ROWS}
SEED_REPORT[10]["sts"] = 0.142

# ---------------------------------------------------------------------- the presets
# train: TrainConfig fields for every row; epochs/mlm: None = the row's / MLM_PRESETS' own.
PRESETS = {
    "gpu": dict(train=dict(model="bert-base-uncased", device="cuda", max_length=128,
                           n_train=None, n_dev=None, eval_batch_size=128),
                epochs=None, mlm=dict(max_length=128)),
    "cpu": dict(train=dict(model="minilm-l6", device="cpu", max_length=64, n_train=800,
                           n_dev=300, eval_batch_size=64),
                epochs=4, mlm=dict(max_length=128, n_texts=400, n_eval=100,
                                   head_warmup_steps=20)),
    "cpu-demo": dict(train=dict(model="minilm-l6", device="cpu", max_length=64, n_train=160,
                                n_dev=200, eval_batch_size=64),
                     epochs=2, mlm=dict(max_length=64, n_texts=64, n_eval=32,
                                        head_warmup_steps=5)),
    "tiny": dict(train=dict(model="minilm-l6", device="cpu", max_length=32, n_train=16, n_dev=16,
                            eval_batch_size=32, max_batches_per_task=2),
                 epochs=1, mlm=dict(max_length=32, n_texts=8, n_eval=4, head_warmup_steps=1,
                                    max_steps=2, epochs=1)),
}
DRY_RUN = dict(train=dict(n_train=8, n_dev=8, max_length=32, max_batches_per_task=2,
                          device="cpu", eval_batch_size=8),
               epochs=1, mlm=dict(n_texts=8, n_eval=4, max_length=32, head_warmup_steps=1,
                                  max_steps=2, epochs=1, eval_batch_size=4))
# Cost model behind the cpu estimate (seconds, measured here; see the docstring).
# round = one batch of every task (3 optimizer steps; PCGrad: 3 backwards, 1 step).
COST = {"round_finetune_8": 1.6, "round_finetune_64": 11.8, "round_frozen_8": 0.17,
        "round_pcgrad_8": 2.4, "round_separate_8": 5.0, "eval_example": 0.016,
        "mlm_step_4": 1.06}


def preset_settings(preset: str, dry_run=False, model=None, data=None, device=None) -> dict:
    p = PRESETS[preset]
    s = dict(train=dict(p["train"]), epochs=p["epochs"], mlm=dict(p["mlm"]))
    if dry_run:
        s["train"].update(DRY_RUN["train"])
        s["epochs"] = DRY_RUN["epochs"]
        s["mlm"].update(DRY_RUN["mlm"])
    for k, v in (("model", model), ("data", data), ("device", device)):
        if v is not None:
            s["train"][k] = v
    return s


def row_config(row: int, seed: int, settings: dict, init_from=None) -> T.TrainConfig:
    """The row's TrainConfig under a preset (settings from preset_settings)."""
    overrides = dict(ROWS[row][2])
    overrides.update(settings["train"])
    if settings["epochs"] is not None:
        overrides["epochs"] = settings["epochs"]
    return T.TrainConfig(**overrides, seed=seed, init_from=init_from).resolved()


def mlm_settings(version: str, settings: dict, seed: int) -> dict:
    from .mlm import MLM_PRESETS
    kw = dict(MLM_PRESETS[version])
    kw.update(settings["mlm"])
    return dict(kw, seed=seed)


def estimate_seconds(preset: str, rows=None) -> dict:
    """Rough seconds per row for one seed: rounds x COST per round (scaled by batch size
    and task count) + dev scoring every epoch and once more for the predictions + MLM."""
    s, out = preset_settings(preset), {}
    for row in rows or ROWS:
        if ROWS[row][2] is None:  # zero-shot: embed Quora train and every dev set
            c = s["train"]
            out[row] = COST["eval_example"] * ((c["n_train"] or 16000) + 3 * (c["n_dev"] or 1500))
            continue
        c = row_config(row, 0, s)
        rounds = -(-(c.n_train or 8000) // c.batch_size) * c.epochs
        if c.max_batches_per_task:
            rounds = min(rounds, c.max_batches_per_task * c.epochs)
        key = ("round_frozen_8" if c.option == "pretrain" else "round_pcgrad_8"
               if c.mode == "pcgrad" else "round_separate_8" if c.pair_mode == "separate"
               else "round_finetune_8")
        per_round = COST[key] * c.batch_size / 8 if c.batch_size < 64 else COST["round_finetune_64"]
        sec = rounds * per_round * len(c.tasks) / 3
        sec += COST["eval_example"] * len(c.tasks) * (c.n_dev or 1500) * (c.epochs + 1)
        if ROWS[row][3]:
            m = mlm_settings(ROWS[row][3], s, 0)
            micro = -(-(m.get("n_texts") or 1707) // m["batch_size"]) * m["epochs"]
            sec += (micro + m["head_warmup_steps"] / 2) * COST["mlm_step_4"] * m["max_length"] / 128
        out[row] = sec
    return out


# ------------------------------------------------------------------------- provenance
def _git(*args):
    try:
        r = subprocess.run(["git", *args], capture_output=True, text=True,
                           cwd=Path(__file__).resolve().parent, timeout=10)
        return r.stdout.strip() if r.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def git_commit():
    """`git rev-parse HEAD`, or None outside a git checkout."""
    return _git("rev-parse", "HEAD") or None


def git_dirty():
    """True when the package's tracked or untracked files differ from HEAD (None: no git)."""
    out = _git("status", "--porcelain", "--", ".")  # cwd is the package folder
    return None if out is None else bool(out)


def versions() -> dict:
    import transformers
    from . import __version__
    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "minbert": __version__,
            "numpy": np.__version__}


def device_info(device="cpu") -> dict:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info = {"platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "cores_available": cores,
            "torch_threads": torch.get_num_threads(), "device": device}
    if hasattr(os, "getloadavg"):
        info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    if str(device).startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


# ------------------------------------------------------------------------ predictions
def _record(task, ex, gold, pred, conf):
    return {"id": ex.id, "sentence1": ex.text, "sentence2": ex.text2, "gold": gold,
            "pred": pred, "confidence": conf}


@torch.no_grad()
def dev_predictions(model, tokenizer, config) -> dict:
    """Every dev prediction with its sentences; confidence = the softmax / sigmoid probability
    of the predicted label (SST, Quora), None for STS (a regression: sort by |pred - gold|)."""
    _, dev = T.load_examples(config)
    model.eval()
    out = {}
    for task, examples in dev.items():
        by_id = {e.id: e for e in examples}
        rows = []
        for batch in T.make_loader(examples, tokenizer, config, train=False):
            raw = model(task, T.to_device(batch, config.device)).float().cpu()
            for i, ex_id in enumerate(batch["ids"]):
                ex = by_id[ex_id]
                if task == "sst":
                    p = torch.softmax(raw[i], -1)
                    rows.append(_record(task, ex, int(ex.label), int(p.argmax()),
                                        round(float(p.max()), 4)))
                elif task == "quora":
                    p = float(torch.sigmoid(raw[i]))
                    rows.append(_record(task, ex, int(ex.label), int(p > 0.5),
                                        round(max(p, 1 - p), 4)))
                else:
                    rows.append(_record(task, ex, float(ex.label), round(float(raw[i]), 4), None))
        out[task] = rows
    return out


# --------------------------------------------------------------------------- row 0
@torch.no_grad()
def zero_shot(config: T.TrainConfig) -> tuple[dict, dict]:
    """-> (dev metrics, dev predictions) of row 0 (see the module docstring). Confidence:
    SST the majority label's train frequency; Quora |cos - threshold| (a margin, not a
    probability); STS None."""
    from .heads import MultitaskBERT
    from .losses import STS_MAX
    from .pretrained import load_pretrained
    import torch.nn.functional as F
    c = dataclasses.replace(config, pair_mode="separate", tasks=("sst", "quora", "sts"))
    bert, tok = load_pretrained(c.init_from or c.model)
    model = MultitaskBERT(bert, mode="pretrain", pair_mode="separate").to(c.device).eval()
    train, dev = T.load_examples(c)

    def cosines(examples):
        cos = []
        for b in T.make_loader(examples, tok, c, train=False):
            u, v = model.pair_embeddings(T.to_device(b, c.device))
            cos.extend(F.cosine_similarity(u, v, dim=-1).cpu().tolist())
        return np.array(cos)  # loader keeps file order (no shuffle)

    labels = [e.label for e in train["sst"]]
    major = max(set(labels), key=labels.count)
    freq = labels.count(major) / len(labels)
    preds = {"sst": [_record("sst", e, int(e.label), int(major), round(freq, 4))
                     for e in dev["sst"]]}
    ct, yt = cosines(train["quora"]), np.array([e.label for e in train["quora"]])
    cand = np.concatenate([[-1.0], np.sort(ct)])  # predict 1 when cos > t
    acc = [((ct > t) == yt).mean() for t in cand]
    thr = float(cand[int(np.argmax(acc))])
    cd = cosines(dev["quora"])
    preds["quora"] = [_record("quora", e, int(e.label), int(x > thr), round(abs(x - thr), 4))
                      for e, x in zip(dev["quora"], cd)]
    cs = cosines(dev["sts"])
    sim = STS_MAX * torch.tensor(cs).clamp(0, 1)  # losses.predict_similarity_from_cosine's map
    preds["sts"] = [_record("sts", e, float(e.label), round(float(s), 4), None)
                    for e, s in zip(dev["sts"], sim.tolist())]
    dev_metrics = {t: {T.METRIC[t]: T.metric(t, [r["pred"] for r in rs], [r["gold"] for r in rs])}
                   for t, rs in preds.items()}
    dev_metrics["quora"]["threshold"] = thr
    dev_metrics["sst"]["note"] = "majority-class baseline (no model)"
    return dev_metrics, preds


# ----------------------------------------------------------------------------- running
def result_path(results, preset, row, seed, dry_run=False) -> Path:
    folder = Path(results) / (preset + ("-dry" if dry_run else ""))
    return folder / f"row{row:02d}-{ROWS[row][0]}-seed{seed}.json"


def run_mlm(version, settings, seed, runs: Path, model) -> tuple[str, dict]:
    """The MLM pre-step of rows 11 / 13 (one per seed); skipped when its encoder exists.
    pretrain_mlm cannot resume: an interrupted one starts again."""
    from .mlm import pretrain_mlm
    out = runs / f"mlm-{version}-seed{seed}"
    kw = mlm_settings(version, settings, seed)
    if (out / "metrics.json").is_file() and (out / "encoder" / "config.json").is_file():
        metrics = json.loads((out / "metrics.json").read_text())
    else:
        metrics = pretrain_mlm(model, out, data_root=settings["train"].get("data"),
                               progress=False, **kw)
    return str(out / "encoder"), {"version": version, "settings": kw, "metrics": metrics}


def run_one(row, seed, preset, results, runs, *, dry_run=False, model=None, data=None,
            device=None, progress=True) -> Path | None:
    """Train (or score) one row x seed; write its result JSON. None when already complete."""
    path = result_path(results, preset, row, seed, dry_run)
    if path.is_file():
        return None
    name, description, _, mlm_version = ROWS[row]
    s = preset_settings(preset, dry_run, model, data, device)
    runs = Path(runs) / (preset + ("-dry" if dry_run else ""))
    t0, started = time.perf_counter(), datetime.datetime.now(datetime.timezone.utc)
    info = device_info(s["train"]["device"])
    mlm, history, resumed = None, [], False
    if ROWS[row][2] is None:  # zero-shot
        config = T.TrainConfig(**{k: v for k, v in s["train"].items()
                                  if k != "max_batches_per_task"}, mode="multitask", seed=seed,
                               epochs=0).resolved()
        dev, preds = zero_shot(config)
    else:
        init_from = None
        if mlm_version:
            init_from, mlm = run_mlm(mlm_version, s, seed, runs, s["train"]["model"])
        config = row_config(row, seed, s, init_from)
        out = runs / path.stem
        resumed = (out / "checkpoint.pt").is_file()
        metrics = T.run(config, out, resume=resumed, progress=progress)
        history = json.loads((out / "history.json").read_text())
        dev = metrics["dev"]
        m, tok, _ = T.load_run(out, config.device)
        preds = dev_predictions(m, tok, config)
    result = {
        "schema": 1, "row": row, "name": name, "description": description, "preset": preset,
        "dry_run": dry_run, "seed": seed,
        "config": json.loads(json.dumps(dataclasses.asdict(config))),
        "mlm": mlm, "command": " ".join(["python -m minbert.experiments"] + sys.argv[1:])
        if Path(sys.argv[0]).stem in ("experiments", "__main__") else None,
        "git_commit": git_commit(), "git_dirty": git_dirty(), "versions": versions(),
        "device": info,
        "started_at": started.isoformat(timespec="seconds"),
        "wall_time_s": round(time.perf_counter() - t0, 1), "resumed": resumed,
        "train_time_s": round(sum(e.get("wall_time_s", 0) for e in history), 1),
        "history": history, "dev": dev,
        "conflict": [{"epoch": e["epoch"], **e["conflict"]} for e in history if "conflict" in e]
        or None,
        "predictions": preds,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    T.write_json(path, result)
    return path


def run_rows(rows, seeds, preset, results, runs, **kw) -> list:
    done = []
    for seed in range(seeds) if isinstance(seeds, int) else seeds:
        for row in rows:
            t0 = time.perf_counter()
            p = run_one(row, seed, preset, results, runs, **kw)
            print(f"row {row:2d} {ROWS[row][0]:<20} seed {seed}: "
                  + (f"{p} ({time.perf_counter() - t0:.0f} s)" if p else "complete, skipped"),
                  flush=True)
            done.append(p)
    return done


# ------------------------------------------------------------- reading (notebook 08)
TASK_COLS = ("sst", "quora", "sts")


def load_results(folder) -> "pd.DataFrame":
    """One row per result JSON under `folder` (recursively), sorted by preset, row, seed."""
    import pandas as pd
    recs = []
    for f in sorted(Path(folder).rglob("row*-seed*.json")):
        r = json.loads(f.read_text())
        rec = {k: r.get(k) for k in ("preset", "dry_run", "row", "name", "description", "seed",
                                     "wall_time_s", "git_commit", "history", "conflict",
                                     "predictions", "config", "device", "mlm")}
        for t in TASK_COLS:
            rec[t] = r["dev"].get(t, {}).get(T.METRIC[t], np.nan)
        rec["file"] = str(f)
        recs.append(rec)
    cols = ["preset", "row", "name", "seed", *TASK_COLS]
    if not recs:
        return pd.DataFrame(columns=cols)
    return pd.DataFrame(recs).sort_values(["preset", "row", "seed"]).reset_index(drop=True)


def overall(sst, quora, sts):
    """CS224N's overall score: the mean of SST acc, Quora acc and (STS r + 1) / 2."""
    return (sst + quora + (sts + 1) / 2) / 3


def summary_table(df) -> "pd.DataFrame":
    """Per preset x row: mean and std over seeds of SST acc, Quora acc, STS r, their simple
    mean and the CS224N overall score; the seed report's numbers and ours minus theirs."""
    import pandas as pd
    d = df.copy()
    d["mean3"] = d[list(TASK_COLS)].mean(axis=1, skipna=False)
    d["overall"] = overall(d["sst"], d["quora"], d["sts"])
    metrics = [*TASK_COLS, "mean3", "overall"]
    g = d.groupby(["preset", "row", "name"], sort=True)
    out = g[metrics].mean()
    std = g[metrics].std(ddof=1).fillna(0.0)  # one seed: std 0
    for m in metrics:
        out[m + "_std"] = std[m]
    out["seeds"] = g.size()
    out = out.reset_index()
    for t in TASK_COLS:
        out["seed_" + t] = [SEED_REPORT.get(r, {}).get(t) for r in out["row"]]
        out["seed_" + t] = pd.to_numeric(out["seed_" + t])
        out["diff_" + t] = out[t] - out["seed_" + t]
    out["seed_overall"] = overall(out["seed_sst"], out["seed_quora"], out["seed_sts"])
    out["diff_overall"] = out["overall"] - out["seed_overall"]
    return out


def format_table(summary, digits=3) -> "pd.DataFrame":
    """The seed's layout: one line per row, 'mean ± std' per metric, seed and difference."""
    import pandas as pd

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
        for m in ("sst", "quora", "sts", "overall"):
            seed = r["seed_" + m]
            line[f"seed {m}"] = "-" if pd.isna(seed) else f"{seed:.{digits}f}"
            line[f"Δ {m}"] = num(r["diff_" + m])
        rows.append(line)
    return pd.DataFrame(rows)


def plot_curves(df, path=None):
    """Figure-1 style: per run, train (dashed) and dev (solid) metric per task over
    epochs, the train-dev gap shaded. Runs without history (zero-shot) are left out."""
    import matplotlib
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    runs = df[[bool(h) for h in df["history"]]] if len(df) else df
    n = max(len(runs), 1)
    cols = min(n, 3)
    fig, axes = plt.subplots(-(-n // cols), cols, figsize=(4.2 * cols, 3.2 * -(-n // cols)),
                             squeeze=False)
    colors = dict(zip(TASK_COLS, matplotlib.colormaps["tab10"].colors))
    for ax, (_, r) in zip(axes.flat, runs.iterrows()):
        ep = [h["epoch"] for h in r["history"]]
        for t in TASK_COLS:
            if t not in r["history"][0]["dev"]:
                continue
            m = T.METRIC[t]
            tr = [h["train"][t][m] for h in r["history"]]
            dv = [h["dev"][t][m] for h in r["history"]]
            ax.plot(ep, tr, "--o", color=colors[t], ms=3, label=f"{t} train")
            ax.plot(ep, dv, "-o", color=colors[t], ms=3, label=f"{t} dev")
            ax.fill_between(ep, tr, dv, color=colors[t], alpha=0.15)
        ax.set_title(f"{r['preset']} row {r['row']} {r['name']} s{r['seed']}", fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("acc / r")
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(runs):]:
        ax.axis("off")
    fig.tight_layout()
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    return fig


def plot_conflicts(df, path=None):
    """Per task pair, the fraction of rounds whose encoder gradients conflict (g_i . g_j < 0),
    per epoch, for every run that logged it (multitask / pcgrad fine-tuning)."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    runs = df[[bool(c) for c in df["conflict"]]] if len(df) else df
    n = max(len(runs), 1)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.2), squeeze=False)
    for ax, (_, r) in zip(axes.flat, runs.iterrows()):
        ep = [c["epoch"] for c in r["conflict"]]
        pairs = [k for k in r["conflict"][0] if k != "epoch"]
        for p in pairs:
            ax.plot(ep, [c[p]["conflict_rate"] for c in r["conflict"]], "-o", label=p)
        ax.set_ylim(0, 1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"{r['preset']} row {r['row']} {r['name']} s{r['seed']}", fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("conflict rate")
        ax.legend(fontsize=7)
    if not len(runs):
        axes[0, 0].text(0.5, 0.5, "no run logged conflicts", ha="center")
    fig.tight_layout()
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    return fig


def error_analysis(df, k=5) -> "pd.DataFrame":
    """Per run and task, the k most confident wrong predictions (SST, Quora) or the k
    largest |pred - gold| (STS), with both sentences."""
    import pandas as pd
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


# ------------------------------------------------------------------------ command line
def show(preset) -> str:
    s = preset_settings(preset)
    lines = [f"preset {preset}: " + ", ".join(f"{k}={v}" for k, v in s["train"].items())
             + f", epochs={s['epochs'] or 'row'}; MLM {s['mlm']}",
             f"{'row':>3}  {'name':<19} {'mode':<9} {'option':<8} {'batch':>5} {'drop':>4} "
             f"{'lr':>6} {'ep':>3} {'extra':<28} description"]
    for row, (name, desc, over, mlm) in ROWS.items():
        if over is None:
            lines.append(f"{row:>3}  {name:<19} {'-':<9} {'-':<8} {'-':>5} {'-':>4} {'-':>6} "
                         f"{'-':>3} {'-':<28} {desc}")
            continue
        c = row_config(row, 0, s)
        extra = [f"tasks={'+'.join(c.tasks)}"] if c.mode == "single" else []
        extra += [f"{f}={getattr(c, f)}" for f in ("sts_loss", "pair_mode", "pcgrad_reduction")
                  if over.get(f)] + ([f"MLM {mlm}"] if mlm else [])
        lines.append(f"{row:>3}  {name:<19} {c.mode:<9} {c.option:<8} {c.batch_size:>5} "
                     f"{c.dropout:>4} {c.lr:>6.0e} {c.epochs:>3} {' '.join(extra):<28} {desc}")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m minbert.experiments",
                                description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train the rows (skips complete ones, resumes the rest)")
    g = r.add_mutually_exclusive_group(required=True)
    g.add_argument("--all", action="store_true")
    g.add_argument("--rows", nargs="+", type=int, choices=sorted(ROWS))
    r.add_argument("--seeds", type=int, default=1, help="seeds 0 .. N-1")
    r.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    r.add_argument("--results", default="results")
    r.add_argument("--runs", default="runs/experiments")
    r.add_argument("--model", default=None, help="override the preset's model (name or folder)")
    r.add_argument("--data", default=None, help="data folder (default: $MINBERT_DATA)")
    r.add_argument("--device", default=None)
    r.add_argument("--dry-run", action="store_true",
                   help="cap examples/steps and run on CPU (results go to <preset>-dry/)")
    r.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    r.add_argument("--no-progress", action="store_true")
    t = sub.add_parser("table", help="print the results table")
    t.add_argument("--results", default="results")
    for name in ("show", "plan"):
        s = sub.add_parser(name, help="rows x settings" if name == "show" else
                           "estimated seconds per row (one seed)")
        s.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    a = p.parse_args(argv)
    if a.cmd == "run":
        if a.threads:
            torch.set_num_threads(a.threads)
        run_rows(sorted(ROWS) if a.all else a.rows, a.seeds, a.preset, a.results, a.runs,
                 dry_run=a.dry_run, model=a.model, data=a.data, device=a.device,
                 progress=not a.no_progress)
    elif a.cmd == "table":
        import pandas as pd
        df = load_results(a.results)
        with pd.option_context("display.width", 250, "display.max_columns", 30):
            print(format_table(summary_table(df)).to_string(index=False) if len(df)
                  else f"no results under {a.results}")
    elif a.cmd == "show":
        print(show(a.preset))
    else:
        est = estimate_seconds(a.preset)
        for row, sec in est.items():
            print(f"row {row:2d} {ROWS[row][0]:<20} ~{sec / 60:6.1f} min")
        print(f"total ~{sum(est.values()) / 60:.0f} min per seed (COST: {COST})")


if __name__ == "__main__":
    main()

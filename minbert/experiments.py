"""Every row of the seed report's results table, one command (notebook 08_results).

    python -m minbert.experiments show --preset cpu            # rows x settings, side by side
    python -m minbert.experiments run --all --seeds 3 --preset cpu --results results/ \\
        --runs runs/experiments
    python -m minbert.experiments run --rows 0 2 9 --preset cpu-demo --results results/
    python -m minbert.experiments table --results results/
    python -m minbert.plan --preset cpu                        # estimated minutes per row

`run` trains each row x seed (and its MLM pre-step), skips those whose result JSON exists,
resumes interrupted ones from their checkpoint (`train.run(resume=True)`), and writes one
JSON per run, atomically, to RESULTS/<preset>/rowNN-<name>-seedS.json: the row, its
description and resolved config, seed, git commit, package versions, device, wall time,
per-epoch history (train and dev metrics, gradient-conflict statistics where the mode
logs them), final dev metrics, and every dev prediction with both sentences, the gold
label and the model's confidence (for error analysis). Checkpoints stay in RUNS (gitignored).

ROWS holds the seed's settings (bert-base-uncased, CS224N defaults: batch 8, dropout 0.3,
10 epochs, lr 1e-3 frozen / 1e-5 fine-tuned); the row names are the seed's ("pretrain" =
frozen encoder, `encoder="frozen"`). A PRESET scales them to a machine:
  gpu       the seed's exact settings: bert-base-uncased, all the data, its epochs and
            batch sizes, max_length 128, CUDA; MLM presets v1/v2 as in minbert.mlm.
  cpu       the table to commit, on 2 CPU cores with the bundled minilm-l6 (6 layers,
            hidden 384): every row's 10 epochs -> 4; 800 train examples per task
            (minbert.data.subset: the same 800 every epoch, reshuffled), 300 dev examples
            per task, max_length 64; batch sizes, dropouts and learning rates are the
            seed's. MLM pre-steps: 400 CFIMDB reviews at max_length 128, 3 epochs (v1:
            300 steps of batch 4; v2: 10 steps of 4 x 32), head warm-up 20 steps.
            `python -m minbert.plan` estimates the time per row (results/README.md
            has the measured ones).
  cpu-demo  rows 0, 2, 9 only, 1 seed, 160 train / 200 dev examples per task, 2 epochs,
            max_length 64: a one-minute smoke run of the table, not it.
  tiny      for tests: 16 / 16 examples, 1 epoch, 2 batches per task, max_length 32.
`--dry-run` caps any preset (8 examples, 1 epoch, 2 batches, 2 MLM steps, CPU unless
`--device` says otherwise) so that the gpu preset's configs can be exercised in CI on a
locally saved random BERT (`--model FOLDER`).

Row 0 (zero-shot, minbert.zero_shot) trains nothing.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from . import train as T
from .files import write_json
from .mlm import MLM_PRESETS, MLMConfig, pretrain_mlm
from .predictions import records
from .provenance import device_info, git_commit, git_dirty, versions
from .results import format_table, load_results, summary_table
from .zero_shot import zero_shot

# ------------------------------------------------------------------------- the rows
@dataclass(frozen=True)
class Row:
    name: str                  # the file name part and the table label (the seed's names)
    description: str
    train: dict | None         # TrainConfig fields of the seed's run; None: nothing is trained
    mlm: str | None = None     # MLM pre-step before training: "v1" / "v2" (minbert.mlm presets)


SEED = dict(batch_size=8, dropout=0.3, epochs=10)  # the seed's (CS224N default) settings
BASELINE = dict(SEED, mode="multitask", encoder="finetune", lr=1e-5)  # row 2
ADJUSTED = dict(BASELINE, batch_size=64, dropout=0.5)                # row 12
ROWS = {
    0: Row("zero-shot", "no training: cosine of mean-pooled embeddings (STS r, Quora threshold "
           "from train); SST = majority-class baseline", None),
    1: Row("multitask-pretrain", "frozen BERT, the three heads trained round-robin (lr 1e-3)",
           dict(SEED, mode="multitask", encoder="frozen", lr=1e-3)),
    2: Row("multitask-finetune", "round-robin multitask fine-tuning (lr 1e-5): the baseline",
           BASELINE),
    # pcgrad_reduction="mean": the seed used Tseng's PCGrad, which averages (minbert.pcgrad)
    9: Row("pcgrad", "multitask fine-tuning with PCGrad (one step per round, mean reduction)",
           dict(BASELINE, mode="pcgrad", pcgrad_reduction="mean")),
    # pair_mode applies to both pair tasks: Quora then reads [u, v, |u-v|, u*v] too
    10: Row("cosine", "multitask fine-tuning, STS trained as cos(u, v) vs score/5 (Sentence-BERT "
            "CosineSimilarityLoss), pairs encoded separately",
            dict(BASELINE, sts_loss="cosine_mse", pair_mode="separate")),
    11: Row("mlm-v1", "extra MLM pre-training on CFIMDB (v1: batch 4, 3 epochs), then row 2",
            BASELINE, "v1"),
    12: Row("adjusted", "row 2 with adjusted hyper-parameters: batch 64, dropout 0.5",
            ADJUSTED),
    13: Row("adjusted-mlm-v2", "row 12 after MLM v2 (batch 4 x 32 accumulation, 3 epochs)",
            ADJUSTED, "v2"),
}
# rows 3-8: single task, frozen ("pretrain", the seed's name) then fine-tuned, per task
for i, (task, label) in enumerate((("sst", "SST"), ("quora", "Quora"), ("sts", "STS"))):
    for j, (name, encoder, words) in enumerate((("pretrain", "frozen", "frozen BERT"),
                                                ("finetune", "finetune", "fine-tuned"))):
        ROWS[3 + 2 * i + j] = Row(f"{task}-{name}", f"single-task {label}, {words}",
                                  dict(SEED, mode="single", tasks=(task,), encoder=encoder,
                                       lr=T.DEFAULT_LR[encoder]))
ROWS = dict(sorted(ROWS.items()))

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
    overrides = dict(ROWS[row].train)
    overrides.update(settings["train"])
    if settings["epochs"] is not None:
        overrides["epochs"] = settings["epochs"]
    return T.TrainConfig(**overrides, seed=seed, init_from=init_from).resolved()


def mlm_settings(version: str, settings: dict, seed: int) -> dict:
    kw = dict(MLM_PRESETS[version])
    kw.update(settings["mlm"])
    return dict(kw, seed=seed)


# ----------------------------------------------------------------------------- running
def result_path(results, preset, row, seed, dry_run=False) -> Path:
    folder = Path(results) / (preset + ("-dry" if dry_run else ""))
    return folder / f"row{row:02d}-{ROWS[row].name}-seed{seed}.json"


def run_mlm(version, settings, seed, runs: Path, model) -> tuple[str, dict]:
    """The MLM pre-step of rows 11 / 13 (one per seed); skipped when its encoder exists.
    pretrain_mlm cannot resume: an interrupted one starts again."""
    out = runs / f"mlm-{version}-seed{seed}"
    kw = mlm_settings(version, settings, seed)
    if (out / "metrics.json").is_file() and (out / "encoder" / "config.json").is_file():
        metrics = json.loads((out / "metrics.json").read_text())
    else:
        config = MLMConfig(**kw, model=model, data=settings["train"].get("data"))
        metrics = pretrain_mlm(config, out, progress=False)
    return str(out / "encoder"), {"version": version, "settings": kw, "metrics": metrics}


def train_row(row, seed, s, runs: Path, out: Path, progress=True) -> dict:
    """Train one row x seed into `out` (resuming a checkpoint there) and predict the dev
    sets with the final weights: the parts of the result JSON that come from training."""
    mlm, init_from = None, None
    if ROWS[row].mlm:
        init_from, mlm = run_mlm(ROWS[row].mlm, s, seed, runs, s["train"]["model"])
    config = row_config(row, seed, s, init_from)
    resumed, preds = (out / "checkpoint.pt").is_file(), {}

    def predict(model, loaders, dev):  # the final weights, before train.run lets them go
        preds.update({t: records(model, t, loaders[t], dev[t], config.device) for t in dev})
    metrics = T.run(config, out, resume=resumed, progress=progress, on_finish=predict)
    history = json.loads((out / "history.json").read_text())
    return dict(config=config, mlm=mlm, resumed=resumed, history=history,
                dev=metrics["dev"], predictions=preds)


def run_one(row, seed, preset, results, runs, *, dry_run=False, model=None, data=None,
            device=None, progress=True) -> Path | None:
    """Train (or score) one row x seed; write its result JSON. None when already complete."""
    path = result_path(results, preset, row, seed, dry_run)
    if path.is_file():
        return None
    s = preset_settings(preset, dry_run, model, data, device)
    runs = Path(runs) / (preset + ("-dry" if dry_run else ""))
    t0, started = time.perf_counter(), datetime.datetime.now(datetime.timezone.utc)
    info = device_info(s["train"]["device"])
    if ROWS[row].train is None:  # zero-shot
        config = T.TrainConfig(**{k: v for k, v in s["train"].items()
                                  if k != "max_batches_per_task"}, mode="multitask", seed=seed,
                               epochs=0).resolved()
        dev, preds = zero_shot(config)
        r = dict(config=config, mlm=None, resumed=False, history=[], dev=dev, predictions=preds)
    else:
        r = train_row(row, seed, s, runs, runs / path.stem, progress)
    history = r["history"]
    command = " ".join(["python -m minbert.experiments"] + sys.argv[1:]) \
        if Path(sys.argv[0]).stem in ("experiments", "__main__") else None
    write_json(path, {
        "schema": 1, "row": row, "name": ROWS[row].name, "description": ROWS[row].description,
        "preset": preset, "dry_run": dry_run, "seed": seed,
        "config": json.loads(json.dumps(dataclasses.asdict(r["config"]))),
        "mlm": r["mlm"], "command": command,
        "git_commit": git_commit(), "git_dirty": git_dirty(), "versions": versions(),
        "device": info, "started_at": started.isoformat(timespec="seconds"),
        "wall_time_s": round(time.perf_counter() - t0, 1), "resumed": r["resumed"],
        "train_time_s": round(sum(e.get("wall_time_s", 0) for e in history), 1),
        "history": history, "dev": r["dev"],
        "conflict": [{"epoch": e["epoch"], **e["conflict"]} for e in history if "conflict" in e]
        or None,
        "predictions": r["predictions"],
    })
    return path


def run_rows(rows, seeds, preset, results, runs, **kw) -> list:
    done = []
    for seed in range(seeds) if isinstance(seeds, int) else seeds:
        for row in rows:
            t0 = time.perf_counter()
            p = run_one(row, seed, preset, results, runs, **kw)
            print(f"row {row:2d} {ROWS[row].name:<20} seed {seed}: "
                  + (f"{p} ({time.perf_counter() - t0:.0f} s)" if p else "complete, skipped"),
                  flush=True)
            done.append(p)
    return done


# ------------------------------------------------------------------------ command line
def show(preset) -> str:
    s = preset_settings(preset)
    lines = [f"preset {preset}: " + ", ".join(f"{k}={v}" for k, v in s["train"].items())
             + f", epochs={s['epochs'] or 'row'}; MLM {s['mlm']}",
             f"{'row':>3}  {'name':<19} {'mode':<9} {'encoder':<8} {'batch':>5} {'drop':>4} "
             f"{'lr':>6} {'ep':>3} {'extra':<28} description"]
    for row, (name, desc, over, mlm) in ((k, dataclasses.astuple(r)) for k, r in ROWS.items()):
        if over is None:
            lines.append(f"{row:>3}  {name:<19} {'-':<9} {'-':<8} {'-':>5} {'-':>4} {'-':>6} "
                         f"{'-':>3} {'-':<28} {desc}")
            continue
        c = row_config(row, 0, s)
        extra = [f"tasks={'+'.join(c.tasks)}"] if c.mode == "single" else []
        extra += [f"{f}={getattr(c, f)}" for f in ("sts_loss", "pair_mode", "pcgrad_reduction")
                  if over.get(f)] + ([f"MLM {mlm}"] if mlm else [])
        lines.append(f"{row:>3}  {name:<19} {c.mode:<9} {c.encoder:<8} {c.batch_size:>5} "
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
    s = sub.add_parser("show", help="rows x settings")
    s.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    a = p.parse_args(argv)
    if a.cmd == "run":
        if a.threads:
            torch.set_num_threads(a.threads)
        run_rows(sorted(ROWS) if a.all else a.rows, a.seeds, a.preset, a.results, a.runs,
                 dry_run=a.dry_run, model=a.model, data=a.data, device=a.device,
                 progress=not a.no_progress)
    elif a.cmd == "table":
        df = load_results(a.results)
        with pd.option_context("display.width", 250, "display.max_columns", 30):
            print(format_table(summary_table(df)).to_string(index=False) if len(df)
                  else f"no results under {a.results}")
    else:
        print(show(a.preset))


if __name__ == "__main__":
    main()

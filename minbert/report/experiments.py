"""Every row of the seed report's results table, one command (notebook 08_results).

    python -m minbert.report.experiments show --preset cpu            # rows x settings, side by side
    python -m minbert.report.experiments run --all --seeds 3 --preset cpu   # [--first-seed K]: K .. 2
    python -m minbert.report.experiments run --rows 0 2 9 --preset cpu-demo --results results/
    python -m minbert.report.experiments table --results results/
    python -m minbert.report.plan --preset cpu                        # estimated minutes per row

`run` trains each row x seed (and its MLM pre-step), skips those whose result JSON exists,
resumes interrupted ones from their checkpoint (`train.run(resume=True)`), and writes one
JSON per run, atomically, to RESULTS/<preset>/rowNN-<name>-seedS.json: the row, its
description and resolved config, seed, git commit, package versions, device, wall time,
per-epoch history (train and dev metrics, gradient-conflict statistics where the mode
logs them), final dev metrics, and every dev prediction with both sentences, the gold
label and the model's confidence (for error analysis). Checkpoints stay in RUNS (gitignored).

A row is what it changes in its preset's baseline (row 2), exactly as the seed's row
differs from the seed's baseline ("pretrain" = frozen encoder, the seed's name). Presets:
  gpu       the seed's exact set-up: bert-base-uncased, its baseline (CS224N defaults:
            batch 8, dropout 0.3, 10 epochs, lr 1e-5, the pooler), all the data,
            max_length 128, CUDA; MLM presets v1/v2 as in minbert.mlm.
  cpu       the table to commit, on 2 CPU cores with the bundled minilm-l6 (6 layers,
            hidden 384). Its baseline is the course baseline (COURSE_BASELINE: lr 5e-5, heads
            at 1e-3, both decaying linearly to 0, mean pooling, pairs encoded separately, batch
            32, 2 epochs of every batch of every task ("spread"), max_length 64), tuned on
            held-out train (benchmarks/README.md): the seed's settings barely move a fresh head
            at this scale, as row 14 (the seed's settings on the same budget) shows. All
            training data; full dev sets; 2 dev points an epoch. MLM: 400 CFIMDB reviews.
  cpu-demo  160 train / 200 dev examples per task: a few-minute smoke run, not the table.
  tiny      for tests: 16 / 16 examples, 1 epoch, 2 batches per task, max_length 32.
`--dry-run` caps any preset (8 examples, 1 epoch, 2 batches, 2 MLM steps; CPU unless `--device`)
so that CI runs the gpu configs on a locally saved random BERT (`--model FOLDER`). Row 0 trains
nothing (minbert.report.zero_shot). A trained row's JSON whose config is not the row's now is an error.
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from .. import distributed as D
from .. import train as T
from ..files import write_json
from ..mlm import MLM_PRESETS, MLMConfig, pretrain_mlm
from ..predictions import records
from .provenance import config_changes, device_info, git_commit, git_dirty, plain, versions
from .results import format_table, load_results, summary_table
from .zero_shot import zero_shot

# ------------------------------------------------------------------------- the rows
@dataclass(frozen=True)
class Row:
    name: str                  # the file name part and the table label (the seed's names)
    description: str
    changes: dict | None       # what the row changes in its preset's baseline (row 2), as
    #                            the seed's row differs from the seed's; None: nothing trained
    mlm: str | None = None     # MLM pre-step before training: "v1" / "v2" (minbert.mlm presets)


FROZEN = dict(encoder="frozen", lr=1e-3)       # "pretrain": only the heads train
ADJUSTED = dict(batch_size=64, dropout=0.5)    # the seed's "adjusted hyper-parameters"
# the seed's own training settings (CS224N defaults), for row 14 on a preset that changed them
SEED_SETTINGS = dict(batch_size=8, dropout=0.3, lr=1e-5, head_lr=None, pooling="pooler",
                     pair_mode="joint", schedule="shortest", lr_decay="constant")
ROWS = {
    0: Row("zero-shot", "no training: cosine of mean-pooled embeddings (STS r, Quora threshold "
           "from train); SST = majority-class baseline", None),
    1: Row("multitask-pretrain", "frozen BERT, the three heads trained round-robin (lr 1e-3)",
           FROZEN),
    2: Row("multitask-finetune", "round-robin multitask fine-tuning: the baseline", {}),
    # pcgrad_reduction="mean": the seed used Tseng's PCGrad, which averages (minbert.pcgrad);
    # one batch of each task a round (zipped loaders: "shortest"), one batch size, one step a round
    9: Row("pcgrad", "multitask fine-tuning with PCGrad (one step per round, mean reduction)",
           dict(mode="pcgrad", pcgrad_reduction="mean", schedule="shortest")),
    # pair_mode applies to both pair tasks: Quora then reads [u, v, |u-v|, u*v] too
    10: Row("cosine", "multitask fine-tuning, STS trained as cos(u, v) vs score/5 (Sentence-BERT "
            "CosineSimilarityLoss), pairs encoded separately",
            dict(sts_loss="cosine_mse", pair_mode="separate")),
    11: Row("mlm-v1", "extra MLM pre-training on CFIMDB (v1: batch 4), then row 2", {}, "v1"),
    12: Row("adjusted", "row 2 with adjusted hyper-parameters: batch 64, dropout 0.5", ADJUSTED),
    13: Row("adjusted-mlm-v2", "row 12 after MLM v2 (batch 4 x 32 accumulation)", ADJUSTED, "v2"),
    14: Row("seed-settings", "row 2 with the seed's own settings (batch 8, dropout 0.3, constant "
            "lr 1e-5, heads too, pooler, joint pairs): not in the seed's table; = row 2 under gpu",
            SEED_SETTINGS),
}
# rows 3-8: single task, frozen ("pretrain", the seed's name) then fine-tuned, per task
for i, (task, label) in enumerate((("sst", "SST"), ("quora", "Quora"), ("sts", "STS"))):
    for j, (name, frozen, words) in enumerate((("pretrain", True, "frozen BERT"),
                                               ("finetune", False, "fine-tuned"))):
        ROWS[3 + 2 * i + j] = Row(f"{task}-{name}", f"single-task {label}, {words}",
                                  dict(mode="single", tasks=(task,), **(FROZEN if frozen else {})))
ROWS = dict(sorted(ROWS.items()))

# ---------------------------------------------------------------------- the presets
# baseline: the TrainConfig fields of row 2 (every other row = baseline | row.changes);
# mlm: overrides of MLM_PRESETS for rows 11 and 13.
SEED_BASELINE = dict(mode="multitask", encoder="finetune", epochs=10, lr=1e-5,
                     batch_size=8, dropout=0.3)  # the seed's row 2 (CS224N defaults)
# The course baseline (benchmarks/README.md, config F, held-out train). "spread": every batch of
# every task once an epoch: 964 steps, 1.7x "shortest"'s 567 (row 2: 40 min, 1 thread, 100 GFLOP/s)
COURSE_BASELINE = dict(mode="multitask", encoder="finetune", epochs=2, evals_per_epoch=2,
                       schedule="spread", lr=5e-5, head_lr=1e-3, lr_decay="linear", pooling="mean",
                       pair_mode="separate", batch_size=32, dropout=0.1, model="minilm-l6",
                       device="cpu", max_length=64, eval_batch_size=64, n_train=None, n_dev=None)
PRESETS = {
    "gpu": dict(baseline=dict(SEED_BASELINE, model="bert-base-uncased", device="cuda",
                              max_length=128, n_train=None, n_dev=None, eval_batch_size=128),
                mlm=dict(max_length=128)),
    "cpu": dict(baseline=COURSE_BASELINE,
                mlm=dict(max_length=128, n_texts=400, n_eval=100, head_warmup_steps=20)),
    "cpu-demo": dict(baseline=dict(COURSE_BASELINE, n_train=160, n_dev=200, evals_per_epoch=1),
                     mlm=dict(max_length=64, n_texts=64, n_eval=32, head_warmup_steps=5)),
    "tiny": dict(baseline=dict(COURSE_BASELINE, max_length=32, n_train=16, n_dev=16,
                               batch_size=8, eval_batch_size=32, max_batches_per_task=2,
                               epochs=1),
                 mlm=dict(max_length=32, n_texts=8, n_eval=4, head_warmup_steps=1,
                          max_steps=2, epochs=1)),
}
# --dry-run: sizes only (the rows' settings stay), so that the gpu configs run in CI
DRY_RUN = dict(train=dict(n_train=8, n_dev=8, max_length=32, max_batches_per_task=2,
                          device="cpu", eval_batch_size=8, epochs=1),
               mlm=dict(n_texts=8, n_eval=4, max_length=32, head_warmup_steps=1,
                        max_steps=2, epochs=1, eval_batch_size=4))


def preset_settings(preset: str, dry_run=False, model=None, data=None, device=None) -> dict:
    """{"baseline": row 2's fields, "sizes": fields that win over every row's changes, "mlm"}."""
    p = PRESETS[preset]
    s = dict(baseline=dict(p["baseline"]), sizes={}, mlm=dict(p["mlm"]))
    if dry_run:
        s["sizes"].update(DRY_RUN["train"])
        s["mlm"].update(DRY_RUN["mlm"])
    for k, v in (("model", model), ("data", data), ("device", device)):
        if v is not None:
            s["sizes"][k] = v
    return s


def row_config(row: int, seed: int, settings: dict, init_from=None) -> T.TrainConfig:
    """The row's TrainConfig under a preset (settings from preset_settings)."""
    fields = settings["baseline"] | ROWS[row].changes | settings["sizes"]
    return T.TrainConfig(**fields, seed=seed, init_from=init_from).resolved()


def train_setting(settings: dict, key: str):
    return settings["sizes"].get(key, settings["baseline"].get(key))


def mlm_settings(version: str, settings: dict, seed: int) -> dict:
    return dict(MLM_PRESETS[version], **settings["mlm"], seed=seed)


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
        config = MLMConfig(**kw, model=model, data=train_setting(settings, "data"))
        metrics = pretrain_mlm(config, out, progress=False)
    return str(out / "encoder"), {"version": version, "settings": kw, "metrics": metrics}


def train_row(row, seed, s, runs: Path, out: Path, progress=True) -> dict:
    """Train one row x seed into `out` (resuming a checkpoint there) and predict the dev
    sets with the final weights: the parts of the result JSON that come from training."""
    mlm, init_from = None, None
    if ROWS[row].mlm:
        with D.main_first():  # torchrun: rank 0 pre-trains, the others then find its encoder
            init_from, mlm = run_mlm(ROWS[row].mlm, s, seed, runs, train_setting(s, "model"))
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
    path, s = result_path(results, preset, row, seed, dry_run), preset_settings(
        preset, dry_run, model, data, device)
    if path.is_file():  # complete, unless its row has changed since (then an error, not a skip)
        diff = ROWS[row].changes is not None and config_changes(
            json.loads(path.read_text())["config"], row_config(row, seed, s),
            ignore=("data", "device", "init_from", "cache_frozen"))
        if diff:
            raise ValueError(f"{path}: made with another config than row {row} has now ("
                             + "; ".join(diff) + "): delete it to run the row again")
        return None
    runs = Path(runs) / (preset + ("-dry" if dry_run else ""))
    t0, started = time.perf_counter(), datetime.datetime.now(datetime.timezone.utc)
    info = device_info(train_setting(s, "device"))
    if ROWS[row].changes is None:  # zero-shot
        fields = s["baseline"] | s["sizes"] | dict(mode="multitask", seed=seed, epochs=0)
        config = T.TrainConfig(**{k: v for k, v in fields.items()
                                  if k != "max_batches_per_task"}).resolved()
        dev, preds = zero_shot(config)
        r = dict(config=config, mlm=None, resumed=False, history=[], dev=dev, predictions=preds)
    else:
        r = train_row(row, seed, s, runs, runs / path.stem, progress)
    if not D.is_main():  # torchrun: rank 0 alone writes the result
        return path
    history = r["history"]
    command = " ".join(["python -m minbert.report.experiments"] + sys.argv[1:]) \
        if Path(sys.argv[0]).stem in ("experiments", "__main__") else None
    write_json(path, {
        "schema": 1, "row": row, "name": ROWS[row].name, "description": ROWS[row].description,
        "preset": preset, "dry_run": dry_run, "seed": seed,
        "config": plain(r["config"]),
        "mlm": r["mlm"], "command": command,
        "git_commit": git_commit(), "git_dirty": git_dirty(), "versions": versions(),
        "device": info, "started_at": started.isoformat(timespec="seconds"),
        "wall_time_s": round(time.perf_counter() - t0, 1), "resumed": r["resumed"],
        "train_time_s": round(sum(e.get("wall_time_s", 0) for e in history), 1),
        "history": history, "dev": r["dev"], **D.run_info(r["config"].batch_size),
        "conflict": [{"epoch": e["epoch"], **e["conflict"]} for e in history if "conflict" in e]
        or None,
        "predictions": r["predictions"],
    })
    return path


def all_rows(preset) -> list:
    """Every row, less row 14 where the preset's baseline already is the seed's settings."""
    s = preset_settings(preset)
    return [r for r in ROWS if r != 14 or row_config(14, 0, s) != row_config(2, 0, s)]


def run_rows(rows, seeds, preset, results, runs, **kw) -> list:
    done = []
    for seed in range(seeds) if isinstance(seeds, int) else seeds:
        for row in rows:
            t0 = time.perf_counter()
            p = run_one(row, seed, preset, results, runs, **kw)
            if D.is_main():  # once, not once per torchrun rank
                print(f"row {row:2d} {ROWS[row].name:<20} seed {seed}: "
                      + (f"{p} ({time.perf_counter() - t0:.0f} s)" if p else "complete, skipped"),
                      flush=True)
            done.append(p)
    return done


# ------------------------------------------------------------------------ command line
SHOWN = (("mode", 9), ("encoder", 8), ("batch_size", 5), ("dropout", 4), ("lr", 6),
         ("head_lr", 6), ("pooling", 6), ("pair_mode", 8), ("schedule", 8), ("epochs", 3))


def show(preset) -> str:
    """The rows side by side under a preset: the fields every row sets, then what else a
    row changes in the baseline (row 2)."""
    s = preset_settings(preset)
    rest = {k: v for k, v in s["baseline"].items() if k not in dict(SHOWN)}
    fmt = lambda v: f"{v:.0e}" if isinstance(v, float) and v < 0.01 else str(v)  # noqa: E731
    lines = [f"preset {preset}: " + ", ".join(f"{k}={fmt(v)}" for k, v in rest.items())
             + f"; MLM {s['mlm']}",
             f"{'row':>3}  {'name':<19} " + " ".join(f"{k[:w]:<{w}}" for k, w in SHOWN)
             + f" {'changes':<30} description"]
    for row, r in ROWS.items():
        if r.changes is None:
            cells, extra = [("-", w) for _, w in SHOWN], "-"
        else:
            c = row_config(row, 0, s)
            cells = [(fmt(getattr(c, k)), w) for k, w in SHOWN]
            extra = " ".join([f"tasks={'+'.join(c.tasks)}"] * (c.mode == "single") + [
                f"{k}={getattr(c, k)}" for k in ("sts_loss", "pcgrad_reduction", "lr_decay")
                if k in r.changes] + [f"MLM {r.mlm}"] * bool(r.mlm)) or "-"
        lines.append(f"{row:>3}  {r.name:<19} " + " ".join(f"{v:<{w}}" for v, w in cells)
                     + f" {extra:<30} {r.description}")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser("python -m minbert.report.experiments", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train the rows (skips complete ones, resumes the rest)")
    g = r.add_mutually_exclusive_group(required=True)
    g.add_argument("--all", action="store_true")
    g.add_argument("--rows", nargs="+", type=int, choices=sorted(ROWS))
    r.add_argument("--seeds", type=int, default=1, help="seeds 0 .. N-1")
    r.add_argument("--first-seed", type=int, default=0, help="seeds K .. N-1 (a 2nd process)")
    r.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    r.add_argument("--results", default="results")
    r.add_argument("--runs", default="runs/experiments")
    r.add_argument("--model", default=None, help="override the preset's model (name or folder)")
    r.add_argument("--data", default=None, help="data folder (default: $MINBERT_DATA)")
    r.add_argument("--device", default=None)
    r.add_argument("--dry-run", action="store_true", help="cap examples/steps, CPU: <preset>-dry/")
    r.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    r.add_argument("--no-progress", action="store_true")
    t = sub.add_parser("table", help="print the results table")
    t.add_argument("--results", default="results")
    t.add_argument("--markdown", action="store_true", help="a Markdown table (for the README)")
    s = sub.add_parser("show", help="rows x settings")
    s.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    a = p.parse_args(argv)
    if a.cmd == "run":
        if not 0 <= a.first_seed < a.seeds:
            p.error(f"--first-seed {a.first_seed}: expected 0 .. {a.seeds - 1} (--seeds {a.seeds})")
        if a.threads:
            torch.set_num_threads(a.threads)
        run_rows(all_rows(a.preset) if a.all else a.rows, range(a.first_seed, a.seeds), a.preset,
                 a.results, a.runs, dry_run=a.dry_run, model=a.model, data=a.data, device=a.device,
                 progress=not a.no_progress)
    elif a.cmd == "table":
        df = load_results(a.results)
        table = format_table(summary_table(df)) if len(df) else None
        if table is None:
            print(f"no results under {a.results}")
        elif a.markdown:  # pipes inside cells do not occur: numbers, names, "-"
            print("\n".join("| " + " | ".join(map(str, r)) + " |" for r in
                            [table.columns, ["---"] * len(table.columns), *table.values]))
        else:
            with pd.option_context("display.width", 250, "display.max_columns", 30):
                print(table.to_string(index=False))
    else:
        print(show(a.preset))


if __name__ == "__main__":
    main()

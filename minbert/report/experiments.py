"""Every row of the seed report's results table, one command (notebook 08_results).

    python -m minbert.report.experiments show --preset cpu       # the preset file, rows x settings
    python -m minbert.report.experiments run --all --seeds 3 --preset cpu   # [--first-seed K]: K .. 2
    python -m minbert.report.experiments run --rows 0 2 9 --preset cpu-demo --results results/
    python -m minbert.report.experiments table --results results/
    python -m minbert.report.plan --preset cpu                   # estimated minutes per row

`run` trains each row x seed (and its MLM pre-step), skips those whose result JSON exists,
resumes interrupted ones from their checkpoint (`train.run(resume=True)`), and writes one
JSON per run, atomically, to RESULTS/<preset>/rowNN-<name>-seedS.json: the row, its
description and resolved config, seed, git commit, package versions, device, wall time,
per-epoch history (train and dev metrics, gradient-conflict statistics where the mode
logs them), final dev metrics, and every dev prediction with both sentences, the gold
label and the model's confidence (for error analysis). Checkpoints stay in RUNS (gitignored).

The rows are report/rows.py; the presets (gpu: the seed's exact set-up; cpu: the table to
commit; cpu-demo: a smoke run; tiny: tests) are the files report/presets/*.toml, each saying
what it is for. `--dry-run` caps any preset (presets/dry-run.toml; CPU unless `--device`) so
that CI runs the gpu configs on a locally saved random BERT (`--model FOLDER`). Row 0 trains
nothing (report/zero_shot.py). A trained row's JSON whose config is not the row's now is an
error.
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
from ..config import one_line_warnings
from ..files import write_json
from ..mlm import MLMConfig, pretrain_mlm
from ..predictions import Records
from .presets import (PRESETS, mlm_settings, preset_settings, row_config, show, train_setting,
                      zero_shot_config)
from .provenance import config_changes, device_info, git_commit, git_dirty, plain, versions
from .results import format_table, load_results, summary_table
from .rows import ROWS
from .zero_shot import zero_shot


@dataclass(frozen=True)
class Options:
    """Where and how `run` runs its rows (the command line's flags past --rows / --seeds)."""
    preset: str = "cpu"
    results: str | Path = "results"
    runs: str | Path = "runs/experiments"
    dry_run: bool = False      # the caps of presets/dry-run.toml, into <preset>-dry/
    model: str | None = None   # these three win over the preset and every row
    data: str | None = None
    device: str | None = None
    progress: bool = True

    @property
    def folder(self) -> str:
        return self.preset + ("-dry" if self.dry_run else "")

    def settings(self) -> dict:
        return preset_settings(self.preset, self.dry_run, self.model, self.data, self.device)


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
    resumed, run = (out / "checkpoint.pt").is_file(), T.prepare(config)
    preds = Records(run.loaders[2], run.examples[1], config.device)  # the final weights'
    metrics = run.train(out, resume=resumed, progress=progress, callbacks=[preds])
    history = json.loads((out / "history.json").read_text())
    return dict(config=config, mlm=mlm, resumed=resumed, history=history,
                dev=metrics["dev"], predictions=preds.records)


def score_zero_shot(seed, s) -> dict:
    """Row 0's parts of the result JSON: nothing trained (report/zero_shot.py)."""
    config = zero_shot_config(seed, s)
    dev, preds = zero_shot(config)
    return dict(config=config, mlm=None, resumed=False, history=[], dev=dev, predictions=preds)


def is_complete(path: Path, row, seed, s) -> bool:
    """A result JSON exists: complete, unless its row has changed since (then an error)."""
    if not path.is_file():
        return False
    diff = ROWS[row].changes is not None and config_changes(
        json.loads(path.read_text())["config"], row_config(row, seed, s),
        ignore=("data", "device", "init_from", "cache_frozen"))
    if diff:
        raise ValueError(f"{path}: made with another config than row {row} has now ("
                         + "; ".join(diff) + "): delete it to run the row again")
    return True


def result_record(row, seed, o: Options, r: dict, info: dict) -> dict:
    """The result JSON of one row x seed (the schema notebook 08 and results.py read)."""
    history = r["history"]
    command = " ".join(["python -m minbert.report.experiments"] + sys.argv[1:]) \
        if Path(sys.argv[0]).stem in ("experiments", "__main__") else None
    return {
        "schema": 1, "row": row, "name": ROWS[row].name, "description": ROWS[row].description,
        "preset": o.preset, "dry_run": o.dry_run, "seed": seed,
        "config": plain(r["config"]),
        "mlm": r["mlm"], "command": command,
        "git_commit": git_commit(), "git_dirty": git_dirty(), "versions": versions(),
        "device": info["device"], "started_at": info["started"].isoformat(timespec="seconds"),
        "wall_time_s": round(time.perf_counter() - info["t0"], 1), "resumed": r["resumed"],
        "train_time_s": round(sum(e.get("wall_time_s", 0) for e in history), 1),
        "history": history, "dev": r["dev"], **D.strategy().run_info(r["config"].batch_size),
        "conflict": [{"epoch": e["epoch"], **e["conflict"]} for e in history if "conflict" in e]
        or None,
        "predictions": r["predictions"],
    }


def run_one(row, seed, o: Options) -> Path | None:
    """Train (or score) one row x seed; write its result JSON. None when already complete."""
    path, s = result_path(o.results, o.preset, row, seed, o.dry_run), o.settings()
    if is_complete(path, row, seed, s):
        return None
    runs = Path(o.runs) / o.folder
    info = dict(t0=time.perf_counter(), started=datetime.datetime.now(datetime.timezone.utc),
                device=device_info(train_setting(s, "device")))
    if ROWS[row].changes is None:
        r = score_zero_shot(seed, s)
    else:
        r = train_row(row, seed, s, runs, runs / path.stem, o.progress)
    if D.is_main():  # torchrun: rank 0 alone writes the result
        write_json(path, result_record(row, seed, o, r, info))
    return path


def all_rows(preset) -> list:
    """Every row, less row 14 where the preset's baseline already is the seed's settings."""
    s = preset_settings(preset)
    return [r for r in ROWS if r != 14 or row_config(14, 0, s) != row_config(2, 0, s)]


def run_rows(rows, seeds, o: Options) -> list:
    done = []
    for seed in range(seeds) if isinstance(seeds, int) else seeds:
        for row in rows:
            t0 = time.perf_counter()
            p = run_one(row, seed, o)
            if D.is_main():  # once, not once per torchrun rank
                print(f"row {row:2d} {ROWS[row].name:<20} seed {seed}: "
                      + (f"{p} ({time.perf_counter() - t0:.0f} s)" if p else "complete, skipped"),
                      flush=True)
            done.append(p)
    return done


# ------------------------------------------------------------------------ command line
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser("python -m minbert.report.experiments",
                                description=__doc__.split("\n")[0])
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
    s = sub.add_parser("show", help="the preset file, then rows x settings")
    s.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    return p


def table(results, markdown=False) -> str:
    """The results table of a folder, as text or as Markdown (for the README)."""
    df = load_results(results)
    t = format_table(summary_table(df)) if len(df) else None
    if t is None:
        return f"no results under {results}"
    if markdown:  # pipes inside cells do not occur: numbers, names, "-"
        return "\n".join("| " + " | ".join(map(str, r)) + " |" for r in
                         [t.columns, ["---"] * len(t.columns), *t.values])
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        return t.to_string(index=False)


def main(argv=None):
    p = parser()
    a = p.parse_args(argv)
    if a.cmd == "table":
        print(table(a.results, a.markdown))
    elif a.cmd == "show":
        print(show(a.preset))
    else:
        if not 0 <= a.first_seed < a.seeds:
            p.error(f"--first-seed {a.first_seed}: expected 0 .. {a.seeds - 1} (--seeds {a.seeds})")
        if a.threads:
            torch.set_num_threads(a.threads)
        o = Options(a.preset, a.results, a.runs, a.dry_run, a.model, a.data, a.device,
                    progress=not a.no_progress)
        with one_line_warnings():
            run_rows(all_rows(a.preset) if a.all else a.rows, range(a.first_seed, a.seeds), o)


if __name__ == "__main__":
    main()

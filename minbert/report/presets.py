"""The presets: one TOML file each in presets/, and a row's TrainConfig under one.

    presets/gpu.toml       the seed's exact set-up (bert-base-uncased, CUDA)
    presets/cpu.toml       the table to commit: the course baseline on 2 CPU cores
    presets/cpu-demo.toml  a few-minute smoke run of cpu
    presets/tiny.toml      for tests
    presets/dry-run.toml   the caps of `--dry-run`, over any preset

A preset file has two tables. [train] is row 2's TrainConfig with every field written out,
so that a change of TrainConfig's defaults never moves a preset: a field left out is None,
and only NULLABLE fields may be left out (TOML has no None); seed and init_from are set per
run (PER_RUN), never by a preset. [mlm] overrides minbert.mlm.MLM_PRESETS for the MLM
pre-step of rows 11 and 13. Measured times of the presets: benchmarks/README.md.
"""
from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

from .. import train as T
from ..mlm import MLM_PRESETS
from .rows import ROWS

FOLDER = Path(__file__).resolve().parent / "presets"
NULLABLE = ("data", "head_lr", "encoder_dropout", "n_train", "n_dev", "max_batches_per_task")  # left out: None
PER_RUN = ("seed", "init_from")


def preset_text(name: str) -> str:
    """The preset file as written (its comments say what the preset is for)."""
    return (FOLDER / f"{name}.toml").read_text()


def load_preset(name: str) -> dict:
    """{"baseline": row 2's TrainConfig fields, "mlm": MLM overrides} of presets/NAME.toml;
    an error when [train] misses a field, names an unknown one, or sets a per-run one."""
    p = tomllib.loads(preset_text(name))
    train, fields = p["train"], [f.name for f in dataclasses.fields(T.TrainConfig)]
    wrong = {"unknown": set(train) - set(fields), "set per run": set(train) & set(PER_RUN),
             "missing": set(fields) - set(train) - set(NULLABLE) - set(PER_RUN)}
    for what, keys in wrong.items():
        if keys:
            raise ValueError(f"{FOLDER / name}.toml [train]: {what}: {sorted(keys)}")
    baseline = {k: train.get(k) for k in fields if k not in PER_RUN}
    return dict(baseline=baseline, mlm=p.get("mlm", {}))


PRESETS = {f.stem: load_preset(f.stem) for f in sorted(FOLDER.glob("*.toml"))
           if f.stem != "dry-run"}
DRY_RUN = tomllib.loads(preset_text("dry-run"))  # {"train": caps, "mlm": caps}


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


def zero_shot_config(seed: int, settings: dict) -> T.TrainConfig:
    """Row 0's config: the baseline's model, data and sizes, nothing trained (epochs 0)."""
    fields = settings["baseline"] | settings["sizes"] | dict(mode="multitask", seed=seed, epochs=0)
    return T.TrainConfig(**{k: v for k, v in fields.items()
                            if k != "max_batches_per_task"}).resolved()


def train_setting(settings: dict, key: str):
    return settings["sizes"].get(key, settings["baseline"].get(key))


def mlm_settings(version: str, settings: dict, seed: int) -> dict:
    return dict(MLM_PRESETS[version], **settings["mlm"], seed=seed)


# ------------------------------------------------------------------ rows x settings
SHOWN = (("mode", 9), ("encoder", 8), ("batch_size", 5), ("head_dropout", 4), ("lr", 6),
         ("head_lr", 6), ("pooling", 6), ("pair_mode", 8), ("schedule", 8), ("epochs", 3))


def _fmt(v) -> str:
    return f"{v:.0e}" if isinstance(v, float) and v < 0.01 else str(v)


def _cells(row: int, settings: dict) -> tuple[list, str]:
    """A row's SHOWN fields and what else it changes in the baseline."""
    r = ROWS[row]
    if r.changes is None:
        return [("-", w) for _, w in SHOWN], "-"
    c = row_config(row, 0, settings)
    extra = " ".join([f"tasks={'+'.join(c.tasks)}"] * (c.mode == "single") + [
        f"{k}={getattr(c, k)}" for k in ("sts_loss", "pcgrad_reduction", "lr_decay")
        if k in r.changes] + [f"MLM {r.mlm}"] * bool(r.mlm)) or "-"
    return [(_fmt(getattr(c, k)), w) for k, w in SHOWN], extra


def show(preset: str) -> str:
    """The preset file itself, then the rows side by side under it: the fields every row
    sets, then what else a row changes in the baseline (row 2)."""
    s = preset_settings(preset)
    lines = [preset_text(preset).rstrip(), "",
             f"{'row':>3}  {'name':<19} " + " ".join(f"{k[:w]:<{w}}" for k, w in SHOWN)
             + f" {'changes':<30} description"]
    for row, r in ROWS.items():
        cells, extra = _cells(row, s)
        lines.append(f"{row:>3}  {r.name:<19} " + " ".join(f"{v:<{w}}" for v, w in cells)
                     + f" {extra:<30} {r.description}")
    return "\n".join(lines)

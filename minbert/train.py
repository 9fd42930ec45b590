"""Training runs: single-task, round-robin multitask and PCGrad (notebooks 03, 04, 05).

    python -m minbert.train --mode single --task sst --model minilm-l6 --out runs/sst
    python -m minbert.train --mode multitask --out runs/rr --epochs 2 --max-batches-per-task 100
    python -m minbert.train --mode multitask --out runs/rr --epochs 3 --resume

Modes (CS224N default project; Yu et al. 2020 for PCGrad):
  single     one task; one optimizer step per batch.
  multitask  round-robin: each round takes one batch of every task in `tasks` order and
             makes one optimizer step per batch (sst, quora, sts, sst, quora, sts, ...).
  pcgrad     each round takes one batch per task (same batch size), one forward per task,
             `minbert.pcgrad.pcgrad_backward` on the shared encoder, ONE step per round.

An epoch is R rounds, R = the length of the SHORTEST task loader (capped by
`max_batches_per_task`): every task gets the same number of steps, no loader is
cycled, and each epoch reshuffles every task (make_loader's order is a function of
(seed, epoch)), so the longer tasks see a different subset each epoch. Single-task is the case T = 1.

Gradient conflict (multitask and pcgrad, T > 1, encoder trainable): per round the
per-task encoder gradients (flattened into one preallocated (T, P) buffer) go to
`minbert.pcgrad.conflict_stats`; each epoch's history keeps, per task pair, the
fraction of rounds with g_i . g_j < 0 and the mean cosine. In round-robin the T
gradients are taken at T successive points (one step apart): that is what this loop
does, and what conflict means for it.

Metrics: SST and Quora accuracy, STS Pearson r (0.0 when the predictions are constant).
"train" metrics are those of the training-mode outputs (dropout on) of the batches
seen that epoch: free, where re-scoring the train set would cost an epoch of forwards.
Note: the bundled MiniLM's sentence-embedding training included Quora duplicate
questions, so its Quora numbers are optimistic.

Outputs in `out_dir` (each written atomically: temp file + os.replace):
  checkpoint.pt  every epoch end: model, optimizer, RNG states (torch, python, numpy),
                 epoch, history, config; loads with torch.load(..., weights_only=True).
  history.json   per epoch: train loss + metric and dev metric per task, conflict, wall time.
  metrics.json   final dev metrics + the config (no times: same seed -> same file).
  dev-predictions-{task}.tsv   id, pred, gold.
  {sst,para,sts}-{split}-output.csv   CS224N leaderboard files (`write_predictions`).
`run(..., resume=True)` continues from checkpoint.pt; a run killed after epoch k and
resumed ends with the same metrics and history (wall times aside) as one never killed.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import time
import typing
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from .heads import TASKS, MultitaskBERT
from .optimizer import AdamW

METRIC = {"sst": "acc", "quora": "acc", "sts": "pearson"}
# CS224N starter (multitask_classifier.py, test_multitask): file prefix and header column.
CS224N_OUTPUT = {"sst": ("sst", "Predicted_Sentiment"),
                 "quora": ("para", "Predicted_Is_Paraphrase"),
                 "sts": ("sts", "Predicted_Similiarity")}  # sic: the starter's spelling
DEFAULT_LR = {"pretrain": 1e-3, "finetune": 1e-5}


@dataclass
class TrainConfig:
    mode: str = "single"                 # single | multitask | pcgrad
    tasks: tuple = ()                    # () -> ("sst",) for single, all three otherwise
    option: str = "finetune"             # pretrain (encoder frozen) | finetune
    model: str = "minilm-l6"             # load_pretrained name or folder
    init_from: str | None = None         # HF folder (e.g. an MLM-continued encoder); wins over model
    data: str | None = None              # data folder; None -> $MINBERT_DATA
    epochs: int = 1
    batch_size: int = 32
    eval_batch_size: int = 64
    lr: float | None = None              # None -> 1e-3 (pretrain) / 1e-5 (finetune)
    head_lr: float | None = None         # the heads' lr; None -> lr (see make_optimizer)
    weight_decay: float = 0.0
    dropout: float = 0.1
    max_length: int = 64
    n_train: int | None = None           # train examples per task (None: all)
    n_dev: int | None = None             # dev examples per task (None: all)
    max_batches_per_task: int | None = None  # caps the rounds of an epoch
    seed: int = 0
    pcgrad_reduction: str = "sum"        # sum (paper) | mean (Tseng's code)
    pair_mode: str = "joint"             # joint | separate (see heads.py)
    pooling: str = "pooler"              # pooler | mean: the vector the heads read
    sts_loss: str = "mse"                # mse | cosine_mse | cosine_embedding
    log_conflict: bool = True
    device: str = "cpu"

    def resolved(self) -> "TrainConfig":
        """Fill the defaults that depend on other fields, and validate."""
        c = dataclasses.replace(self)
        if c.mode not in ("single", "multitask", "pcgrad"):
            raise ValueError(f"mode must be single, multitask or pcgrad, got {c.mode!r}")
        if c.option not in DEFAULT_LR:
            raise ValueError(f"option must be pretrain or finetune, got {c.option!r}")
        c.tasks = tuple(c.tasks) or (("sst",) if c.mode == "single" else TASKS)
        bad = [t for t in c.tasks if t not in TASKS]
        if bad or len(set(c.tasks)) != len(c.tasks):
            raise ValueError(f"tasks must be distinct names from {TASKS}, got {c.tasks}")
        if c.mode == "single" and len(c.tasks) != 1:
            raise ValueError(f"mode 'single' trains one task, got {c.tasks}")
        if c.mode == "pcgrad" and c.option != "finetune":
            raise ValueError("pcgrad projects encoder gradients: it needs option='finetune'")
        if c.option == "pretrain" and c.sts_loss != "mse" and "sts" in c.tasks:
            raise ValueError(f"sts_loss={c.sts_loss!r} trains the encoder only (no head): "
                             "it needs option='finetune'")
        if c.lr is None:
            c.lr = DEFAULT_LR[c.option]
        if c.pcgrad_reduction not in ("sum", "mean"):
            raise ValueError(f"pcgrad_reduction must be sum or mean, got {c.pcgrad_reduction!r}")
        return c


# --- small utilities --------------------------------------------------------------
def atomic_write_bytes(path: Path, write):
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str):
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


def write_json(path: Path, obj):
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def seed_everything(seed: int):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def get_rng_state() -> dict:
    """Everything a resumed run must continue from, as tensors/lists (weights_only-safe)."""
    version, state, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    rng = {"torch": torch.get_rng_state(),
           "python": [version, list(state), gauss],
           "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                     "has_gauss": int(has_gauss), "cached": float(cached)}}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def set_rng_state(rng: dict):
    torch.set_rng_state(rng["torch"])
    version, state, gauss = rng["python"]
    random.setstate((version, tuple(state), gauss))
    n = rng["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached"]))
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def accuracy(pred, gold) -> float:
    pred, gold = np.asarray(pred), np.asarray(gold)
    return float((pred == gold).mean()) if len(gold) else 0.0


def pearson(pred, gold) -> float:
    """Pearson r (scipy); 0.0 when either side is constant (r is undefined there)."""
    from scipy.stats import pearsonr
    pred, gold = np.asarray(pred, dtype=np.float64), np.asarray(gold, dtype=np.float64)
    if len(pred) < 2 or np.ptp(pred) == 0 or np.ptp(gold) == 0:
        return 0.0
    return float(pearsonr(pred, gold)[0])


def metric(task, pred, gold) -> float:
    return pearson(pred, gold) if task == "sts" else accuracy(pred, gold)


def to_device(batch, device):
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


# --- data and model -----------------------------------------------------------------
def cap(n, task):
    return n.get(task) if isinstance(n, dict) else n


def load_examples(config: TrainConfig) -> tuple[dict, dict]:
    from . import data
    root = data.data_dir(config.data)
    train = {t: data.subset(data.load(t, "train", root), cap(config.n_train, t), seed=config.seed)
             for t in config.tasks}
    dev = {t: data.subset(data.load(t, "dev", root), cap(config.n_dev, t), seed=0)
           for t in config.tasks}
    return train, dev


def make_loader(examples, tokenizer, config, *, train):
    """Train loaders shuffle with `config.seed`; call loader.sampler.set_epoch(e) before
    epoch e so that the order depends on (seed, epoch) only, resumed or not."""
    from . import data
    return data.make_loader(examples, tokenizer,
                            config.batch_size if train else config.eval_batch_size,
                            shuffle=train, seed=config.seed, max_length=config.max_length,
                            pair_mode=config.pair_mode)


def build_model(config: TrainConfig):
    from .pretrained import load_pretrained
    bert, tokenizer = load_pretrained(config.init_from or config.model)
    torch.manual_seed(config.seed)  # the heads' initialisation
    model = MultitaskBERT(bert, dropout=config.dropout, mode=config.option,
                          pair_mode=config.pair_mode, sts_loss=config.sts_loss,
                          pooling=config.pooling)
    return model.to(config.device), tokenizer


def make_optimizer(model, config):
    """minbert's AdamW. With `head_lr`, the randomly initialised heads get their own
    learning rate (e.g. 1e-3 while the pretrained encoder gets 5e-5): at 1e-5 a fresh
    head needs hundreds of steps just to find the encoder's features."""
    shared = {id(p) for p in model.shared_parameters()}
    enc = [p for p in model.parameters() if p.requires_grad and id(p) in shared]
    heads = [p for p in model.parameters() if p.requires_grad and id(p) not in shared]
    groups = [g for g in ({"params": enc}, {"params": heads, "lr": config.head_lr or config.lr})
              if g["params"]]
    return AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)


# --- training -------------------------------------------------------------------------
def check_finite(loss, task, step, epoch):
    if not torch.isfinite(loss).item():
        raise FloatingPointError(
            f"non-finite loss ({loss.item()}) for task {task!r} at step {step} "
            f"(epoch {epoch + 1}); the run stops here, the last checkpoint is the previous "
            "epoch's. Lower the learning rate or check the data.")


class ConflictLog:
    """Accumulates conflict_stats over the rounds of an epoch."""
    def __init__(self, model, tasks, device):
        self.params = [p for p in model.shared_parameters() if p.requires_grad]
        self.tasks = tasks
        P = sum(p.numel() for p in self.params)
        self.buf = torch.zeros(len(tasks), P, device=device)  # (T, P), reused every round
        self.sums = {}

    def grab(self, t: int):
        off = 0
        for p in self.params:
            n = p.numel()
            if p.grad is None:
                self.buf[t, off:off + n].zero_()
            else:
                self.buf[t, off:off + n].copy_(p.grad.reshape(-1))
            off += n

    def add(self, stats: dict):
        for (i, j), cos in stats["cosine"].items():
            key = f"{self.tasks[i]}-{self.tasks[j]}"
            n, c, s = self.sums.get(key, (0, 0, 0.0))
            self.sums[key] = (n + 1, c + int(stats["conflict"][(i, j)]), s + cos)

    def summary(self) -> dict:
        return {k: {"conflict_rate": c / n, "mean_cosine": s / n}
                for k, (n, c, s) in self.sums.items()}


def epoch_rounds(loaders: dict, max_batches=None) -> int:
    r = min(len(l) for l in loaders.values())
    return r if max_batches is None else min(r, max_batches)


def train_epoch(model, optimizer, loaders: dict, config: TrainConfig, epoch: int,
                step: int, progress=True):
    """One epoch (see the module docstring). Returns (train stats, conflict, step)."""
    from tqdm.auto import tqdm
    tasks = list(loaders)
    rounds = epoch_rounds(loaders, config.max_batches_per_task)
    log = None
    if config.mode != "single" and len(tasks) > 1 and config.log_conflict and any(
            p.requires_grad for p in model.shared_parameters()):
        log = ConflictLog(model, tasks, config.device)
    if config.mode == "pcgrad":
        from .pcgrad import pcgrad_backward
        shared = [p for p in model.shared_parameters() if p.requires_grad]
    seen = {t: {"loss": 0.0, "n": 0, "pred": [], "gold": []} for t in tasks}

    def record(task, loss, out, batch):
        s = seen[task]
        s["loss"] += loss.item()
        s["n"] += 1
        s["pred"].extend(model.decide(task, out).cpu().tolist())
        s["gold"].extend(batch["labels"].cpu().tolist())

    model.train()
    iters = {t: iter(loaders[t]) for t in tasks}
    bar = tqdm(range(rounds), desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress,
               leave=False)
    for _ in bar:
        batches = {t: to_device(next(iters[t]), config.device) for t in tasks}
        if config.mode == "pcgrad":
            optimizer.zero_grad(set_to_none=True)
            step += 1
            losses = []
            for t in tasks:
                loss, out = model.forward_loss(t, batches[t])
                check_finite(loss, t, step, epoch)
                record(t, loss, out, batches[t])
                losses.append(loss)
            stats = pcgrad_backward(losses, shared, reduction=config.pcgrad_reduction)
            optimizer.step()
            if log:
                log.add(stats)
        else:
            for i, t in enumerate(tasks):  # round-robin: one step per batch, tasks in turn
                optimizer.zero_grad(set_to_none=True)
                step += 1
                loss, out = model.forward_loss(t, batches[t])
                check_finite(loss, t, step, epoch)
                loss.backward()
                if log:
                    log.grab(i)
                optimizer.step()
                record(t, loss, out, batches[t])
            if log:
                from .pcgrad import conflict_stats
                log.add(conflict_stats(log.buf))
        bar.set_postfix({t: f"{s['loss'] / max(s['n'], 1):.3f}" for t, s in seen.items()})
    bar.close()
    train = {t: {"loss": s["loss"] / max(s["n"], 1), METRIC[t]: metric(t, s["pred"], s["gold"]),
                 "batches": s["n"]} for t, s in seen.items()}
    return train, (log.summary() if log else None), step


@torch.no_grad()
def predict_loader(model, task, loader, device="cpu"):
    """-> (ids, predictions, golds or None) over a whole loader, eval mode."""
    model.eval()
    ids, preds, golds = [], [], []
    for batch in loader:
        ids.extend(batch["ids"])
        preds.extend(model.predict(task, to_device(batch, device)).cpu().tolist())
        if "labels" in batch:
            golds.extend(batch["labels"].tolist())
    return ids, preds, (golds if golds else None)


def evaluate(model, loaders: dict, device="cpu") -> tuple[dict, dict]:
    """-> ({task: {metric: value}}, {task: (ids, preds, golds)})."""
    scores, preds = {}, {}
    for t, loader in loaders.items():
        ids, p, g = predict_loader(model, t, loader, device)
        scores[t] = {METRIC[t]: metric(t, p, g)}
        preds[t] = (ids, p, g)
    return scores, preds


def format_pred(task, p):
    return f"{p:.9g}" if task == "sts" else str(int(p))  # 9 digits: a float32, exactly


def write_dev_predictions(out_dir: Path, preds: dict):
    for t, (ids, p, g) in preds.items():
        lines = ["id\tpred\tgold"] + [f"{i}\t{format_pred(t, a)}\t{format_pred(t, round(b, 4))}"
                                      for i, a, b in zip(ids, p, g)]
        atomic_write_text(Path(out_dir) / f"dev-predictions-{t}.tsv", "\n".join(lines) + "\n")


def write_predictions(model, tokenizer, config: TrainConfig, out_dir, split="test") -> list[Path]:
    """CS224N leaderboard files for `split` ("test" reads the *-test-student.csv files).

    The starter's exact format: a header line `id \\t Predicted_Sentiment ` (with those
    spaces; para: Predicted_Is_Paraphrase, sts: Predicted_Similiarity, sic), then one
    `{id} , {prediction} ` line per example. Its grader parses that, so it is kept."""
    from . import data
    config = config.resolved()
    root = data.data_dir(config.data)
    written = []
    for t in config.tasks:
        if not (root / data.FILES[t, split]).is_file():  # e.g. quora-test-student.csv offline
            warnings.warn(f"{root / data.FILES[t, split]} not found: no {t} {split} predictions")
            continue
        examples = data.load(t, split, root)
        ids, p, _ = predict_loader(model, t, make_loader(examples, tokenizer, config, train=False),
                                   config.device)
        prefix, column = CS224N_OUTPUT[t]
        path = Path(out_dir) / f"{prefix}-{split}-output.csv"
        lines = [f"id \t {column} "] + [f"{i} , {format_pred(t, a)} " for i, a in zip(ids, p)]
        atomic_write_text(path, "\n".join(lines) + "\n")
        written.append(path)
    return written


def save_checkpoint(path, model, optimizer, epoch, history, config):
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "rng": get_rng_state(), "epoch": epoch, "history": history, "config": asdict(config)}
    atomic_write_bytes(path, lambda f: torch.save(state, f))


RESUME_MAY_DIFFER = ("epochs", "device")


def run(config: TrainConfig, out_dir, resume: bool = False, progress: bool = True,
        on_epoch_end=None, predict_test: bool = False) -> dict:
    """Train, evaluating on dev after every epoch; returns the final metrics dict.
    `on_epoch_end(epoch, history)` is called after each epoch's files are written;
    `predict_test` also writes the CS224N test-output files (`write_predictions`)."""
    config = config.resolved()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.pt"
    seed_everything(config.seed)
    model, tokenizer = build_model(config)
    train_ex, dev_ex = load_examples(config)
    optimizer = make_optimizer(model, config)
    dev_loaders = {t: make_loader(ex, tokenizer, config, train=False) for t, ex in dev_ex.items()}
    train_loaders = {t: make_loader(ex, tokenizer, config, train=True) for t, ex in train_ex.items()}
    history, start, step = [], 0, 0
    if resume:
        if not ckpt_path.exists():
            raise FileNotFoundError(f"{ckpt_path}: nothing to resume from")
        ck = torch.load(ckpt_path, map_location=config.device, weights_only=True)
        saved = {k: v for k, v in ck["config"].items() if k not in RESUME_MAY_DIFFER}
        now = {k: v for k, v in json.loads(json.dumps(asdict(config))).items()
               if k not in RESUME_MAY_DIFFER}
        saved = json.loads(json.dumps(saved))
        if saved != now:
            diff = {k: (saved.get(k), now.get(k)) for k in set(saved) | set(now)
                    if saved.get(k) != now.get(k)}
            raise ValueError(f"{ckpt_path}: config differs from the checkpoint's "
                             f"(field: (checkpoint, now)): {diff}")
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        set_rng_state(ck["rng"])
        history, start = ck["history"], ck["epoch"]
        step = history[-1]["steps"] if history else 0
    preds = None
    for epoch in range(start, config.epochs):
        t0 = time.perf_counter()
        for loader in train_loaders.values():
            loader.sampler.set_epoch(epoch)
        train, conflict, step = train_epoch(model, optimizer, train_loaders, config, epoch, step,
                                            progress)
        dev, preds = evaluate(model, dev_loaders, config.device)
        entry = {"epoch": epoch + 1, "steps": step, "train": train, "dev": dev}
        if conflict is not None:
            entry["conflict"] = conflict
        entry["wall_time_s"] = time.perf_counter() - t0
        history.append(entry)
        save_checkpoint(ckpt_path, model, optimizer, epoch + 1, history, config)
        write_json(out / "history.json", history)
        if progress:
            print(f"epoch {epoch + 1}: " + ", ".join(
                f"{t} dev {m}={v:.3f}" for t, d in dev.items() for m, v in d.items())
                + f" ({entry['wall_time_s']:.0f} s)", flush=True)
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, history)
    if preds is None:  # resumed a finished run: score the dev set again
        dev, preds = evaluate(model, dev_loaders, config.device)
    else:
        dev = history[-1]["dev"]
    write_dev_predictions(out, preds)
    metrics = {"dev": dev, "epochs": len(history), "steps": step,
               "n_train": {t: len(ex) for t, ex in train_ex.items()},
               "n_dev": {t: len(ex) for t, ex in dev_ex.items()}, "config": asdict(config)}
    write_json(out / "metrics.json", metrics)
    if predict_test:
        write_predictions(model, tokenizer, config, out, "test")
    return metrics


def load_run(out_dir, device="cpu"):
    """-> (MultitaskBERT with the checkpoint's weights, tokenizer, TrainConfig)."""
    ck = torch.load(Path(out_dir) / "checkpoint.pt", map_location=device, weights_only=True)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    config = TrainConfig(**{k: v for k, v in ck["config"].items() if k in fields})
    config.tasks, config.device = tuple(config.tasks), device
    model, tokenizer = build_model(config)
    model.load_state_dict(ck["model"])
    return model.eval(), tokenizer, config


# --- command line -------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m minbert.train", description=__doc__.split("\n")[0])
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        typ = hints[f.name]
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        base = args[0] if args else typ
        if f.name == "tasks":
            p.add_argument(flag, "--task", nargs="+", choices=TASKS, default=())
        elif base is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default)
        else:
            p.add_argument(flag, type=base, default=f.default)
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--predict-test", action="store_true",
                   help="also write the CS224N *-test-output.csv files")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv=None):
    ns = vars(build_parser().parse_args(argv))
    out, resume = ns.pop("out"), ns.pop("resume")
    predict_test, progress = ns.pop("predict_test"), not ns.pop("no_progress")
    config = TrainConfig(**ns)
    metrics = run(config, out, resume=resume, progress=progress, predict_test=predict_test)
    print(json.dumps(metrics["dev"]))


if __name__ == "__main__":
    main()

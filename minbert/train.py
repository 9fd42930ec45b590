"""Training runs: single-task, round-robin multitask and PCGrad (notebooks 03, 04, 05).

    python -m minbert.train --mode multitask --out runs/rr --epochs 2 --pooling mean [--resume]

Modes (CS224N default project; Yu et al. 2020 for PCGrad):
  single     one task; one optimizer step per batch.
  multitask  round-robin: each round one batch of every task, one step per batch in turn.
  pcgrad     each round one batch per task, one forward per task, `pcgrad.pcgrad_backward`
             on the shared encoder, ONE step per round.
`encoder`: "finetune" (every weight trains) or "frozen" (the heads alone; frozen.py).

An epoch is R rounds (capped by `max_batches_per_task`), each epoch reshuffled (the order a
function of (seed, epoch)). schedule "shortest": R = the shortest loader, every task in every
round, none cycled: longer tasks see a new subset each epoch (notebook 04; PCGrad's zipped
loaders). "spread": R = the longest; a task of n batches steps in n evenly spaced rounds:
every batch once an epoch. Single-task is the case T = 1 (recorded as "shortest").

Gradient conflict (multitask and pcgrad, T > 1, encoder trained): per task pair, the share
of (full) rounds with g_i . g_j < 0 and the mean cosine (`pcgrad.ConflictLog`); round-robin
takes the T gradients one step apart. "train" metrics: those of the training batches as seen
(dropout on), free, where re-scoring the train set would cost an epoch of forwards.
Outputs in `out_dir` (each written atomically, minbert.files; out_dir=None writes nothing):
  checkpoint.pt  every epoch end (checkpoints.py; loads with weights_only=True).
  history.json   per point (`evals_per_epoch` per epoch; "epoch" 0.5, 1, ...): train loss +
                 metric of the batches since the last point, dev metric, conflict, wall time.
  metrics.json   final dev metrics + the config (no times: same seed -> same file).
  dev-predictions-{task}.tsv (id, pred, gold); {sst,para,sts}-{split}-output.csv (CS224N).
`run(..., resume=True)` continues from checkpoint.pt: a run killed after epoch k and resumed
ends with the same metrics and history (wall times aside) as one never killed.
`torchrun --nproc-per-node N -m minbert.train ...`: N ranks, batch_size per rank (distributed.py).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import data, predictions
from . import distributed as D
from .config import add_fields, check_choice, from_args
from .checkpoints import get_rng_state, resume_from, save_checkpoint, seed_everything
from .files import write_json
from .frozen import FeatureCache
from .heads import ENCODER_MODES, MultitaskBERT
from .metrics import EpochScores, check_finite
from .optimizer import LR_DECAYS, AdamW, decay_lr
from .pcgrad import REDUCTIONS, ConflictLog, GradientBuffer, pcgrad_backward
from .predictions import to_device
from .pretrained import load_pretrained

MODES = ("single", "multitask", "pcgrad")
SCHEDULES = ("shortest", "spread")
DEFAULT_LR = {"frozen": 1e-3, "finetune": 1e-5}


@dataclass
class TrainConfig:
    mode: str = "single"                 # single | multitask | pcgrad
    tasks: tuple = ()                    # () -> ("sst",) for single, all three otherwise
    encoder: str = "finetune"            # finetune | frozen (only the heads train)
    model: str = "minilm-l6"             # load_pretrained name or folder
    init_from: str | None = None         # HF folder (e.g. an MLM-continued encoder); wins over model
    data: str | None = None              # data folder; None -> $MINBERT_DATA
    epochs: int = 1
    batch_size: int = 32
    eval_batch_size: int = 64
    lr: float | None = None              # None -> 1e-3 (frozen) / 1e-5 (finetune)
    head_lr: float | None = None         # the heads' lr; None -> lr (model.param_groups)
    weight_decay: float = 0.0
    dropout: float = 0.1
    max_length: int = 64
    n_train: int | None = None           # train examples per task (None: all)
    n_dev: int | None = None             # dev examples per task (None: all)
    evals_per_epoch: int = 1             # dev evaluations (curve points) per epoch, the last at its end
    max_batches_per_task: int | None = None  # caps the rounds of an epoch
    schedule: str = "shortest"           # shortest | spread: the rounds of an epoch (above)
    lr_decay: str = "constant"           # constant | linear to 0 over the run (optimizer.decay_lr)
    seed: int = 0
    pcgrad_reduction: str = "sum"        # sum (paper) | mean (the seed's code)
    pair_mode: str = "joint"             # joint | separate (see heads.py)
    pooling: str = "pooler"              # pooler | mean: the vector the heads read
    sts_loss: str = "mse"                # mse | cosine_mse | cosine_embedding
    log_conflict: bool = True
    cache_frozen: bool = True            # frozen encoder: encode each example once (frozen.py)
    device: str = "cpu"

    def resolved(self) -> "TrainConfig":
        """Fill the defaults that depend on other fields, and validate."""
        c = dataclasses.replace(self)
        check_choice("mode", c.mode, MODES)
        check_choice("encoder", c.encoder, ENCODER_MODES)
        check_choice("pcgrad_reduction", c.pcgrad_reduction, REDUCTIONS)
        check_choice("schedule", c.schedule, SCHEDULES)
        check_choice("lr_decay", c.lr_decay, LR_DECAYS)
        c.tasks = tuple(c.tasks) or (("sst",) if c.mode == "single" else data.TASKS)
        if not set(c.tasks) <= set(data.TASKS) or len(set(c.tasks)) != len(c.tasks):
            raise ValueError(f"tasks must be distinct names from {data.TASKS}, got {c.tasks}")
        if c.mode == "single" and len(c.tasks) != 1:
            raise ValueError(f"mode 'single' trains one task, got {c.tasks}")
        c.schedule = "shortest" if len(c.tasks) == 1 else c.schedule  # one task: the same loop
        if c.mode == "pcgrad" and (c.encoder, c.schedule) != ("finetune", "shortest"):
            raise ValueError("pcgrad projects the encoder gradients of zipped loaders: it "
                             "needs encoder='finetune' and schedule='shortest'")
        if c.encoder == "frozen" and c.sts_loss != "mse" and "sts" in c.tasks:
            raise ValueError(f"sts_loss={c.sts_loss!r} trains the encoder only (no head): "
                             "it needs encoder='finetune'")
        c.lr = DEFAULT_LR[c.encoder] if c.lr is None else c.lr
        return c


# --- data and model -----------------------------------------------------------------
def load_examples(config: TrainConfig) -> tuple[dict, dict]:
    """-> ({task: train examples}, {task: dev examples}), subsets as the config asks."""
    root = data.data_dir(config.data)
    cap = lambda n, t: n.get(t) if isinstance(n, dict) else n  # noqa: E731 (per-task caps)
    train = {t: data.subset(data.load(t, "train", root), cap(config.n_train, t), seed=config.seed)
             for t in config.tasks}
    dev = {t: data.subset(data.load(t, "dev", root), cap(config.n_dev, t), seed=0)
           for t in config.tasks}
    return train, dev


def task_loaders(examples: dict, tokenizer, config: TrainConfig, *, train: bool) -> dict:
    """{task: data.make_loader(...)} with the config's batch size, length and pair mode.
    Train loaders shuffle with `config.seed`; `loader.sampler.set_epoch(e)` before epoch e
    makes the order a function of (seed, epoch) only, resumed or not."""
    size = config.batch_size if train else config.eval_batch_size
    return {t: data.make_loader(ex, tokenizer, size, shuffle=train, seed=config.seed,
                                max_length=config.max_length, pair_mode=config.pair_mode)
            for t, ex in examples.items()}


def build_model(config: TrainConfig, model_class=MultitaskBERT):
    """The encoder from config.model / init_from and the heads (model_class: a subclass of
    MultitaskBERT, e.g. notebook 07's variant with another loss)."""
    bert, tokenizer = load_pretrained(config.init_from or config.model)
    torch.manual_seed(config.seed)  # the heads' initialisation
    model = model_class(bert, **{k: getattr(config, k) for k in (
        "dropout", "encoder", "pair_mode", "sts_loss", "pooling")})
    return model.to(config.device), tokenizer


# --- training -------------------------------------------------------------------------
def epoch_rounds(batches: dict, config: TrainConfig) -> tuple[int, dict]:
    """-> (R, {task: its steps in the R rounds}) for loaders of `batches` batches (above)."""
    rounds = (max if config.schedule == "spread" else min)(batches.values())
    rounds = min(rounds, config.max_batches_per_task or rounds)
    return rounds, {t: min(n, rounds) for t, n in batches.items()}


def train_epoch(model, optimizer, loaders: dict, config: TrainConfig, epoch: int,
                step: int, progress=True, buffer: GradientBuffer | None = None,
                on_point=None, forward=None) -> int:
    """One epoch (module docstring); -> the step count. `on_point(epochs_done, train stats,
    conflict, step)` after each 1/evals_per_epoch of the rounds (stats: the batches since the
    last point; epochs_done e.g. 1.5). `buffer`: the task gradient rows (PCGrad, conflict log)."""
    forward = forward or D.wrap(model, config.mode)
    tasks = list(loaders)
    shared = [p for p in model.shared_parameters() if p.requires_grad]
    log = ConflictLog(shared, tasks, buffer) if (
        config.mode != "single" and len(tasks) > 1 and config.log_conflict and shared) else None
    seen = EpochScores(tasks)
    model.train()
    rounds, sizes = epoch_rounds({t: len(ld) for t, ld in loaders.items()}, config)
    n = max(1, min(config.evals_per_epoch, rounds))
    cuts = {-(-rounds * k // n) for k in range(1, n + 1)}  # the rounds that end a point
    iters = {t: iter(loaders[t]) for t in tasks}
    bar = tqdm(range(rounds), f"epoch {epoch + 1}/{config.epochs}", disable=not progress, leave=False)
    per_epoch = rounds if config.mode == "pcgrad" else sum(sizes.values())  # optimizer steps
    for r in bar:
        decay_lr(optimizer, config.lr_decay, step, per_epoch * config.epochs)  # once a round
        take = [t for t, k in sizes.items() if (r + 1) * k // rounds > r * k // rounds]
        batches = D.add_shares({t: to_device(next(iters[t]), config.device) for t in take})
        one_round = pcgrad_round if config.mode == "pcgrad" else round_robin_round
        step = one_round(model, forward, optimizer, batches, config, epoch, step, seen, log,
                         buffer)
        bar.set_postfix(seen.losses())
        if r + 1 in cuts and on_point is not None:
            done = epoch + (r + 1) / rounds
            on_point(int(done) if done == int(done) else round(done, 3),
                     D.gather_scores(seen).summary(), log.summary() if log else None, step)
            seen = EpochScores(tasks)
            if log:
                log.reset()
            model.train()  # on_point evaluated in eval mode
    bar.close()
    return step


def round_robin_round(model, forward, optimizer, batches, config, epoch, step, seen, log, buffer):
    """One optimizer step per task batch, tasks in turn; -> the step count. Under torchrun
    `forward` is DDP's: backward averages the gradients over ranks. Conflicts: full rounds."""
    log = log if log is not None and len(batches) == len(log.tasks) else None
    for i, (t, batch) in enumerate(batches.items()):
        optimizer.zero_grad(set_to_none=True)
        step += 1
        loss, out = forward(t, batch)
        check_finite(loss, t, step, epoch)
        loss.backward()
        if log:
            log.grab(i)  # task i's encoder gradient, before the step moves the encoder
        optimizer.step()
        seen.add(t, loss.item(), MultitaskBERT.decide(t, out), batch["labels"])
    if log:
        log.add()
    return step


def pcgrad_round(model, forward, optimizer, batches, config, epoch, step, seen, log, buffer):
    """One forward per task, the surgery on the shared encoder, ONE step; -> the step count.
    Under torchrun the task rows are averaged over ranks before the surgery, the heads after."""
    optimizer.zero_grad(set_to_none=True)
    step += 1
    losses = []
    for t, batch in batches.items():
        loss, out = forward(t, batch)
        check_finite(loss, t, step, epoch)
        seen.add(t, loss.item(), MultitaskBERT.decide(t, out), batch["labels"])
        losses.append(loss)
    shared = [p for p in model.shared_parameters() if p.requires_grad]
    stats = pcgrad_backward(losses, shared, reduction=config.pcgrad_reduction, buffer=buffer,
                            reduce_rows=D.mean_rows)
    D.mean_grads(model.parameters(), skip=shared)  # the heads' (the encoder's: in the rows)
    optimizer.step()
    if log:
        log.add(stats)
    return step


# none changes what was computed (but epochs under lr_decay "linear": the decay spans them)
RESUME_MAY_DIFFER = ("epochs", "device", "cache_frozen")


def setup(config: TrainConfig, model_class=MultitaskBERT):
    """Seed, model, optimizer, examples, loaders of a run (this rank's shards; frozen: cached)."""
    seed_everything(config.seed)
    model, tokenizer = build_model(config, model_class)
    train_ex, dev_ex = load_examples(config)
    optimizer = AdamW(model.param_groups(config.head_lr), lr=config.lr,  # the heads: head_lr
                      weight_decay=config.weight_decay)
    whole_dev = task_loaders(dev_ex, tokenizer, config, train=False)
    dev_loaders = D.shard(whole_dev, dev=True)
    train_loaders = D.shard(task_loaders(train_ex, tokenizer, config, train=True))
    if config.encoder == "frozen" and config.cache_frozen:
        cache = FeatureCache(model, config.device)
        train_loaders = {t: cache.loader(t, ld) for t, ld in train_loaders.items()}
        dev_loaders = {t: cache.loader(t, ld) for t, ld in dev_loaders.items()}
    whole_dev = dev_loaders if D.world_size() == 1 else whole_dev  # on_finish's, rank 0's
    return model, tokenizer, optimizer, (train_ex, dev_ex), (train_loaders, dev_loaders, whole_dev)


def run(config: TrainConfig, out_dir=None, resume: bool = False, progress: bool = True,
        on_epoch_end=None, on_finish=None, predict_test: bool = False,
        model_class=MultitaskBERT) -> dict:
    """Train, evaluating on dev `evals_per_epoch` times an epoch; -> the final metrics (as in
    metrics.json). `on_epoch_end(epoch, history)` runs after each epoch's files, `on_finish(
    model, dev_loaders, dev_examples)` once with the final weights; `predict_test`: the CS224N
    test files too; `model_class`: see build_model. Under torchrun every rank trains its shard
    and scores dev (gathered); rank 0 alone writes, and calls on_finish (whole dev set)."""
    config = config.resolved()
    out = Path(out_dir) if out_dir is not None and D.is_main() else None  # rank 0 writes
    model, tokenizer, optimizer, (train_ex, dev_ex), (train_loaders, dev_loaders, whole_dev) = \
        setup(config, model_class)
    ck = asdict(config) | ({"world_size": D.world_size()} if D.world_size() > 1 else {})
    may_differ = [k for k in RESUME_MAY_DIFFER if k != "epochs" or config.lr_decay == "constant"]
    history, start = resume_from(Path(out_dir) / "checkpoint.pt", model, optimizer, ck,
                                 may_differ, config.device, D.rank()) if resume else ([], 0)
    step, buffer = (history[-1]["steps"] if history else 0), GradientBuffer()
    forward, progress = D.wrap(model, config.mode), progress and D.is_main()
    curve = predictions.DevCurve(model, dev_loaders, config.device, history, progress, D.evaluate)
    for epoch in range(start, config.epochs):
        for loader in train_loaders.values():
            loader.sampler.set_epoch(epoch)
        step = train_epoch(model, optimizer, train_loaders, config, epoch, step, progress,
                           buffer, on_point=curve, forward=forward)
        rng = D.all_gather(get_rng_state())  # every rank's generators: resume continues each
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            save_checkpoint(out / "checkpoint.pt", model, optimizer, epoch + 1, history, ck, rng)
            write_json(out / "history.json", history)
        D.barrier()  # the files are there for every rank
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, history)
    dev, preds = history[-1]["dev"] if history else None, curve.preds
    if preds is None:  # resumed a finished run (or epochs=0): score the dev set again
        dev, preds = D.evaluate(model, dev_loaders, config.device)
    metrics = {"dev": dev, "epochs": history[-1]["epoch"] if history else 0, "steps": step,
               "n_train": {t: len(ex) for t, ex in train_ex.items()},
               "n_dev": {t: len(ex) for t, ex in dev_ex.items()}, "config": asdict(config),
               **D.run_info(config.batch_size)}
    if out is not None:
        predictions.write_dev_predictions(out, preds)
        write_json(out / "metrics.json", metrics)
        if predict_test:
            predictions.write_predictions(model, tokenizer, config, out, "test")
    if on_finish is not None and D.is_main():
        on_finish(model, whole_dev, dev_ex)
    D.barrier()  # e.g. experiments reads history.json on every rank
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
    add_fields(p, TrainConfig, aliases={"tasks": ["--task"]},
               choices={"tasks": data.TASKS, "mode": MODES, "encoder": ENCODER_MODES,
                        "schedule": SCHEDULES, "lr_decay": LR_DECAYS})
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--predict-test", action="store_true", help="also write CS224N test files")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv=None):
    a = build_parser().parse_args(argv)
    metrics = run(from_args(TrainConfig, a), a.out, resume=a.resume, progress=not a.no_progress,
                  predict_test=a.predict_test)
    if D.is_main():
        print(json.dumps(metrics["dev"]))


if __name__ == "__main__":
    main()

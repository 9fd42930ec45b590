"""A training run from a config: the model, the data, the trainer, the files (notebooks 03-05).

    python -m minbert.train --out runs/rr                      # the course baseline, all 3 tasks
    python -m minbert.train --out runs/sst --mode single --task sst --epochs 1 --n-train 2000
    python -m minbert.train --out runs/seed --recipe seed      # the seed report's settings

    metrics = run(TrainConfig(mode="pcgrad", schedule="shortest"), "runs/pc")   # in Python
    r = prepare(config, model=my_model); metrics = r.train("runs/mine"); r.history

`prepare` builds what a run needs (the encoder and heads unless the caller gives a model, the
examples, the loaders); `Run.train` hands them to `trainer.Trainer` (the loop: modes,
schedules, PCGrad, conflicts) with the callbacks that score dev (predictions.DevCurve) and
make the run resumable (checkpoints.Checkpointer), then writes the run folder:
  checkpoint.pt  every epoch end; at the end the final weights without the optimizer's state
                 (keep_optimizer=True keeps it, so the run can be continued for more epochs).
  history.json   per point (`evals_per_epoch` per epoch; "epoch" 0.5, 1, ...): train loss +
                 metric of the batches since the last point, dev metric, conflict, wall time.
  metrics.json   final dev metrics + the config (no times: same seed -> same file).
  dev-predictions-{task}.tsv (id, pred, gold); {sst,para,sts}-test-output.csv (CS224N).
`resume=True` continues from checkpoint.pt: a run killed after epoch k and resumed ends with
the same metrics and history (wall times aside) as one never killed. Under `torchrun
--nproc-per-node N -m minbert.train ...`: N ranks, batch_size per rank (distributed.py).
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import torch

from . import data, predictions
from .checkpoints import Checkpointer, seed_everything
from .config import add_fields, check_choice, from_args, one_line_warnings
from .distributed import strategy
from .files import write_json
from .frozen import FeatureCache
from .heads import ENCODER_MODES, POOLINGS, STS_LOSSES, MultitaskBERT
from .optimizer import LR_DECAYS
from .pcgrad import REDUCTIONS
from .pretrained import load_pretrained, load_tokenizer, resolve
from .trainer import MODES, SCHEDULES, Trainer

DEFAULT_LR = {"frozen": 1e-3, "finetune": 5e-5}


@dataclass
class TrainConfig:
    """Defaults: the course baseline (benchmarks/README.md); RECIPES["seed"]: the seed's."""
    mode: str = "multitask"              # single (one task) | multitask (round-robin) | pcgrad
    tasks: tuple = ()                    # () -> sst for mode single, all three otherwise
    encoder: str = "finetune"            # finetune (every weight trains) | frozen (heads only)
    model: str = "minilm-l6"             # the encoder: a load_pretrained name or folder
    init_from: str | None = None         # an HF folder that wins over model (an MLM-continued encoder)
    data: str | None = None              # the data folder; none -> $MINBERT_DATA
    epochs: int = 2                      # passes over the training data
    batch_size: int = 32                 # per task batch (per rank under torchrun)
    eval_batch_size: int = 64            # batch size for dev and test predictions
    lr: float | None = None              # none -> 5e-5 (finetune) or 1e-3 (frozen)
    head_lr: float | None = 1e-3         # the heads' lr; none -> lr
    weight_decay: float = 0.0            # AdamW's decoupled weight decay
    head_dropout: float = 0.1            # dropout on the vector each head reads
    encoder_dropout: float | None = None  # the encoder's dropout; none -> its checkpoint's (0.1)
    max_length: int = 64                 # tokens per sentence (pair: per joint pair)
    n_train: int | None = None           # train examples per task (none: all)
    n_dev: int | None = None             # dev examples per task (none: all)
    evals_per_epoch: int = 2             # dev evaluations (curve points) per epoch
    max_batches_per_task: int | None = None  # caps the rounds of an epoch (none: no cap)
    schedule: str = "spread"             # spread (every batch once an epoch) | shortest (zipped)
    lr_decay: str = "linear"             # linear (to 0 over the run) | constant
    seed: int = 0                        # the heads' init, dropout, the order of the data
    pcgrad_reduction: str = "sum"        # sum (the paper) | mean (the seed's code)
    pair_mode: str = "separate"          # separate (Sentence-BERT) | joint ([CLS] a [SEP] b)
    pooling: str = "mean"                # mean (of the tokens) | pooler (tanh W h_CLS)
    sts_loss: str = "mse"                # mse | cosine_mse | cosine_embedding (notebook 07)
    log_conflict: bool = True            # log the task gradients' conflicts
    cache_frozen: bool = True            # frozen encoder: encode each example once
    device: str = "cpu"                 # cpu | cuda (torchrun: each rank its own GPU)
    # a stored config (checkpoint, result JSON) made before a field existed ran with its value
    # here (the defaults before the course baseline became them); `dropout` is head_dropout
    LEGACY: ClassVar[dict] = dict(
        mode="single", epochs=1, head_lr=None, evals_per_epoch=1, schedule="shortest",
        lr_decay="constant", pair_mode="joint", pooling="pooler", encoder_dropout=None)
    RENAMED: ClassVar[dict] = {"dropout": "head_dropout"}

    @classmethod
    def from_dict(cls, stored: dict) -> "TrainConfig":
        """A config as a checkpoint or result JSON stored it (older field names too)."""
        names = {f.name for f in dataclasses.fields(cls)}
        d = cls.LEGACY | {cls.RENAMED.get(k, k): v for k, v in stored.items()}
        c = cls(**{k: v for k, v in d.items() if k in names})
        c.tasks = tuple(c.tasks)
        return c

    def resolved(self) -> "TrainConfig":
        """Fill the defaults that depend on other fields, and validate."""
        c = dataclasses.replace(self)
        for name, choices in CHOICES.items():
            if name != "tasks":
                check_choice(name, getattr(c, name), choices)
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


CHOICES = {"tasks": data.TASKS, "mode": MODES, "encoder": ENCODER_MODES, "schedule": SCHEDULES,
           "lr_decay": LR_DECAYS, "pcgrad_reduction": REDUCTIONS, "pair_mode": data.PAIR_MODES,
           "pooling": POOLINGS, "sts_loss": STS_LOSSES}
# The seed report's training settings (CS224N defaults; its heads at the encoder's lr): row 14.
RECIPES = {"course": {}, "seed": dict(batch_size=8, head_dropout=0.3, lr=1e-5, head_lr=None,
                                      pooling="pooler", pair_mode="joint", schedule="shortest",
                                      lr_decay="constant")}
# none changes what was computed (but epochs under lr_decay "linear": the decay spans them)
RESUME_MAY_DIFFER = ("epochs", "device", "cache_frozen")


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
    """The encoder from config.model / init_from (its dropout set to encoder_dropout if
    given) and the heads (model_class: a subclass of MultitaskBERT, e.g. notebook 07's)."""
    p = config.encoder_dropout
    bert, tokenizer = load_pretrained(config.init_from or config.model, **(
        {} if p is None else dict(hidden_dropout_prob=p, attention_probs_dropout_prob=p)))
    torch.manual_seed(config.seed)  # the heads' initialisation
    model = model_class(bert, dropout=config.head_dropout, **{k: getattr(config, k) for k in (
        "encoder", "pair_mode", "sts_loss", "pooling")})
    return model.to(config.device), tokenizer


# --- the run ------------------------------------------------------------------------
@dataclass
class Run:
    """What a run trains on (`prepare`); `train` trains it."""
    config: TrainConfig
    model: torch.nn.Module
    tokenizer: object
    examples: tuple                     # ({task: train examples}, {task: dev examples})
    loaders: tuple                      # (train, dev: this rank's shards; whole dev: rank 0's)
    history: list = dataclasses.field(default_factory=list)  # the points, once trained

    def train(self, out_dir=None, *, resume=False, progress=True, callbacks=(),
              predict_test=False, keep_optimizer=False) -> dict:
        """Train, evaluating on dev `evals_per_epoch` times an epoch; -> the final metrics (as
        in metrics.json). `callbacks`: more of the trainer's (trainer.py), after the run's
        own; `predict_test`: the CS224N test files too. Under torchrun every rank trains its
        shard and scores dev (gathered); rank 0 alone writes."""
        c, st = self.config, strategy()
        (train_loaders, dev_loaders, _), out = self.loaders, out_dir and Path(out_dir)
        curve = predictions.DevCurve(dev_loaders, c.device, st.gather_predictions)
        saver = Checkpointer(out, asdict(c) | ({"world_size": st.world_size}
                                               if st.world_size > 1 else {}), keep_optimizer)
        trainer = Trainer(self.model, train_loaders, c, strategy=st,
                          callbacks=[curve, saver, *callbacks])
        if resume:
            saver.resume(trainer, [k for k in RESUME_MAY_DIFFER
                                   if k != "epochs" or c.lr_decay == "constant"])
        trainer.progress = progress and st.is_main
        state = trainer.fit()
        self.history = state.history
        dev, preds = (state.history[-1]["dev"] if state.history else None), curve.preds
        if preds is None:  # resumed a finished run (or epochs=0): score the dev set again
            dev, preds = predictions.evaluate(self.model, dev_loaders, c.device,
                                              st.gather_predictions)
        metrics = {"dev": dev, "epochs": state.history[-1]["epoch"] if state.history else 0,
                   "steps": state.step, "n_train": {t: len(e) for t, e in self.examples[0].items()},
                   "n_dev": {t: len(e) for t, e in self.examples[1].items()},
                   "config": asdict(c), **st.run_info(c.batch_size)}
        if out is not None and st.is_main:
            self.write(out, metrics, preds, predict_test)
        st.barrier()  # e.g. experiments reads history.json on every rank
        return metrics

    def write(self, out: Path, metrics: dict, preds: dict, predict_test: bool):
        predictions.write_dev_predictions(out, preds)
        write_json(out / "metrics.json", metrics)
        if predict_test:
            predictions.write_predictions(self.model, self.tokenizer, self.config, out, "test")


def prepare(config: TrainConfig, model=None, model_class=MultitaskBERT) -> Run:
    """Seed; the model (built from the config, or the caller's: any nn.Module with the heads'
    interface, already on config.device, reading config.model's tokenizer); the examples;
    the loaders (this rank's shards; frozen encoder: cached features)."""
    config, st = config.resolved(), strategy()
    seed_everything(config.seed)
    if model is None:
        model, tokenizer = build_model(config, model_class)
    else:
        tokenizer = load_tokenizer(resolve(str(config.init_from or config.model)))
    train_ex, dev_ex = load_examples(config)
    whole_dev = task_loaders(dev_ex, tokenizer, config, train=False)
    dev_loaders = st.shard(whole_dev, dev=True)
    train_loaders = st.shard(task_loaders(train_ex, tokenizer, config, train=True))
    if config.encoder == "frozen" and config.cache_frozen:
        cache = FeatureCache(model, config.device)
        train_loaders = {t: cache.loader(t, ld) for t, ld in train_loaders.items()}
        dev_loaders = {t: cache.loader(t, ld) for t, ld in dev_loaders.items()}
    whole_dev = dev_loaders if st.world_size == 1 else whole_dev  # what rank 0 predicts
    return Run(config, model, tokenizer, (train_ex, dev_ex), (train_loaders, dev_loaders, whole_dev))


def run(config: TrainConfig, out_dir=None, **options) -> dict:
    """prepare(config).train(out_dir, **options): the final dev metrics."""
    return prepare(config).train(out_dir, **options)


def load_run(out_dir, device="cpu"):
    """-> (MultitaskBERT with the checkpoint's weights, tokenizer, TrainConfig)."""
    ck = torch.load(Path(out_dir) / "checkpoint.pt", map_location=device, weights_only=True)
    config = dataclasses.replace(TrainConfig.from_dict(ck["config"]), device=device)
    model, tokenizer = build_model(config)
    model.load_state_dict(ck["model"])
    return model.eval(), tokenizer, config


# --- command line -------------------------------------------------------------------
EPILOG = """examples:
  python -m minbert.train --out runs/baseline
  python -m minbert.train --out runs/pcgrad --mode pcgrad --schedule shortest --epochs 1"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m minbert.train", epilog=EPILOG,
                                description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--recipe", choices=sorted(RECIPES), default="course",
                   help="the defaults below; seed: the seed report's settings ("
                   + ", ".join(f"{k}={v}" for k, v in RECIPES["seed"].items())
                   + "); options given still win")
    add_fields(p, TrainConfig, aliases={"tasks": ["--task"]}, choices=CHOICES)
    p.add_argument("--out", required=True, help="the run folder (files: see the module doc)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--keep-optimizer", action="store_true",
                   help="keep the optimizer's state in the final checkpoint (3x the size), so "
                   "that the run can be continued for more epochs")
    p.add_argument("--predict-test", action="store_true", help="also write CS224N test files")
    p.add_argument("--threads", type=int, default=None, help="torch threads (none: torch's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar, no point lines")
    return p


def format_metrics(dev: dict) -> str:
    """{task: {metric: value}} as a short aligned table, 4 decimals."""
    rows = [(t, m, f"{v:.4f}") for t, ms in dev.items() for m, v in ms.items()]
    return "\n".join(f"{t:<6} {m:<8} {v:>7}" for t, m, v in [("task", "metric", "dev"), *rows])


def main(argv=None):
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--recipe", choices=sorted(RECIPES), default="course")
    parser = build_parser()
    parser.set_defaults(**RECIPES[pre.parse_known_args(argv)[0].recipe])
    a = parser.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    with one_line_warnings():
        metrics = run(from_args(TrainConfig, a), a.out, resume=a.resume, predict_test=a.predict_test,
                      progress=not a.no_progress, keep_optimizer=a.keep_optimizer)
    if strategy().is_main:
        print(format_metrics(metrics["dev"]))
        print(f"wrote {a.out}/: metrics.json, history.json, dev-predictions-*.tsv, checkpoint.pt")


if __name__ == "__main__":
    main()

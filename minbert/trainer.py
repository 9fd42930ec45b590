"""The training loop and nothing else (minGPT's trainer.py): a model, its task loaders, a config.

    trainer = Trainer(model, {"sst": loader, "sts": loader}, TrainerConfig(mode="multitask"))
    state = trainer.fit()             # State: epochs done, optimizer steps, history

The model is any nn.Module with the heads' interface (heads.MultitaskBERT has it, whatever
encoder sits under it; so does mlm_head.BertForMLM):
  forward_loss(task, batch) -> (scalar loss, raw output)   what a step trains
  decide(task, output) -> predictions                       optional: the metric of the
                                                            training batches as seen
  shared_parameters() -> what every task updates            PCGrad and the conflict log
  param_groups(head_lr) -> optimizer groups                 optional: the default AdamW
The loop knows nothing of BERT, tokens or files. Evaluation, checkpoints and the history file
are callbacks that live with their idea (predictions.DevCurve, checkpoints.Checkpointer);
several processes are one strategy object (distributed.strategy()) whose single-process
version does nothing. A callback is any object with some of these methods:
  on_point(trainer, point)   after each 1/evals_per_epoch of an epoch; may add to `point`
                             (DevCurve adds "dev") before it joins state.history
  on_epoch_end(trainer)      after each epoch (Checkpointer writes here)
  on_step(trainer, task, loss)   after each optimizer step
  on_fit_end(trainer)        once, with the final weights

Modes (CS224N default project; Yu et al. 2020 for PCGrad):
  single     one task; one optimizer step per batch.
  multitask  round-robin: each round one batch of every task, one step per batch in turn.
  pcgrad     each round one batch per task, one forward per task, `pcgrad.pcgrad_backward`
             on the shared parameters, ONE step per round.
An epoch is R rounds (capped by `max_batches_per_task`). schedule "shortest": R = the shortest
loader, every task in every round: longer tasks see a new subset each epoch (notebook 04;
PCGrad's zipped loaders). "spread": R = the longest; a task of n batches steps in n evenly
spaced rounds: every batch once an epoch. A batch may be a list of micro-batches: their
gradients add up before the one step (gradient accumulation; the model scales each loss).
Conflict (multitask and pcgrad, T > 1): per task pair, the share of full rounds with
g_i . g_j < 0 and the mean cosine (`pcgrad.ConflictLog`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from .distributed import SingleProcess
from .metrics import EpochScores, check_finite
from .optimizer import AdamW, decay_lr
from .pcgrad import ConflictLog, GradientBuffer, pcgrad_backward

MODES = ("single", "multitask", "pcgrad")
SCHEDULES = ("shortest", "spread")


@dataclass
class TrainerConfig:
    """What the loop reads; a resolved train.TrainConfig has every field here but max_steps."""
    mode: str = "multitask"              # single | multitask | pcgrad
    epochs: int = 1
    schedule: str = "spread"             # shortest | spread: the rounds of an epoch
    max_batches_per_task: int | None = None  # caps the rounds of an epoch
    max_steps: int | None = None         # stop after this many optimizer steps
    evals_per_epoch: int = 1             # points (on_point) per epoch, the last at its end
    lr: float = 5e-5                     # the default optimizer's
    head_lr: float | None = None         # its heads' lr (model.param_groups); None -> lr
    weight_decay: float = 0.0
    lr_decay: str = "constant"           # constant | linear to 0 over the run
    pcgrad_reduction: str = "sum"        # sum (paper) | mean (the seed's code)
    log_conflict: bool = True
    device: str = "cpu"


@dataclass
class State:
    """Where a run is: what a checkpoint restores and the history files hold."""
    epoch: int = 0                       # epochs finished
    step: int = 0                        # optimizer steps taken
    history: list = field(default_factory=list)  # one dict per point


def to_device(batch, device):
    """A batch (dict of tensors and lists), or a list of micro-batches, on `device`."""
    if isinstance(batch, list):
        return [to_device(b, device) for b in batch]
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def epoch_rounds(batches: dict, schedule: str, cap: int | None = None) -> tuple[int, dict]:
    """-> (R, {task: its steps in the R rounds}) for loaders of `batches` batches (above)."""
    rounds = (max if schedule == "spread" else min)(batches.values())
    rounds = min(rounds, cap or rounds)
    return rounds, {t: min(n, rounds) for t, n in batches.items()}


def default_optimizer(model, config) -> AdamW:
    """minbert's AdamW over model.param_groups(head_lr), or every trainable parameter."""
    groups = (model.param_groups(config.head_lr) if hasattr(model, "param_groups")
              else [p for p in model.parameters() if p.requires_grad])
    return AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)


class Trainer:
    """model + {task: loader} + config (+ optimizer, strategy, callbacks) -> fit()."""

    def __init__(self, model, loaders: dict, config, optimizer=None, strategy=None,
                 callbacks=()):
        self.model, self.loaders, self.config = model, loaders, config
        self.optimizer = optimizer or default_optimizer(model, config)
        self.strategy = strategy or SingleProcess()
        self.callbacks, self.state = list(callbacks), State()
        self.progress = False             # a tqdm bar of steps, and a line per point
        self.buffer = GradientBuffer()    # PCGrad's and the conflict log's task rows

    def fire(self, event: str, *args):
        for cb in self.callbacks:
            if hasattr(cb, event):
                getattr(cb, event)(self, *args)

    def done(self) -> bool:
        cap = getattr(self.config, "max_steps", None)
        return cap is not None and self.state.step >= cap

    def fit(self) -> State:
        """Train from state.epoch to config.epochs (or max_steps); -> the state."""
        self.forward = self.strategy.wrap(self.model, self.config.mode)  # -> (loss, out)
        self.t_point = time.perf_counter()
        for epoch in range(self.state.epoch, self.config.epochs):
            for loader in self.loaders.values():  # the order: a function of (seed, epoch)
                order = getattr(loader, "sampler", loader)
                if hasattr(order, "set_epoch"):
                    order.set_epoch(epoch)
            self.run_epoch(epoch)
            if self.done():
                break
            self.state.epoch = epoch + 1
            self.fire("on_epoch_end")
        self.fire("on_fit_end")
        return self.state

    def new_point(self):
        """Fresh statistics of the training batches (and conflicts) for the next point."""
        tasks = list(self.loaders)
        shared = [p for p in self.model.shared_parameters() if p.requires_grad] if (
            self.config.mode != "single" and len(tasks) > 1 and self.config.log_conflict) else []
        self.seen = EpochScores(tasks)
        self.log = ConflictLog(shared, tasks, self.buffer) if shared else None

    def run_epoch(self, epoch: int):
        c, s = self.config, self.state
        rounds, sizes = epoch_rounds({t: len(ld) for t, ld in self.loaders.items()},
                                     c.schedule, c.max_batches_per_task)
        n = max(1, min(c.evals_per_epoch, rounds))
        cuts = {-(-rounds * k // n) for k in range(1, n + 1)}  # the rounds that end a point
        per_epoch = rounds if c.mode == "pcgrad" else sum(sizes.values())  # optimizer steps
        iters = {t: iter(ld) for t, ld in self.loaders.items()}
        self.new_point()
        self.model.train()
        bar = tqdm(total=per_epoch, desc=f"epoch {epoch + 1}/{c.epochs}", unit="step",
                   disable=not self.progress, leave=False)
        for r in range(rounds):
            decay_lr(self.optimizer, c.lr_decay, s.step, per_epoch * c.epochs)  # once a round
            take = [t for t, k in sizes.items() if (r + 1) * k // rounds > r * k // rounds]
            batches = self.strategy.add_shares(
                {t: to_device(next(iters[t]), c.device) for t in take})
            before = s.step
            (self.pcgrad_round if c.mode == "pcgrad" else self.round_robin_round)(batches, epoch)
            bar.update(s.step - before)
            bar.set_postfix(self.seen.losses())
            if r + 1 in cuts:
                self.end_point(epoch + (r + 1) / rounds)
            if self.done():
                break
        bar.close()

    def train_on(self, task, batch, epoch) -> list:
        """Forward (and, for the single / multitask modes, backward) one batch or each of its
        micro-batches; -> the losses. The batch's statistics go to self.seen."""
        losses = []
        for micro in batch if isinstance(batch, list) else [batch]:
            loss, out = self.forward(task, micro)
            check_finite(loss, task, self.state.step, epoch)
            if self.config.mode != "pcgrad":
                loss.backward()
            decide = getattr(self.model, "decide", None)
            self.seen.add(task, loss.item(), *((decide(task, out), micro["labels"])
                                               if decide and "labels" in micro else ()))
            losses.append(loss)
        return losses

    def round_robin_round(self, batches: dict, epoch: int):
        """One optimizer step per task batch, tasks in turn. Under torchrun `forward` is
        DDP's: backward averages the gradients over ranks. Conflicts: full rounds only."""
        log = self.log if self.log is not None and len(batches) == len(self.log.tasks) else None
        for i, (t, batch) in enumerate(batches.items()):
            self.optimizer.zero_grad(set_to_none=True)
            self.state.step += 1
            losses = self.train_on(t, batch, epoch)
            if log:
                log.grab(i)  # task i's shared gradient, before the step moves the encoder
            self.optimizer.step()
            self.fire("on_step", t, sum(loss.item() for loss in losses))
        if log:
            log.add()

    def pcgrad_round(self, batches: dict, epoch: int):
        """One forward per task, the surgery on the shared parameters, ONE step. Under
        torchrun the task rows are averaged over ranks before the surgery, the heads after."""
        self.optimizer.zero_grad(set_to_none=True)
        self.state.step += 1
        losses = [loss for t, b in batches.items() for loss in self.train_on(t, b, epoch)]
        shared = [p for p in self.model.shared_parameters() if p.requires_grad]
        stats = pcgrad_backward(losses, shared, reduction=self.config.pcgrad_reduction,
                                buffer=self.buffer, reduce_rows=self.strategy.mean_rows)
        self.strategy.mean_grads(self.model.parameters(), skip=shared)  # the heads'
        self.optimizer.step()
        self.fire("on_step", "+".join(batches), sum(loss.item() for loss in losses))
        if self.log:
            self.log.add(stats)

    def end_point(self, done: float):
        """One point of the curves: the batches' statistics since the last one, what the
        callbacks add (dev metrics), conflicts, wall time since the last point."""
        point = {"epoch": int(done) if done == int(done) else round(done, 3),
                 "steps": self.state.step,
                 "train": self.strategy.gather_scores(self.seen).summary()}
        self.fire("on_point", point)
        if self.log:
            point["conflict"] = self.log.summary()
        point["wall_time_s"] = time.perf_counter() - self.t_point
        self.state.history.append(point)
        self.t_point = time.perf_counter()
        if self.progress and self.strategy.is_main:
            tqdm.write(describe(point))  # above the progress bar, not through it
        self.new_point()
        self.model.train()  # the callbacks evaluated in eval mode


def describe(point: dict) -> str:
    """One line of a point: 'epoch 1.5  step 120  train sst loss 1.234 acc 0.412 | dev ...'."""
    def part(name):
        return " ".join(f"{t} " + " ".join(f"{k} {v:.3f}" for k, v in m.items() if k != "batches")
                        for t, m in point.get(name, {}).items())
    return (f"epoch {point['epoch']}  step {point['steps']}  train {part('train')}"
            + (f" | dev {part('dev')}" if "dev" in point else "")
            + f"  ({point['wall_time_s']:.0f} s)")

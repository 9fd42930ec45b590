"""The scores of the three tasks, and the two ways to sum them up (notebooks 03-05, 08).

    SST-5   accuracy of the argmax class
    Quora   accuracy of sigmoid(logit) > 0.5
    STS-B   Pearson r between predicted and gold similarity (scipy.stats.pearsonr)

Summaries of one row of the results table: the seed report's "Average" is the simple mean
of (SST acc, Quora acc, STS r); the CS224N leaderboard's overall score maps r from [-1, 1]
to [0, 1] first: (SST + Quora + (STS + 1) / 2) / 3. Training batches: `EpochScores` (the
"train" numbers of the curves) and `check_finite` (the guard on every task loss).
"""
from __future__ import annotations

import math

import numpy as np
from scipy.stats import pearsonr

from .data import TASKS

METRIC = {"sst": "acc", "quora": "acc", "sts": "pearson"}  # the task -> metric map
assert tuple(METRIC) == TASKS


def accuracy(pred, gold) -> float:
    pred, gold = np.asarray(pred), np.asarray(gold)
    return float((pred == gold).mean()) if len(gold) else 0.0


def pearson(pred, gold) -> float:
    """Pearson r; 0.0 when either side is constant (r is undefined there, and a model that
    predicts one score for every pair has learned nothing to correlate)."""
    pred, gold = np.asarray(pred, dtype=np.float64), np.asarray(gold, dtype=np.float64)
    if len(pred) < 2 or np.ptp(pred) == 0 or np.ptp(gold) == 0:
        return 0.0
    return float(pearsonr(pred, gold)[0])


def metric(task, pred, gold) -> float:
    """The task's metric (METRIC[task]) of predictions against gold labels."""
    return pearson(pred, gold) if task == "sts" else accuracy(pred, gold)


def simple_mean(sst, quora, sts):
    """The seed report's "Average": (SST acc + Quora acc + STS r) / 3."""
    return (sst + quora + sts) / 3


def overall(sst, quora, sts):
    """CS224N's overall score: the mean of SST acc, Quora acc and (STS r + 1) / 2."""
    return (sst + quora + (sts + 1) / 2) / 3


class EpochScores:
    """Loss and metric of the training batches of one epoch, per task (train.py's "train"
    numbers: the outputs of the training forward passes, dropout on, at no extra cost)."""

    def __init__(self, tasks):
        self.s = {t: {"loss": 0.0, "n": 0, "pred": [], "gold": []} for t in tasks}

    def add(self, task, loss: float, pred=None, gold=None):
        """One batch; without pred and gold (a model with no `decide`) its loss alone."""
        s = self.s[task]
        s["loss"] += loss
        s["n"] += 1
        if pred is not None:
            s["pred"].extend(pred.cpu().tolist())
            s["gold"].extend(gold.cpu().tolist())

    def losses(self) -> dict:
        return {t: f"{s['loss'] / max(s['n'], 1):.3f}" for t, s in self.s.items()}

    def summary(self) -> dict:
        """Per task with batches (schedule 'spread': a task may have none between two points)."""
        return {t: {"loss": s["loss"] / s["n"],
                    **({METRIC[t]: metric(t, s["pred"], s["gold"])} if s["pred"] else {}),
                    "batches": s["n"]} for t, s in self.s.items() if s["n"]}


def check_finite(loss, task, step, epoch):
    if not math.isfinite(loss.item()):
        raise FloatingPointError(
            f"non-finite loss ({loss.item()}) for task {task!r} at step {step} "
            f"(epoch {epoch + 1}); the run stops here, the last checkpoint is the previous "
            "epoch's. Lower the learning rate or check the data.")

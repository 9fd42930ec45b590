"""What a trained model says about a split, and the three files that keep it.

    predict_loader(model, task, loader)      -> ids, predictions, golds (eval mode, no grad)
    evaluate(model, {task: loader})          -> dev metrics and the predictions behind them
    DevCurve(loaders, device)                the trainer's callback: dev metrics at each point
    write_dev_predictions(out_dir, preds)    dev-predictions-{task}.tsv: id, pred, gold
    write_cs224n(path, task, ids, preds)     the CS224N leaderboard file of one task
    write_predictions(model, tok, config, out_dir, split)   those files for every task of a run
    records(model, task, loader, examples)   every prediction with its sentences, gold label
                                             and confidence (the result JSONs, error analysis)

Predictions are decided in one place, `MultitaskBERT.decide` / `.confidence` (heads.py).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch

from . import data
from .files import write_text
from .heads import MultitaskBERT
from .metrics import METRIC, metric
from .trainer import to_device

# CS224N starter (multitask_classifier.py, test_multitask): file prefix and header column.
CS224N_OUTPUT = {"sst": ("sst", "Predicted_Sentiment"),
                 "quora": ("para", "Predicted_Is_Paraphrase"),
                 "sts": ("sts", "Predicted_Similiarity")}  # sic: the starter's spelling


@torch.no_grad()
def predict_loader(model, task, loader, device="cpu"):
    """-> (ids, predictions, golds or None) over a whole loader, in eval mode."""
    model.eval()
    ids, preds, golds = [], [], []
    for batch in loader:
        ids.extend(batch["ids"])
        preds.extend(model.predict(task, to_device(batch, device)).cpu().tolist())
        if "labels" in batch:
            golds.extend(batch["labels"].tolist())
    return ids, preds, (golds if golds else None)


def evaluate(model, loaders: dict, device="cpu", gather=None) -> tuple[dict, dict]:
    """-> ({task: {metric: value}}, {task: (ids, preds, golds)}). `gather`: a strategy's
    gather_predictions, where each rank predicts a shard of the dev set (distributed.py)."""
    scores, preds = {}, {}
    for t, loader in loaders.items():
        ids, p, g = predict_loader(model, t, loader, device)
        if gather is not None:
            ids, p, g = gather(ids, p, g)
        scores[t] = {METRIC[t]: metric(t, p, g)}
        preds[t] = (ids, p, g)
    return scores, preds


class DevCurve:
    """The trainer's callback that scores the dev loaders at each point (the dev half of
    the train-vs-dev curves); `preds` keeps the last point's predictions (at the end: the
    final weights'). Scoring leaves the random state as it was, so the number of points
    does not change the run."""

    def __init__(self, dev_loaders: dict, device="cpu", gather=None):
        self.loaders, self.device, self.gather, self.preds = dev_loaders, device, gather, None

    def on_point(self, trainer, point: dict):
        with torch.random.fork_rng(devices=[]):  # a DataLoader iterator draws a seed from
            point["dev"], self.preds = evaluate(  # the CPU stream: keep training's untouched
                trainer.model, self.loaders, self.device, self.gather)


class Records:
    """The trainer's callback that keeps `records` of every dev prediction of the final
    weights (the result JSONs), on the process that writes (rank 0)."""

    def __init__(self, loaders: dict, examples: dict, device="cpu"):
        self.loaders, self.examples, self.device, self.records = loaders, examples, device, {}

    def on_fit_end(self, trainer):
        if trainer.strategy.is_main:
            self.records = {t: records(trainer.model, t, self.loaders[t], ex, self.device)
                            for t, ex in self.examples.items()}


def format_pred(task, p) -> str:
    """repr of the float for sts (it reads back as the same number, so the metric of the
    file equals the reported one exactly), the integer label otherwise."""
    return repr(float(p)) if task == "sts" else str(int(p))


def write_dev_predictions(out_dir, preds: dict):
    """preds: {task: (ids, predictions, golds)} -> one TSV per task in out_dir."""
    for t, (ids, p, g) in preds.items():
        lines = ["id\tpred\tgold"] + [f"{i}\t{format_pred(t, a)}\t{format_pred(t, b)}"
                                      for i, a, b in zip(ids, p, g)]
        write_text(Path(out_dir) / f"dev-predictions-{t}.tsv", "\n".join(lines) + "\n")


def cs224n_name(task, split) -> str:
    return f"{CS224N_OUTPUT[task][0]}-{split}-output.csv"


def write_cs224n(path, task, ids, preds) -> Path:
    """The starter's exact format: a header `id \\t Predicted_Sentiment ` (with those spaces;
    para: Predicted_Is_Paraphrase, sts: Predicted_Similiarity, sic), then one
    `{id} , {prediction} ` line per example. Its grader parses that, so it is kept."""
    column = CS224N_OUTPUT[task][1]
    lines = [f"id \t {column} "] + [f"{i} , {format_pred(task, a)} " for i, a in zip(ids, preds)]
    return write_text(path, "\n".join(lines) + "\n")


def write_predictions(model, tokenizer, config, out_dir, split="test") -> list[Path]:
    """The CS224N leaderboard files of `split` for every task of a train.TrainConfig
    ("test" reads the *-test-student.csv files); a missing split file is skipped, warned."""
    config = config.resolved()
    root = data.data_dir(config.data)
    written = []
    for t in config.tasks:
        if not (root / data.FILES[t, split]).is_file():  # e.g. quora-test-student.csv offline
            warnings.warn(f"{root / data.FILES[t, split]} not found: no {t} {split} predictions")
            continue
        loader = data.make_loader(data.load(t, split, root), tokenizer, config.eval_batch_size,
                                  shuffle=False, max_length=config.max_length,
                                  pair_mode=config.pair_mode)
        ids, p, _ = predict_loader(model, t, loader, config.device)
        written.append(write_cs224n(Path(out_dir) / cs224n_name(t, split), t, ids, p))
    return written


@torch.no_grad()
def records(model, task, loader, examples, device="cpu") -> list[dict]:
    """Every prediction of `loader` with both sentences, the gold label, the prediction and
    its confidence (None for sts: sort its errors by |pred - gold|)."""
    by_id = {e.id: e for e in examples}
    model.eval()
    out = []
    for batch in loader:
        raw = model(task, to_device(batch, device)).float().cpu()
        pred = MultitaskBERT.decide(task, raw).tolist()
        conf = MultitaskBERT.confidence(task, raw)
        conf = [None] * len(pred) if conf is None else conf.tolist()
        for ex_id, p, c in zip(batch["ids"], pred, conf):
            out.append(record(by_id[ex_id], p, c, task))
    return out


def record(ex, pred, confidence, task) -> dict:
    """One prediction as the result JSONs store it. STS gold and prediction are the float32
    values the loader and the model give, unrounded (JSON keeps a float exactly), so the
    metric of the stored pairs is the reported one, bit for bit; confidence: 4 digits."""
    gold = torch.tensor(float(ex.label)).item() if task == "sts" else int(ex.label)  # float32
    pred = float(pred) if task == "sts" else int(pred)
    return {"id": ex.id, "sentence1": ex.text, "sentence2": ex.text2, "gold": gold, "pred": pred,
            "confidence": None if confidence is None else round(float(confidence), 4)}

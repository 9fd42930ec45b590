"""The zero-shot row of the results table (row 0): what the pretrained encoder knows untrained.

Nothing is trained. STS = Pearson r of 5 * clamp(cos(u, v), 0, 1) of the
mean-pooled sentence embeddings; Quora = cos(u, v) > t with t chosen to maximise
accuracy on the train split, accuracy on dev; SST has no zero-shot reading from a
sentence encoder: its number is the majority-class baseline (the train split's most
frequent label), not a model.
Note: the bundled all-MiniLM-L6-v2 was contrastively trained on data that included about
104k Quora duplicate-question triplets, so its Quora (and likely STS) zero-shot numbers are
optimistic.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F

from ..data import TASKS
from ..heads import MultitaskBERT
from ..metrics import METRIC, metric
from ..predictions import record, records, to_device
from ..pretrained import load_pretrained
from ..train import TrainConfig, load_examples, task_loaders


@torch.no_grad()
def zero_shot(config: TrainConfig) -> tuple[dict, dict]:
    """-> (dev metrics, dev predictions) of row 0 (see the module docstring). Confidence:
    SST the majority label's train frequency; Quora |cos - threshold| (a margin, not a
    probability); STS None."""
    c = dataclasses.replace(config, pair_mode="separate", tasks=TASKS)
    bert, tok = load_pretrained(c.init_from or c.model)
    # sts_loss="cosine_mse": predict_similarity is then 5 * clamp(cos(u, v), 0, 1), untrained
    model = MultitaskBERT(bert, encoder="frozen", pair_mode="separate",
                          sts_loss="cosine_mse").to(c.device).eval()
    train, dev = load_examples(c)

    def cosines(examples):
        cos = []
        for b in task_loaders({"quora": examples}, tok, c, train=False)["quora"]:
            u, v = model.pair_embeddings(to_device(b, c.device))
            cos.extend(F.cosine_similarity(u, v, dim=-1).cpu().tolist())
        return np.array(cos)  # loader keeps file order (no shuffle)

    labels = [e.label for e in train["sst"]]
    major = max(set(labels), key=labels.count)
    freq = labels.count(major) / len(labels)
    preds = {"sst": [record(e, major, freq, "sst") for e in dev["sst"]]}
    ct, yt = cosines(train["quora"]), np.array([e.label for e in train["quora"]])
    cand = np.concatenate([[-1.0], np.sort(ct)])  # predict 1 when cos > t
    acc = [((ct > t) == yt).mean() for t in cand]
    thr = float(cand[int(np.argmax(acc))])
    cd = cosines(dev["quora"])
    preds["quora"] = [record(e, int(x > thr), abs(x - thr), "quora")
                      for e, x in zip(dev["quora"], cd)]
    sts = task_loaders({"sts": dev["sts"]}, tok, c, train=False)["sts"]
    preds["sts"] = records(model, "sts", sts, dev["sts"], c.device)
    dev_metrics = {t: {METRIC[t]: metric(t, [r["pred"] for r in rs], [r["gold"] for r in rs])}
                   for t, rs in preds.items()}
    dev_metrics["quora"]["threshold"] = thr
    dev_metrics["sst"]["note"] = "majority-class baseline (no model)"
    return dev_metrics, preds

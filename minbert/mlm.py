"""Extra masked-language-model pre-training on task text (notebook 06_mlm).

Devlin et al. 2019, "BERT" (section 3.1, masking rule; appendix A.1); Gururangan et al. 2020,
"Don't Stop Pretraining" (continued, domain-adaptive pre-training); Liu et al. 2019, "RoBERTa"
(masks drawn afresh every epoch, as here).

    masked, labels = mask_tokens(input_ids, attention_mask, tokenizer, generator=g)  # masking.py
    model = BertForMLM(bert, head_state)          # minbert.mlm_head; HF names cls.predictions.*
    metrics = pretrain_mlm(preset("v1", model="minilm-l6"), "runs/mlm-v1")
    python -m minbert.mlm --preset v1 --model minilm-l6 --out runs/mlm-v1 [--lr 1e-4 ...]

The encoder is saved as a Hugging Face folder (`save_pretrained`), so
`load_pretrained("runs/mlm-v1/encoder")` and `python -m minbert.train --init-from
runs/mlm-v1/encoder` start from it; the MLM head sits beside it in `mlm_head.safetensors`.
"""
from __future__ import annotations

import argparse
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from . import data
from .config import add_fields, from_args
from .files import write_json
from .masking import encode, mask_tokens, masked_batch  # noqa: F401 (mlm.mask_tokens)
from .mlm_head import HEAD_FILE, IGNORE, BertForMLM, load_mlm
from .optimizer import AdamW
from .pretrained import save_pretrained
from .trainer import Trainer, TrainerConfig

# The seed project's two runs. v2 = the same data with 32x larger effective batches
# (4 x 32 = 128 sequences per optimizer step). lr 5e-5 for the pretrained encoder; a head
# that starts from scratch (MiniLM ships none) gets head_lr and a short head-only warm-up.
MLM_PRESETS = {
    "v1": dict(batch_size=4, accumulation_steps=1, epochs=3, lr=5e-5, head_lr=1e-3,
               head_warmup_steps=100),
    "v2": dict(batch_size=4, accumulation_steps=32, epochs=3, lr=5e-5, head_lr=1e-3,
               head_warmup_steps=100),
}


# ------------------------------------------------------------------------ data
def cfimdb_texts(split: str, n=None, seed=0, root=None) -> list[str]:
    return [e.text for e in data.subset(data.load("cfimdb", split, root), n, seed)]


@torch.no_grad()
def evaluate_mlm(model: BertForMLM, texts, tokenizer, *, batch_size=16, max_length=128,
                 seed=1234) -> dict:
    """Masked-token loss (mean over masked tokens) and accuracy (top-1) on `texts`, with
    text i masked by a generator seeded seed + i: every call masks the same tokens."""
    was_training = model.training
    model.eval()
    seqs = encode(texts, tokenizer, max_length)
    total, correct, count = 0.0, 0, 0
    for i in range(0, len(seqs), batch_size):
        b = masked_batch(seqs[i:i + batch_size], tokenizer, range(seed + i, seed + i + batch_size))
        loss, logits = model.masked_loss(**b, reduction="sum")
        gold = b["labels"][b["labels"] != IGNORE]
        total += loss.item()
        correct += (logits.argmax(-1) == gold).sum().item()
        count += gold.numel()
    model.train(was_training)
    return {"loss": total / count, "accuracy": correct / count, "masked_tokens": count}


# ------------------------------------------------------------------------ training
class MaskedTexts:
    """The trainer's loader: epoch e orders the texts by seed + e, masks each afresh (RoBERTa)
    from seed/epoch/index, and yields a list of `accumulation_steps` micro-batches a step,
    each with "n_masked", the step's masked tokens (a step with none is skipped)."""

    def __init__(self, seqs, tokenizer, batch_size=4, accumulation_steps=1, seed=0):
        self.seqs, self.tok, self.seed = seqs, tokenizer, seed
        self.batch_size, self.group = batch_size, batch_size * accumulation_steps
        self.steps = []

    def set_epoch(self, epoch: int):
        order = torch.randperm(len(self.seqs),
                               generator=torch.Generator().manual_seed(self.seed + epoch))
        self.steps = []
        for start in range(0, len(order), self.group):
            idx = order[start:start + self.group].tolist()
            micro = [masked_batch([self.seqs[j] for j in part], self.tok,
                                  [(self.seed * 1000 + epoch) * 1_000_003 + j for j in part])
                     for part in (idx[k:k + self.batch_size]
                                  for k in range(0, len(idx), self.batch_size))]
            n_masked = sum(int((b["labels"] != IGNORE).sum()) for b in micro)
            if n_masked:
                self.steps.append([b | {"n_masked": n_masked} for b in micro])

    def __len__(self):
        return len(self.steps)

    def __iter__(self):
        return iter(self.steps)


class StepLog(list):
    """The trainer's callback: {step, epoch, loss} of every step, each 50th to `callback`."""

    def __init__(self, callback=None):
        super().__init__()
        self.callback = callback

    def on_step(self, trainer, task, loss):
        self.append({"step": trainer.state.step, "epoch": trainer.state.epoch, "loss": loss})
        if self.callback and trainer.state.step % 50 == 0:
            self.callback(self[-1])


def train_mlm(model: BertForMLM, texts: MaskedTexts, optimizer, epochs=1, max_steps=None,
              callback=None) -> list[dict]:
    """`epochs` over `texts` (or `max_steps` optimizer steps) through the one training loop
    (trainer.Trainer, one task "mlm"); -> the history of {step, epoch, loss}."""
    log = StepLog(callback)
    config = TrainerConfig(mode="single", epochs=epochs, max_steps=max_steps,
                           log_conflict=False)
    Trainer(model, {"mlm": texts}, config, optimizer=optimizer, callbacks=[log]).fit()
    return list(log)


# ------------------------------------------------------------------------ the run
@dataclass
class MLMConfig:
    model: str = "minilm-l6"             # load_pretrained name or folder
    data: str | None = None              # data folder; None -> $MINBERT_DATA
    batch_size: int = 4                  # reviews per micro-batch
    accumulation_steps: int = 1          # micro-batches per optimizer step
    epochs: int = 3                      # passes over the reviews
    lr: float = 5e-5                     # the encoder's
    head_lr: float = 1e-3                # the MLM head's (fresh when the checkpoint has none)
    head_warmup_steps: int = 0           # head-only steps first (fresh head only)
    weight_decay: float = 0.0            # AdamW's decoupled weight decay
    max_length: int = 128                # tokens per review (truncated)
    n_texts: int | None = None           # CFIMDB train reviews (None: all 1,707)
    n_eval: int | None = None            # CFIMDB dev reviews scored before and after
    seed: int = 0                        # the order, the masks, dropout
    max_steps: int | None = None         # stop after this many optimizer steps
    freeze_encoder: bool = False         # the control run: train the head alone
    eval_batch_size: int = 16            # reviews per batch when scoring
    eval_seed: int = 1234                # the held-out masks (the same in every evaluation)


def preset(name: str, **overrides) -> MLMConfig:
    """MLMConfig of one of the seed's two runs (MLM_PRESETS), with overrides."""
    return MLMConfig(**{**MLM_PRESETS[name], **overrides})


def warm_up_head(model: BertForMLM, train_seqs, tok, c: MLMConfig, callback) -> list[dict]:
    """Train a fresh head alone (encoder frozen, so the tied decoder too) for
    c.head_warmup_steps steps, on its own order of the texts."""
    model.bert.requires_grad_(False)
    opt = AdamW(model.head_parameters(), lr=c.head_lr, weight_decay=c.weight_decay)
    epochs_needed = math.ceil(c.head_warmup_steps * c.batch_size / len(train_seqs))
    texts = MaskedTexts(train_seqs, tok, c.batch_size, seed=c.seed + 10_000)
    history = train_mlm(model, texts, opt, epochs_needed, c.head_warmup_steps, callback)
    model.bert.requires_grad_(True)
    return history


def train_all(model: BertForMLM, train_seqs, tok, c: MLMConfig, callback) -> list[dict]:
    """Encoder (lr) and head (head_lr) together; with c.freeze_encoder the head alone."""
    groups = [{"params": model.head_parameters(), "lr": c.head_lr}]
    if c.freeze_encoder:
        model.bert.requires_grad_(False)
    else:
        groups.insert(0, {"params": list(model.bert.parameters()), "lr": c.lr})
    opt = AdamW(groups, weight_decay=c.weight_decay)
    texts = MaskedTexts(train_seqs, tok, c.batch_size, c.accumulation_steps, c.seed)
    return train_mlm(model, texts, opt, c.epochs, c.max_steps, callback)


def relative_change(before: dict, after: dict) -> float:
    """||after - before|| / ||before|| over every tensor of a state dict."""
    return math.sqrt(sum(((after[k] - v) ** 2).sum().item() for k, v in before.items())
                     / sum((v ** 2).sum().item() for v in before.values()))


def train_phases(model, train_seqs, tok, c: MLMConfig, ev, progress) -> tuple[dict, dict]:
    """Steps 2 and 3 of pretrain_mlm -> (their metrics, {phase: its step history})."""
    def log(phase):
        if progress:
            return lambda h: print(f"  {phase} step {h['step']:5d}  epoch {h['epoch']}  "
                                   f"loss {h['loss']:.3f}", flush=True)
    metrics, history = {}, {}
    if c.head_warmup_steps and not model.head_loaded:
        history["head"] = warm_up_head(model, train_seqs, tok, c, log("head"))
        metrics["after_head"] = ev()
    encoder_before = {k: v.detach().clone() for k, v in model.bert.state_dict().items()}
    history["full"] = train_all(model, train_seqs, tok, c,
                                log("head" if c.freeze_encoder else "full"))
    metrics["after"] = ev()
    metrics["encoder_relative_change"] = relative_change(encoder_before, model.bert.state_dict())
    metrics["steps"] = {k: len(v) for k, v in history.items()}
    return metrics, history


def pretrain_mlm(config: MLMConfig, out_dir="runs/mlm", progress: bool = True) -> dict:
    """Continued MLM pre-training on CFIMDB train reviews, evaluated on the dev reviews.

    1. load the encoder (+ head if the checkpoint has one); evaluate ("before");
    2. if the head is fresh and head_warmup_steps > 0: train the head alone (encoder frozen,
       so the tied decoder too) for that many steps; evaluate ("after_head") -- this
       separates "the head learned to read the encoder" from "the encoder learned";
    3. train everything (encoder lr, head head_lr) for `epochs` (or max_steps); evaluate.
       freeze_encoder=True trains the head alone here: the control run that shows how much
       of the drop in loss is the encoder's (same data, masks and steps, encoder fixed);
    4. save OUT/encoder (HF folder + mlm_head.safetensors) and OUT/metrics.json."""
    c, out = config, Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(c.seed)  # dropout
    t0 = time.time()
    model, tok = load_mlm(c.model)
    train_seqs = encode(cfimdb_texts("train", c.n_texts, c.seed, c.data), tok, c.max_length)
    dev = cfimdb_texts("dev", c.n_eval, 0, c.data)

    def ev():
        return evaluate_mlm(model, dev, tok, batch_size=c.eval_batch_size,
                            max_length=c.max_length, seed=c.eval_seed)

    metrics = {"model": str(c.model), "head_loaded": model.head_loaded,
               "n_train_texts": len(train_seqs), "n_eval_texts": len(dev),
               "settings": {k: v for k, v in asdict(c).items() if k not in ("model", "data")}}
    metrics["before"] = ev()
    phases, history = train_phases(model, train_seqs, tok, c, ev, progress)
    metrics.update(phases)
    metrics["seconds"] = round(time.time() - t0, 1)
    save_pretrained(model.bert, tok, out / "encoder", extra={HEAD_FILE: model.head_state_dict()})
    write_json(out / "history.json", history)
    write_json(out / "metrics.json", metrics)
    return metrics


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m minbert.mlm", description=pretrain_mlm.__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(MLM_PRESETS), default="v1",
                   help="the seed's run whose settings are the defaults of the flags below")
    p.add_argument("--out", required=True, help="run folder (encoder/ and metrics.json go here)")
    p.add_argument("--no-progress", action="store_true")
    add_fields(p, MLMConfig)
    first, _ = p.parse_known_args(argv)
    p.set_defaults(**MLM_PRESETS[first.preset])  # flags given on the command line still win
    a = p.parse_args(argv)
    m = pretrain_mlm(from_args(MLMConfig, a), a.out, progress=not a.no_progress)
    for k in ("before", "after_head", "after"):
        if k in m:
            print(f"{k:>10}: masked-token loss {m[k]['loss']:.3f}  accuracy {m[k]['accuracy']:.3f}")
    print(f"encoder saved to {Path(a.out) / 'encoder'}")


if __name__ == "__main__":
    main()

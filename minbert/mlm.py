"""Extra masked-language-model pre-training on task text (notebook 06_mlm).

Devlin et al. 2019, "BERT" (section 3.1, masking rule; appendix A.1); Gururangan et al. 2020,
"Don't Stop Pretraining" (continued, domain-adaptive pre-training); Liu et al. 2019, "RoBERTa"
(masks drawn afresh every epoch, as here).

    masked, labels = mask_tokens(input_ids, attention_mask, tokenizer, generator=g)
    model = BertForMLM(bert, head_state)          # HF names: cls.predictions.*
    metrics = pretrain_mlm("minilm-l6", "runs/mlm-v1", **MLM_PRESETS["v1"])
    python -m minbert.mlm --preset v1 --model minilm-l6 --out runs/mlm-v1

The encoder is saved as a Hugging Face folder (`save_pretrained`), so
`load_pretrained("runs/mlm-v1/encoder")` and `python -m minbert.train --init-from
runs/mlm-v1/encoder` start from it; the MLM head sits beside it in `mlm_head.safetensors`.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .model import BertModel
from .optimizer import AdamW
from .pretrained import CheckpointError, load_pretrained

IGNORE = -100  # label of positions that are not predicted (torch's cross_entropy default)

# The seed project's two runs. v2 = the same data with 32x larger effective batches
# (4 x 32 = 128 sequences per optimizer step). lr 5e-5 for the pretrained encoder; a head
# that starts from scratch (MiniLM ships none) gets head_lr and a short head-only warm-up.
MLM_PRESETS = {
    "v1": dict(batch_size=4, accumulation_steps=1, epochs=3, lr=5e-5, head_lr=1e-3,
               head_warmup_steps=100),
    "v2": dict(batch_size=4, accumulation_steps=32, epochs=3, lr=5e-5, head_lr=1e-3,
               head_warmup_steps=100),
}
HEAD_FILE = "mlm_head.safetensors"


# ------------------------------------------------------------------------ masking
def mask_tokens(input_ids, attention_mask=None, special_ids=None, vocab_size=None,
                mask_token_id=None, generator=None, mlm_probability=0.15):
    """BERT's masking rule -> (masked input_ids, labels).

    Each real (attention_mask 1), non-special token is chosen with probability
    `mlm_probability`; a chosen token becomes [MASK] with p 0.8, a uniformly random
    vocabulary id with p 0.1, and stays as it is with p 0.1. labels hold the original id
    at chosen positions and -100 elsewhere. `special_ids` is a collection of ids or a
    tokenizer (then its special ids, [MASK] id and vocabulary size are used). Every draw
    comes from `generator`, so a seeded torch.Generator gives the same masks every run."""
    if hasattr(special_ids, "all_special_ids"):  # a tokenizer
        tok = special_ids
        special_ids = tok.all_special_ids
        vocab_size = vocab_size or len(tok)
        mask_token_id = tok.mask_token_id if mask_token_id is None else mask_token_id
    if vocab_size is None or mask_token_id is None:
        raise ValueError("mask_tokens needs vocab_size and mask_token_id (or a tokenizer)")
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    special = torch.tensor(list(special_ids or []), dtype=input_ids.dtype)
    can_mask = attention_mask.bool() & ~torch.isin(input_ids, special)
    draw = lambda: torch.rand(input_ids.shape, generator=generator)  # noqa: E731
    chosen = (draw() < mlm_probability) & can_mask
    u = draw()  # one draw splits the chosen tokens 80 / 10 / 10
    to_mask = chosen & (u < 0.8)
    to_random = chosen & (u >= 0.8) & (u < 0.9)
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator)
    masked = input_ids.clone()
    masked[to_mask] = mask_token_id
    masked[to_random] = random_ids[to_random]
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE))
    return masked, labels


# ------------------------------------------------------------------------ the head
class BertPredictionHeadTransform(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states):
        return self.LayerNorm(F.gelu(self.dense(hidden_states)))


class BertLMPredictionHead(nn.Module):
    """transform, then scores against every word embedding (the decoder weight IS the
    input embedding matrix: tied, as in BERT), plus one output bias per token."""
    def __init__(self, config, word_embeddings: nn.Embedding):
        super().__init__()
        self.transform = BertPredictionHeadTransform(config)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.decoder.weight = word_embeddings.weight  # tied: one Parameter, two names
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden_states):
        return self.decoder(self.transform(hidden_states)) + self.bias  # (..., vocab)


class BertMLMHead(nn.Module):
    """transformers' BertOnlyMLMHead: held as `cls`, so checkpoint keys read
    cls.predictions.{transform.dense, transform.LayerNorm, decoder, bias}."""
    def __init__(self, config, word_embeddings: nn.Embedding):
        super().__init__()
        self.predictions = BertLMPredictionHead(config, word_embeddings)

    def forward(self, hidden_states):
        return self.predictions(hidden_states)


@dataclass
class MLMOutput:
    loss: torch.Tensor | None
    logits: torch.Tensor | None  # (batch, seq, vocab); None from masked_loss


class BertForMLM(nn.Module):
    def __init__(self, bert: BertModel, head_state: dict | None = None):
        super().__init__()
        self.bert = bert
        self.cls = BertMLMHead(bert.config, bert.embeddings.word_embeddings)
        self.head_loaded = bool(head_state)
        if head_state:
            self.load_head(head_state)
        else:
            self.init_head()

    def init_head(self):
        """Fresh head, BERT's initialisation: N(0, 0.02), LayerNorm = identity, bias 0."""
        t = self.cls.predictions.transform
        nn.init.normal_(t.dense.weight, std=self.bert.config.initializer_range)
        nn.init.zeros_(t.dense.bias)
        nn.init.ones_(t.LayerNorm.weight)
        nn.init.zeros_(t.LayerNorm.bias)
        nn.init.zeros_(self.cls.predictions.bias)

    def head_state_dict(self) -> dict:
        """The head's own tensors, keys `cls.predictions.*` (the tied decoder left out)."""
        return {f"cls.{k}": v.detach().clone().contiguous()
                for k, v in self.cls.state_dict().items() if k != "predictions.decoder.weight"}

    def load_head(self, state: dict):
        """Load `cls.predictions.*` from a BertForMaskedLM / BertForPreTraining checkpoint
        (or from head_state_dict). The NSP head (cls.seq_relationship.*) is not used. A stored
        decoder weight must equal the embedding it is tied to; decoder.bias is predictions.bias."""
        own = {k: v for k, v in self.cls.state_dict().items() if k != "predictions.decoder.weight"}
        got = {}
        for k, v in state.items():
            k = k[len("cls."):] if k.startswith("cls.") else k
            if k.startswith("seq_relationship."):
                continue
            if k == "predictions.decoder.weight":
                emb = self.bert.embeddings.word_embeddings.weight
                same = v.shape == emb.shape and torch.allclose(v.to(emb.dtype), emb.detach(),
                                                               atol=1e-6)
                if not same:
                    raise CheckpointError("cls.predictions.decoder.weight differs from the word "
                                          "embeddings it is tied to in minbert")
                continue
            if k == "predictions.decoder.bias":  # tied to predictions.bias in HF
                k = "predictions.bias"
                if k in got or "cls.predictions.bias" in state or k in state:
                    continue
            got[k] = v
        missing, unexpected = sorted(set(own) - set(got)), sorted(set(got) - set(own))
        if missing or unexpected:
            raise CheckpointError(f"MLM head: parameter names do not match.\n"
                                  f"  missing ({len(missing)}): {missing}\n"
                                  f"  unexpected ({len(unexpected)}): {unexpected}")
        bad = [f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in got.items()
               if v.shape != own[k].shape]
        if bad:
            raise CheckpointError("MLM head: shape mismatch:\n  " + "\n  ".join(bad))
        with torch.no_grad():
            for k, v in got.items():
                own[k].copy_(v)
        self.head_loaded = True

    def head_parameters(self):
        """Parameters of the head alone (the tied decoder weight belongs to the encoder)."""
        return list(self.cls.predictions.transform.parameters()) + [self.cls.predictions.bias]

    def forward(self, input_ids, attention_mask=None, labels=None, token_type_ids=None):
        h = self.bert(input_ids, attention_mask, token_type_ids).last_hidden_state
        logits = self.cls(h)  # (batch, seq, vocab)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), labels.view(-1),
                                   ignore_index=IGNORE)
        return MLMOutput(loss, logits)

    def masked_loss(self, input_ids, attention_mask, labels, reduction="mean"):
        """The same loss as forward(...).loss, with the vocabulary projection done only at the
        labelled positions (about 15% of the tokens): roughly halves the cost on CPU."""
        h = self.bert(input_ids, attention_mask).last_hidden_state
        keep = labels != IGNORE
        logits = self.cls(h[keep])  # (n_masked, vocab)
        return F.cross_entropy(logits, labels[keep], reduction=reduction), logits


# ------------------------------------------------------------------------ data
def encode(texts, tokenizer, max_length=128) -> list[torch.Tensor]:
    """Each text -> its ids ([CLS] ... [SEP], truncated), one 1-D tensor per text."""
    enc = tokenizer(list(texts), truncation=True, max_length=max_length)
    return [torch.tensor(ids) for ids in enc["input_ids"]]


def masked_batch(seqs, tokenizer, seeds, mlm_probability=0.15) -> dict:
    """Mask each sequence with its own generator (seeded by `seeds`), then pad. Masks thus do
    not depend on batch size or padding: batch 8 and 2 x 4 see the same masked tokens."""
    pad = tokenizer.pad_token_id
    n = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), n), pad, dtype=torch.long)
    labels = torch.full((len(seqs), n), IGNORE, dtype=torch.long)
    attn = torch.zeros((len(seqs), n), dtype=torch.long)
    for i, (s, seed) in enumerate(zip(seqs, seeds)):
        g = torch.Generator().manual_seed(int(seed))
        m, lab = mask_tokens(s[None], None, tokenizer, generator=g, mlm_probability=mlm_probability)
        ids[i, :len(s)], labels[i, :len(s)], attn[i, :len(s)] = m[0], lab[0], 1
    return {"input_ids": ids, "attention_mask": attn, "labels": labels}


def cfimdb_texts(split: str, n=None, seed=0, root=None) -> list[str]:
    from . import data
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
def train_mlm(model: BertForMLM, seqs, tokenizer, optimizer, *, batch_size=4, accumulation_steps=1,
              epochs=1, seed=0, max_steps=None, log_every=10, callback=None) -> list[dict]:
    """Epochs over `seqs` in a seeded order; masks drawn afresh each epoch (RoBERTa's dynamic
    masking), per sequence, from seed/epoch/index. One optimizer step per `accumulation_steps`
    micro-batches. The loss is summed over the group's masked tokens and divided by their
    total count, so 4 x 2 accumulation equals one batch of 8 (a mean of per-batch means
    would weight a batch with few masked tokens more). -> history of {step, epoch, loss}."""
    model.train()
    history, step, group = [], 0, batch_size * accumulation_steps
    for epoch in range(epochs):
        order = torch.randperm(len(seqs), generator=torch.Generator().manual_seed(seed + epoch))
        for start in range(0, len(order), group):
            idx = order[start:start + group].tolist()
            micro = []
            for k in range(0, len(idx), batch_size):
                part = idx[k:k + batch_size]
                seeds = [(seed * 1000 + epoch) * 1_000_003 + j for j in part]  # text j, epoch
                micro.append(masked_batch([seqs[j] for j in part], tokenizer, seeds))
            n_masked = sum(int((b["labels"] != IGNORE).sum()) for b in micro)
            if n_masked == 0:
                continue
            optimizer.zero_grad(set_to_none=True)
            total = 0.0
            for b in micro:
                loss, _ = model.masked_loss(**b, reduction="sum")
                (loss / n_masked).backward()
                total += loss.item()
            optimizer.step()
            step += 1
            history.append({"step": step, "epoch": epoch, "loss": total / n_masked})
            if callback and (step % log_every == 0):
                callback(history[-1])
            if max_steps is not None and step >= max_steps:
                return history
    return history


# ------------------------------------------------------------------------ saving
def hf_config(config) -> dict:
    d = dataclasses.asdict(config)
    d.pop("attn_implementation", None)  # minbert's runtime choice, not part of the checkpoint
    return {"architectures": ["BertModel"], "model_type": "bert",
            "position_embedding_type": "absolute", **d}


def write_json(path: Path, obj):
    """Write to a temporary file, then rename: a reader sees the old file or the new one."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def _replace_dir(tmp: Path, folder: Path):
    """Put the finished `tmp` in place of `folder`; a reader never sees a half-written one."""
    old = folder.with_name(f".{folder.name}.old{os.getpid()}")
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


def save_pretrained(model: BertModel, tokenizer, folder, head: BertForMLM | None = None) -> Path:
    """Encoder -> a Hugging Face BertModel folder (config.json, model.safetensors, tokenizer
    files), written into a temporary folder and renamed into place. With `head`, its
    weights go to mlm_head.safetensors beside them."""
    from safetensors.torch import save_file
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    (tmp / "config.json").write_text(json.dumps(hf_config(model.config), indent=2) + "\n")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    if head is not None:
        save_file({k: v.cpu() for k, v in head.head_state_dict().items()}, str(tmp / HEAD_FILE))
    tokenizer.save_pretrained(str(tmp))
    _replace_dir(tmp, folder)
    return folder


def load_mlm(name_or_path, **config_overrides) -> tuple[BertForMLM, object]:
    """-> (BertForMLM, tokenizer). Head: the checkpoint's cls.* weights, else the folder's
    mlm_head.safetensors, else a fresh one."""
    from safetensors.torch import load_file
    bert, tok, heads = load_pretrained(str(name_or_path), with_heads=True, **config_overrides)
    side = Path(name_or_path) / HEAD_FILE
    if not heads and side.is_file():
        heads = load_file(str(side))
    return BertForMLM(bert, heads or None), tok


def pretrain_mlm(model_name_or_path="minilm-l6", out_dir="runs/mlm", *, batch_size=4,
                 accumulation_steps=1, epochs=3, lr=5e-5, head_lr=1e-3, head_warmup_steps=0,
                 weight_decay=0.0, max_length=128, n_texts=None, n_eval=None, seed=0,
                 max_steps=None, freeze_encoder=False, eval_batch_size=16, eval_seed=1234,
                 data_root=None, progress=True) -> dict:
    """Continued MLM pre-training on CFIMDB train reviews, evaluated on the dev reviews.

    1. load the encoder (+ head if the checkpoint has one); evaluate ("before");
    2. if the head is fresh and head_warmup_steps > 0: train the head alone (encoder frozen,
       so the tied decoder too) for that many steps; evaluate ("after_head") -- this
       separates "the head learned to read the encoder" from "the encoder learned";
    3. train everything (encoder lr, head head_lr) for `epochs` (or max_steps); evaluate.
       freeze_encoder=True trains the head alone here: the control run that shows how much
       of the drop in loss is the encoder's (same data, masks and steps, encoder fixed);
    4. save OUT/encoder (HF folder + mlm_head.safetensors) and OUT/metrics.json."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)  # dropout
    t0 = time.time()
    model, tok = load_mlm(model_name_or_path)
    train_seqs = encode(cfimdb_texts("train", n_texts, seed, data_root), tok, max_length)
    dev = cfimdb_texts("dev", n_eval, 0, data_root)
    def ev():
        return evaluate_mlm(model, dev, tok, batch_size=eval_batch_size, max_length=max_length,
                            seed=eval_seed)

    def log(phase):
        if progress:
            return lambda h: print(f"  {phase} step {h['step']:5d}  epoch {h['epoch']}  "
                                   f"loss {h['loss']:.3f}", flush=True)
    metrics = {"model": str(model_name_or_path), "head_loaded": model.head_loaded,
               "n_train_texts": len(train_seqs), "n_eval_texts": len(dev),
               "settings": dict(batch_size=batch_size, accumulation_steps=accumulation_steps,
                                epochs=epochs, lr=lr, head_lr=head_lr, weight_decay=weight_decay,
                                head_warmup_steps=head_warmup_steps, max_length=max_length,
                                seed=seed, max_steps=max_steps, freeze_encoder=freeze_encoder,
                                eval_seed=eval_seed)}
    metrics["before"] = ev()
    history = {}
    if head_warmup_steps and not model.head_loaded:
        for p in model.bert.parameters():
            p.requires_grad_(False)
        opt = AdamW(model.head_parameters(), lr=head_lr, weight_decay=weight_decay)
        epochs_needed = math.ceil(head_warmup_steps * batch_size / len(train_seqs))
        history["head"] = train_mlm(model, train_seqs, tok, opt, batch_size=batch_size,
                                    epochs=epochs_needed, seed=seed + 10_000,
                                    max_steps=head_warmup_steps, callback=log("head"), log_every=50)
        for p in model.bert.parameters():
            p.requires_grad_(True)
        metrics["after_head"] = ev()
    encoder_before = {k: v.detach().clone() for k, v in model.bert.state_dict().items()}
    groups = [{"params": model.head_parameters(), "lr": head_lr}]
    if freeze_encoder:
        for p in model.bert.parameters():
            p.requires_grad_(False)
    else:
        groups.insert(0, {"params": list(model.bert.parameters()), "lr": lr})
    opt = AdamW(groups, weight_decay=weight_decay)
    history["full"] = train_mlm(model, train_seqs, tok, opt, batch_size=batch_size,
                                accumulation_steps=accumulation_steps, epochs=epochs, seed=seed,
                                max_steps=max_steps, log_every=50,
                                callback=log("head" if freeze_encoder else "full"))
    metrics["after"] = ev()
    now = model.bert.state_dict()
    metrics["encoder_relative_change"] = math.sqrt(
        sum(((now[k] - v) ** 2).sum().item() for k, v in encoder_before.items())
        / sum((v ** 2).sum().item() for v in encoder_before.values()))
    metrics["steps"] = {k: len(v) for k, v in history.items()}
    metrics["seconds"] = round(time.time() - t0, 1)
    save_pretrained(model.bert, tok, out / "encoder", head=model)
    write_json(out / "history.json", history)
    write_json(out / "metrics.json", metrics)
    return metrics


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m minbert.mlm", description=pretrain_mlm.__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(MLM_PRESETS), default="v1")
    p.add_argument("--model", default="minilm-l6", help="load_pretrained name or folder")
    p.add_argument("--out", required=True, help="run folder (encoder/ and metrics.json go here)")
    p.add_argument("--data", default=None, help="data folder (default: $MINBERT_DATA)")
    for name, typ in [("n_texts", int), ("n_eval", int), ("max_steps", int), ("epochs", int),
                      ("batch_size", int), ("accumulation_steps", int), ("lr", float),
                      ("head_lr", float), ("head_warmup_steps", int), ("max_length", int),
                      ("seed", int)]:
        p.add_argument("--" + name.replace("_", "-"), type=typ, default=None)
    p.add_argument("--freeze-encoder", action="store_true", default=None,
                   help="control run: train the MLM head alone")
    a = p.parse_args(argv)
    kw = dict(MLM_PRESETS[a.preset])
    kw.update({k: v for k, v in vars(a).items()
               if v is not None and k not in ("preset", "model", "out", "data")})
    m = pretrain_mlm(a.model, a.out, data_root=a.data, **kw)
    for k in ("before", "after_head", "after"):
        if k in m:
            print(f"{k:>10}: masked-token loss {m[k]['loss']:.3f}  accuracy {m[k]['accuracy']:.3f}")
    print(f"encoder saved to {Path(a.out) / 'encoder'}")


if __name__ == "__main__":
    main()

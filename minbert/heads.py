"""Three task heads on one shared BERT (notebook 03_heads).

CS224N default final project, `multitask_classifier.py`: one encoder `bert`,
one small head per task, one method per task.

  sst    SST-5 sentiment   dropout + Linear(H, 5) on the pooler output -> (B, 5) logits,
                           cross-entropy.
`pooling="mean"` reads the mean of the token vectors instead of the pooler output
(tanh(W h_[CLS])): sentence-transformers checkpoints such as the bundled MiniLM were
trained through mean pooling and their pooler never was (notebook 03 compares both).
  quora  paraphrase        one logit: (B,); binary cross-entropy with logits.
  sts    similarity        one score on the STS 0..5 scale: 5 * sigmoid(Linear(.)) -> (B,);
                           MSE against the gold score. The sigmoid keeps every prediction
                           inside the label range (a plain Linear also works, but can
                           predict -1 or 7); its gradient is small only when saturated.

Pair tasks, two ways (`pair_mode`, matching `make_loader(pair_mode=...)`):
  "joint"     [CLS] a [SEP] b [SEP] in one pass; dropout + Linear(H, 1) on the pooler.
  "separate"  a and b encoded on their own, mean-pooled into u and v (Sentence-BERT);
              dropout + Linear(4H, 1) on [u, v, |u - v|, u * v].

`sts_loss` is the hook for notebook 07: "mse" (default) is the head above;
"cosine_mse" / "cosine_embedding" (separate pairs only) train cos(u, v) with
`minbert.losses` and predict 5 * clamp(cos, 0, 1).

Two options, as in CS224N's `--option`:
  "pretrain"  the encoder is frozen (requires_grad False) and stays in eval mode, so its
              dropout is off and frozen features are the same every time; only the heads
              train (lr 1e-3). The encoder then runs under no_grad (no graph kept).
  "finetune"  every weight trains (lr 1e-5 .. 5e-5).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import losses

TASKS = ("sst", "quora", "sts")
NUM_SENTIMENT_CLASSES = 5
STS_LOSSES = ("mse", "cosine_mse", "cosine_embedding")


class MultitaskBERT(nn.Module):
    def __init__(self, bert, dropout: float = 0.1, mode: str = "finetune",
                 pair_mode: str = "joint", sts_loss: str = "mse", pooling: str = "pooler"):
        super().__init__()
        if pooling not in ("pooler", "mean"):
            raise ValueError(f"pooling must be 'pooler' or 'mean', got {pooling!r}")
        if mode not in ("pretrain", "finetune"):
            raise ValueError(f"mode must be 'pretrain' or 'finetune', got {mode!r}")
        if pair_mode not in ("joint", "separate"):
            raise ValueError(f"pair_mode must be 'joint' or 'separate', got {pair_mode!r}")
        if sts_loss not in STS_LOSSES:
            raise ValueError(f"sts_loss must be one of {STS_LOSSES}, got {sts_loss!r}")
        if sts_loss != "mse" and pair_mode != "separate":
            raise ValueError(f"sts_loss={sts_loss!r} compares two sentence embeddings: "
                             "it needs pair_mode='separate'")
        self.bert, self.mode, self.pair_mode, self.sts_loss = bert, mode, pair_mode, sts_loss
        self.pooling = pooling
        H = bert.config.hidden_size
        pair_in = H if pair_mode == "joint" else 4 * H
        self.dropout = nn.Dropout(dropout)
        self.sentiment = nn.Linear(H, NUM_SENTIMENT_CLASSES)
        self.paraphrase = nn.Linear(pair_in, 1)
        self.similarity = nn.Linear(pair_in, 1)
        if mode == "pretrain":
            for p in self.bert.parameters():
                p.requires_grad_(False)
        self.train()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.mode == "pretrain":
            self.bert.eval()  # frozen features: encoder dropout stays off
        return self

    # --- encoder -----------------------------------------------------------------
    def encode(self, input_ids, attention_mask, token_type_ids=None):
        """-> BertOutput; without a graph when the encoder is frozen."""
        if self.mode == "pretrain":
            with torch.no_grad():
                return self.bert(input_ids, attention_mask, token_type_ids)
        return self.bert(input_ids, attention_mask, token_type_ids)

    def embed(self, input_ids, attention_mask, token_type_ids=None):
        """Mean-pooled sentence embeddings (B, H) over real tokens ([CLS]/[SEP] included)."""
        out = self.encode(input_ids, attention_mask, token_type_ids)
        return losses.mean_pool(out.last_hidden_state, attention_mask)

    def pooled(self, batch, suffix=""):
        """The sentence (or joint pair) vector (B, H) the heads read: the pooler output,
        or with pooling="mean" the mean of the token vectors."""
        mask = batch["attention_mask" + suffix]
        out = self.encode(batch["input_ids" + suffix], mask, batch.get("token_type_ids" + suffix))
        if self.pooling == "mean":
            return losses.mean_pool(out.last_hidden_state, mask)
        return out.pooler_output

    def pair_embeddings(self, batch):
        """Separate encoding: (u, v), each (B, H)."""
        if "input_ids_1" not in batch:
            raise ValueError("pair_mode='separate' needs batches with input_ids_1/input_ids_2 "
                             "(make_loader(..., pair_mode='separate'))")
        u = self.embed(batch["input_ids_1"], batch["attention_mask_1"], batch.get("token_type_ids_1"))
        v = self.embed(batch["input_ids_2"], batch["attention_mask_2"], batch.get("token_type_ids_2"))
        return u, v

    def pair_features(self, batch):
        """(B, H) pooled joint encoding, or (B, 4H) [u, v, |u-v|, u*v] for separate pairs."""
        if self.pair_mode == "joint":
            if "input_ids" not in batch:
                raise ValueError("pair_mode='joint' needs batches with input_ids "
                                 "(make_loader(..., pair_mode='joint'))")
            return self.pooled(batch)
        u, v = self.pair_embeddings(batch)
        return torch.cat([u, v, (u - v).abs(), u * v], dim=-1)

    # --- the three heads (CS224N names) -------------------------------------------
    def predict_sentiment(self, batch):
        """-> (B, 5) logits."""
        return self.sentiment(self.dropout(self.pooled(batch)))

    def predict_paraphrase(self, batch):
        """-> (B,) logit of "is a paraphrase"."""
        return self.paraphrase(self.dropout(self.pair_features(batch))).squeeze(-1)

    def predict_similarity(self, batch):
        """-> (B,) similarity on the 0..5 scale."""
        if self.sts_loss != "mse":
            return losses.predict_similarity_from_cosine(*self.pair_embeddings(batch))
        x = self.similarity(self.dropout(self.pair_features(batch))).squeeze(-1)
        return losses.STS_MAX * torch.sigmoid(x)

    # --- losses and predictions ----------------------------------------------------
    def forward(self, task, batch):
        """Raw head output: sst (B, 5) logits, quora (B,) logit, sts (B,) score."""
        if task == "sst":
            return self.predict_sentiment(batch)
        if task == "quora":
            return self.predict_paraphrase(batch)
        if task == "sts":
            return self.predict_similarity(batch)
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")

    def forward_loss(self, task, batch):
        """-> (scalar loss, raw output detached). The output feeds train metrics."""
        if "labels" not in batch:
            raise ValueError(f"{task}: the batch has no 'labels' (a test split?)")
        y = batch["labels"]
        if task == "sts" and self.sts_loss != "mse":
            u, v = self.pair_embeddings(batch)
            fn = losses.cosine_mse_loss if self.sts_loss == "cosine_mse" else losses.cosine_embedding_loss
            with torch.no_grad():
                out = losses.predict_similarity_from_cosine(u, v)
            return fn(u, v, y.float()), out
        out = self.forward(task, batch)
        if task == "sst":
            loss = F.cross_entropy(out, y.long())
        elif task == "quora":
            loss = F.binary_cross_entropy_with_logits(out, y.float())
        else:
            loss = F.mse_loss(out, y.float())
        return loss, out.detach()

    def loss(self, task, batch):
        """Scalar training loss of one batch of `task`."""
        return self.forward_loss(task, batch)[0]

    @staticmethod
    def decide(task, output):
        """Raw output -> predictions: class ids (sst), 0/1 (quora), scores (sts)."""
        if task == "sst":
            return output.argmax(dim=-1)
        if task == "quora":
            return (output > 0).long()  # sigmoid(logit) > 0.5
        return output

    @torch.no_grad()
    def predict(self, task, batch):
        return self.decide(task, self.forward(task, batch))

    # --- parameter groups (PCGrad needs the shared ones apart) ---------------------
    def shared_parameters(self):
        """The encoder's parameters (frozen ones included: callers filter on requires_grad)."""
        return list(self.bert.parameters())

    def task_parameters(self, task):
        heads = {"sst": self.sentiment, "quora": self.paraphrase, "sts": self.similarity}
        if task not in heads:
            raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
        if task == "sts" and self.sts_loss != "mse":
            return []  # the cosine losses train the encoder only
        return list(heads[task].parameters())

"""Three task heads on one shared BERT (notebook 03_heads).

CS224N default final project, `multitask_classifier.py`: one encoder `bert`, one small
head per task, one method per task. Each head reads one vector per sentence or pair:
the pooler output tanh(W h_[CLS]) (`pooling="pooler"`, the starter's choice) or the mean
of the token vectors (`pooling="mean"`; the bundled MiniLM was trained through mean
pooling, its pooler never was: notebook 03 compares both).

  task   head                                        output        loss
  sst    dropout + Linear(H, 5)                      (B, 5) logits cross-entropy
  quora  dropout + Linear(H or 4H, 1)                (B,) logit    BCE with logits
  sts    5 * sigmoid(dropout + Linear(H or 4H, 1))   (B,) in 0..5  MSE vs the gold score

The sigmoid keeps every STS prediction inside the label range (a plain Linear can
predict -1 or 7). Pair tasks, two ways (`pair_mode`, as in `make_loader`):
  "joint"     [CLS] a [SEP] b [SEP] in one pass; the head reads its vector (H).
  "separate"  a and b encoded on their own, mean-pooled into u and v (Sentence-BERT);
              the head reads [u, v, |u - v|, u * v] (4H).
`sts_loss` (notebook 07): "mse" is the head above; "cosine_mse" / "cosine_embedding"
(separate pairs only) train cos(u, v) with `minbert.losses` and predict 5 * clamp(cos, 0, 1).

The encoder, as CS224N's `--option`:
  encoder="frozen"    requires_grad False and always in eval mode (no dropout, so the
                      features are the same every time), run under no_grad; the heads
                      alone train. The seed report calls these rows "pretrain".
  encoder="finetune"  every weight trains.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import losses, yours
from .config import check_choice
from .data import PAIR_MODES, TASKS

NUM_SENTIMENT_CLASSES = 5
ENCODER_MODES = ("frozen", "finetune")
POOLINGS = ("pooler", "mean")
STS_LOSSES = ("mse", "cosine_mse", "cosine_embedding")
YOUR_HEADS = {"sst": "sentiment_head", "quora": "paraphrase_head", "sts": "similarity_head"}


def mean_pool(last_hidden_state: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the token states over real (mask 1) tokens: (B, T, H), (B, T) -> (B, H).

    Padding must not count: a sentence's embedding may not depend on how long the other
    sentences in its batch are. [CLS] and [SEP] are included, as in Sentence-BERT and
    sentence-transformers' Pooling(mean)."""
    # Stand-in (07's exercise is the written-out version below): the masked mean as one
    # batched matrix product, each row's weights 1 / (its real tokens) on its real tokens.
    weights = attention_mask.to(last_hidden_state.dtype)
    weights = weights / weights.sum(dim=1, keepdim=True).clamp(min=1e-9)  # (B, T)
    return torch.bmm(weights.unsqueeze(1), last_hidden_state).squeeze(1)


### BEGIN SOLUTION
def mean_pool(last_hidden_state: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:  # noqa: F811
    """The written-out mean pooling (notebook 07)."""
    mask = attention_mask.unsqueeze(-1).to(last_hidden_state.dtype)  # (B, T, 1)
    summed = (last_hidden_state * mask).sum(dim=1)                   # (B, H)
    counts = mask.sum(dim=1).clamp(min=1e-9)                         # (B, 1); no 0/0
    return summed / counts
### END SOLUTION


class MultitaskBERT(nn.Module):
    def __init__(self, bert, dropout: float = 0.1, encoder: str = "finetune",
                 pair_mode: str = "joint", sts_loss: str = "mse", pooling: str = "pooler"):
        super().__init__()
        check_choice("pooling", pooling, POOLINGS)
        check_choice("encoder", encoder, ENCODER_MODES)
        check_choice("pair_mode", pair_mode, PAIR_MODES)
        check_choice("sts_loss", sts_loss, STS_LOSSES)
        if sts_loss != "mse" and pair_mode != "separate":
            raise ValueError(f"sts_loss={sts_loss!r} compares two sentence embeddings: "
                             "it needs pair_mode='separate'")
        self.bert, self.pair_mode, self.sts_loss = bert, pair_mode, sts_loss
        self.frozen, self.pooling = encoder == "frozen", pooling
        H = bert.config.hidden_size
        pair_in = H if pair_mode == "joint" else 4 * H
        self.dropout = nn.Dropout(dropout)
        self.sentiment = nn.Linear(H, NUM_SENTIMENT_CLASSES)
        self.paraphrase = nn.Linear(pair_in, 1)
        self.similarity = nn.Linear(pair_in, 1)
        if self.frozen:
            for p in self.bert.parameters():
                p.requires_grad_(False)
        self.train()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            self.bert.eval()  # frozen features: encoder dropout stays off
        return self

    # --- encoder -----------------------------------------------------------------
    def encode(self, input_ids, attention_mask, token_type_ids=None):
        """-> BertOutput; without a graph when the encoder is frozen."""
        if self.frozen:
            with torch.no_grad():
                return self.bert(input_ids, attention_mask, token_type_ids)
        return self.bert(input_ids, attention_mask, token_type_ids)

    def embed(self, input_ids, attention_mask, token_type_ids=None):
        """Mean-pooled sentence embeddings (B, H) over real tokens ([CLS]/[SEP] included)."""
        out = self.encode(input_ids, attention_mask, token_type_ids)
        return mean_pool(out.last_hidden_state, attention_mask)

    def pooled(self, batch):
        """The sentence (or joint pair) vector (B, H) the heads read: the pooler output,
        or with pooling="mean" the mean of the token vectors."""
        mask = batch["attention_mask"]
        out = self.encode(batch["input_ids"], mask, batch.get("token_type_ids"))
        if self.pooling == "mean":
            return mean_pool(out.last_hidden_state, mask)
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

    def head_input(self, task, batch):
        """What task's head reads: (B, H) for sst, pair_features for quora and sts. A batch
        that carries "features" (a frozen encoder's cached output, minbert.frozen) has it."""
        if "features" in batch:
            return batch["features"]
        return self.pooled(batch) if task == "sst" else self.pair_features(batch)

    # --- the three heads (CS224N names) -------------------------------------------
    def predict_sentiment(self, batch):
        """-> (B, 5) logits."""
        return self.sentiment(self.dropout(self.head_input("sst", batch)))

    def predict_paraphrase(self, batch):
        """-> (B,) logit of "is a paraphrase"."""
        return self.paraphrase(self.dropout(self.head_input("quora", batch))).squeeze(-1)

    def predict_similarity(self, batch):
        """-> (B,) similarity on the 0..5 scale."""
        if self.sts_loss != "mse":
            return losses.predict_similarity_from_cosine(*self.pair_embeddings(batch))
        x = self.similarity(self.dropout(self.head_input("sts", batch))).squeeze(-1)
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
        mine = yours.get(YOUR_HEADS[task]) if task in YOUR_HEADS else None
        if mine is not None:  # yours (03's head, saved): it computes (output, loss)
            return self.your_head_loss(mine, task, batch)
        # Stand-ins: torch's losses on the package's heads.
        out = self.forward(task, batch)
        if task == "sst":
            loss = F.cross_entropy(out, y.long())
        elif task == "quora":
            loss = F.binary_cross_entropy_with_logits(out, y.float())
        else:
            loss = F.mse_loss(out, y.float())
        return loss, out.detach()

    def your_head_loss(self, head, task, batch):
        """head(pooled, weight, bias, labels) -> (output, loss) on this task's Linear layer
        and the dropped-out vector it reads -> (loss, output detached)."""
        layer = getattr(self, YOUR_HEADS[task].split("_")[0])
        y = batch["labels"]
        out, loss = head(self.dropout(self.head_input(task, batch)), layer.weight, layer.bias,
                         y.long() if task == "sst" else y.float())
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

    @staticmethod
    def confidence(task, output):
        """Raw output -> the probability of the predicted label (softmax for sst, sigmoid
        for quora), or None for sts (a regression: its error is |pred - gold|)."""
        if task == "sst":
            return torch.softmax(output.float(), dim=-1).max(dim=-1).values
        if task == "quora":
            p = torch.sigmoid(output.float())
            return torch.maximum(p, 1 - p)
        return None

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

    def param_groups(self, head_lr=None) -> list[dict]:
        """Optimizer groups: the trainable encoder weights, then the heads (at `head_lr` if
        given: at 1e-5 a fresh head needs hundreds of steps to find the encoder's features)."""
        shared = {id(p) for p in self.shared_parameters()}
        trainable = [p for p in self.parameters() if p.requires_grad]
        heads = {"params": [p for p in trainable if id(p) not in shared]}
        groups = [{"params": [p for p in trainable if id(p) in shared]},
                  dict(heads, lr=head_lr) if head_lr else heads]
        return [g for g in groups if g["params"]]

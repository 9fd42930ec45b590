"""The masked-language-model head on a BERT encoder, with Hugging Face names (notebook 06_mlm).

transformers' BertForMaskedLM keeps its head as `cls.predictions` (transform.dense,
transform.LayerNorm, decoder tied to the word embeddings, bias); the same tree here means a
BertForPreTraining / BertForMaskedLM checkpoint's head loads by name, and a head trained
here is saved beside the encoder as `mlm_head.safetensors`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from .model import BertModel
from .pretrained import CheckpointError, check_state_dict, load_pretrained

IGNORE = -100  # label of positions that are not predicted (torch's cross_entropy default)
HEAD_FILE = "mlm_head.safetensors"


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
        got = {}  # the checkpoint's tensors under minbert's names
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
        check_state_dict(own, got, "MLM head", "the MLM head (cls.predictions.*)")
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

    def forward_loss(self, task, batch):
        """The trainer's interface (trainer.py): the masked-token loss of a micro-batch, summed
        and divided by batch["n_masked"], the masked tokens of its whole optimizer step (so
        that 4 x 2 accumulated equals one batch of 8); -> (loss, logits)."""
        loss, logits = self.masked_loss(batch["input_ids"], batch["attention_mask"],
                                        batch["labels"], reduction="sum")
        return loss / batch["n_masked"], logits

    def masked_loss(self, input_ids, attention_mask, labels, reduction="mean"):
        """The same loss as forward(...).loss, with the vocabulary projection done only at the
        labelled positions (about 15% of the tokens): roughly halves the cost on CPU."""
        h = self.bert(input_ids, attention_mask).last_hidden_state
        keep = labels != IGNORE
        logits = self.cls(h[keep])  # (n_masked, vocab)
        return F.cross_entropy(logits, labels[keep], reduction=reduction), logits


def load_mlm(name_or_path, **config_overrides) -> tuple[BertForMLM, object]:
    """-> (BertForMLM, tokenizer). Head: the checkpoint's cls.* weights, else the folder's
    mlm_head.safetensors, else a fresh one."""
    bert, tok, heads = load_pretrained(str(name_or_path), with_heads=True, **config_overrides)
    side = Path(name_or_path) / HEAD_FILE
    if not heads and side.is_file():
        heads = load_file(str(side))
    return BertForMLM(bert, heads or None), tok

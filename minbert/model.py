"""BERT, written out (notebook 01_attention); attention itself is in attention.py, the
embeddings in embeddings.py.

Devlin et al. 2019, "BERT: Pre-training of Deep Bidirectional Transformers";
Vaswani et al. 2017, "Attention Is All You Need".

Module and parameter names follow Hugging Face `modeling_bert.py`, so a
`BertModel` checkpoint's state dict loads with `strict=True` and no key map:
embeddings / encoder.layer[i].{attention.self, attention.output, intermediate,
output} / pooler. `LayerNorm` stays CamelCase for the same reason.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import yours
from .attention import attention, extended_attention_mask
from .embeddings import BertEmbeddings


@dataclass
class BertConfig:
    """Field names are those of transformers' `configuration_bert.py`, so a
    checkpoint's `config.json` reads straight in (unknown keys are ignored)."""
    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    initializer_range: float = 0.02
    # "sdpa": torch's fused scaled_dot_product_attention (fast; the default).
    # "manual": the softmax(QK^T/sqrt(d) + mask) V written out, as taught in 01.
    attn_implementation: str = "sdpa"
    # Skip the padding: run every token-wise layer (projections, FFN, LayerNorm) on the
    # real tokens only, packed into (tokens, hidden); only attention sees the padded grid.
    # Same numbers on real tokens; padded positions of last_hidden_state come out as 0.
    unpad: bool = True

    @classmethod
    def from_dict(cls, d: dict) -> "BertConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    @classmethod
    def from_json_file(cls, path) -> "BertConfig":
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: line {e.lineno} column {e.colno}: "
                             f"invalid JSON ({e.msg})") from None
        cfg = cls.from_dict(d)
        if d.get("hidden_act", "gelu") != "gelu":
            raise ValueError(f"{path}: hidden_act={d['hidden_act']!r}; minbert "
                             "implements only 'gelu'")
        if d.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"{path}: position_embedding_type must be 'absolute'")
        return cfg


@dataclass
class BertOutput:
    last_hidden_state: torch.Tensor  # (batch, seq, hidden)
    pooler_output: torch.Tensor      # (batch, hidden)
    attentions: tuple | None = None  # per layer (batch, heads, seq, seq), if asked


class Packing:
    """Where the real tokens of a padded (batch, seq) grid are, to pack and unpack them."""
    def __init__(self, attention_mask: torch.Tensor):
        self.batch, self.seq = attention_mask.shape
        self.index = attention_mask.reshape(-1).nonzero().squeeze(1)  # (tokens,)

    def pack(self, x):    # (batch, seq, ...) -> (tokens, ...)
        return x.reshape(self.batch * self.seq, *x.shape[2:]).index_select(0, self.index)

    def unpack(self, x):  # (tokens, ...) -> (batch, seq, ...), zeros at padding
        out = x.new_zeros(self.batch * self.seq, *x.shape[1:]).index_copy(0, self.index, x)
        return out.view(self.batch, self.seq, *x.shape[1:])


class BertSelfAttention(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        if config.hidden_size % config.num_attention_heads:
            raise ValueError(f"hidden_size {config.hidden_size} is not a multiple of "
                             f"num_attention_heads {config.num_attention_heads}")
        self.num_heads = config.num_attention_heads
        self.head_size = config.hidden_size // config.num_attention_heads
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)
        self.attn_implementation = config.attn_implementation

    def split_heads(self, x):
        b, s, _ = x.shape  # (batch, seq, hidden) -> (batch, heads, seq, head_size)
        return x.view(b, s, self.num_heads, self.head_size).transpose(1, 2)

    def merge_heads(self, x):
        b, _, s, _ = x.shape  # (batch, heads, seq, head_size) -> (batch, seq, hidden)
        return x.transpose(1, 2).reshape(b, s, self.num_heads * self.head_size)

    def forward(self, hidden_states, mask=None, output_attentions=False, packing=None):
        # With packing, hidden_states is (tokens, hidden): project the real tokens only,
        # then lay them out on the padded grid for the attention itself.
        grid = packing.unpack if packing is not None else (lambda x: x)
        q = self.split_heads(grid(self.query(hidden_states)))
        k = self.split_heads(grid(self.key(hidden_states)))
        v = self.split_heads(grid(self.value(hidden_states)))
        p = self.dropout.p if self.training else 0.0
        if self.attn_implementation == "sdpa" and not output_attentions \
                and yours.get("attention") is None:  # yours, when saved, runs in attention
            # Same maths, one fused kernel: no (b, h, s, s) tensor kept for backward.
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
            probs = None
        else:
            ctx, probs = attention(q, k, v, mask, p, self.training)
        ctx = self.merge_heads(ctx)
        return (packing.pack(ctx) if packing is not None else ctx), probs


class BertSelfOutput(nn.Module):
    """Output projection + dropout + residual + LayerNorm (post-LN, as in BERT)."""
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states, input_tensor):
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


class BertAttention(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        # Yours (01's MyBertSelfAttention, saved with minbert.yours.save) where saved: its
        # parameter names are the checkpoint's, so the pretrained weights load into it.
        mine = yours.get("self_attention")
        self.self = mine(config.hidden_size, config.num_attention_heads) if mine is not None \
            else BertSelfAttention(config)
        self.output = BertSelfOutput(config)
        self.num_heads = config.num_attention_heads

    def forward(self, hidden_states, mask=None, output_attentions=False, packing=None):
        if isinstance(self.self, BertSelfAttention):
            ctx, probs = self.self(hidden_states, mask, output_attentions, packing)
        else:
            ctx, probs = yours_self_attention(self.self, self.num_heads, hidden_states, mask,
                                              output_attentions, packing)
        return self.output(ctx, hidden_states), probs


def yours_self_attention(module, heads, hidden_states, mask, output_attentions, packing):
    """Your module takes (batch, seq, hidden) and returns the context alone: lay packed tokens
    out on the padded grid for it, and pack its output again. Its attention has no dropout.
    The probabilities, when asked for, come from `attention` on its own Q and K."""
    grid = packing.unpack(hidden_states) if packing is not None else hidden_states
    ctx = module(grid, mask)
    probs = None
    if output_attentions:
        b, s, _ = grid.shape
        q, k = (x(grid).view(b, s, heads, -1).transpose(1, 2)
                for x in (module.query, module.key))
        probs = attention(q, k, k, mask)[1]
    return (packing.pack(ctx) if packing is not None else ctx), probs


class BertIntermediate(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)

    def forward(self, hidden_states):
        return F.gelu(self.dense(hidden_states))  # exact (erf) GELU, as BERT's "gelu"


class BertFFNOutput(nn.Module):
    """Feed-forward down-projection + dropout + residual + LayerNorm.
    (transformers calls this class BertOutput; the key names are the same.)"""
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states, input_tensor):
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


class BertLayer(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertFFNOutput(config)

    def forward(self, hidden_states, mask=None, output_attentions=False, packing=None):
        attn_out, probs = self.attention(hidden_states, mask, output_attentions, packing)
        return self.output(self.intermediate(attn_out), attn_out), probs


class BertEncoder(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(config) for _ in range(config.num_hidden_layers))


class BertPooler(nn.Module):
    """tanh(W h_[CLS] + b): the sentence vector BERT's next-sentence head was trained on."""
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden_states):
        return torch.tanh(self.dense(hidden_states[:, 0]))


class BertModel(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        # Yours (01's MyBertEmbeddings, saved with minbert.yours.save) where saved.
        mine = yours.get("embeddings")
        self.embeddings = mine(config) if mine is not None else BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config)
        self.apply(self._init_weights)

    def _init_weights(self, module):
        # BERT's initialisation: N(0, 0.02) weights, zero biases, LayerNorm = identity.
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=self.config.initializer_range)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
        if isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def set_attn_implementation(self, name: str):
        if name not in ("sdpa", "manual"):
            raise ValueError(f"attn_implementation must be 'sdpa' or 'manual', got {name!r}")
        self.config.attn_implementation = name
        for layer in self.encoder.layer:
            layer.attention.self.attn_implementation = name

    def forward(self, input_ids, attention_mask=None, token_type_ids=None,
                output_attentions=False):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden_states = self.embeddings(input_ids, token_type_ids)
        mask = extended_attention_mask(attention_mask, hidden_states.dtype)
        packing = None
        if self.config.unpad and not bool(attention_mask.all()):
            packing = Packing(attention_mask)
            hidden_states = packing.pack(hidden_states)  # (tokens, hidden)
        attentions = []
        for layer in self.encoder.layer:
            hidden_states, probs = layer(hidden_states, mask, output_attentions, packing)
            attentions.append(probs)
        if packing is not None:
            hidden_states = packing.unpack(hidden_states)  # (batch, seq, hidden)
        return BertOutput(hidden_states, self.pooler(hidden_states),
                          tuple(attentions) if output_attentions else None)

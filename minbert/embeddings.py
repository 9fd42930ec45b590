"""BERT's embeddings (notebook 01_attention, exercise 5c): word + position + token-type
embeddings, then LayerNorm and dropout, with Hugging Face's parameter names
(`word_embeddings`, `position_embeddings`, `token_type_embeddings`, `LayerNorm`), so the
checkpoint's `embeddings.*` weights load with strict=True.

As in attention.py: a stand-in first (transformers' own BertEmbeddings), then, in a SOLUTION
block, the written-out module that replaces it in the repository; the release removes the
block. `minbert.model.BertModel` holds the learner's saved MyBertEmbeddings instead where one
is saved (minbert.yours).
"""
from __future__ import annotations

import torch
from torch import nn

# The config fields the embeddings read (transformers' names, which minbert's BertConfig shares).
FIELDS = ("vocab_size", "hidden_size", "max_position_embeddings", "type_vocab_size",
          "layer_norm_eps", "hidden_dropout_prob", "pad_token_id")


def BertEmbeddings(config) -> nn.Module:  # noqa: N802 (the repository's is a class)
    """Stand-in (01's MyBertEmbeddings is the exercise): transformers' own module, built from
    minbert's config; it is called as minbert calls its embeddings, (input_ids,
    token_type_ids=None). Imported here, not above: transformers takes seconds to import."""
    from transformers import BertConfig as HFBertConfig
    from transformers.models.bert.modeling_bert import BertEmbeddings as HFBertEmbeddings
    return HFBertEmbeddings(HFBertConfig(**{k: getattr(config, k) for k in FIELDS}))


### BEGIN SOLUTION
class BertEmbeddings(nn.Module):  # noqa: F811
    """The written-out embeddings (notebook 01)."""
    def __init__(self, config):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size,
                                            padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids, token_type_ids=None):
        seq = input_ids.size(1)
        pos = torch.arange(seq, device=input_ids.device)[None, :]  # (1, seq)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = (self.word_embeddings(input_ids) + self.position_embeddings(pos)
             + self.token_type_embeddings(token_type_ids))
        return self.dropout(self.LayerNorm(x))
### END SOLUTION

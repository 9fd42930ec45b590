"""Checks of the notebooks' exercises, one module per notebook.

    attention    01_attention   check_attention, check_padding_mask, check_split_heads,
                                check_merge_heads, check_bert_layer,
                                check_self_attention_module, check_embeddings_module,
                                check_bert_forward
    adamw        02_adamw       check_adamw_step, check_adamw_optimizer (HAND_EXAMPLE)
    heads        03_heads       check_sentiment_head, check_paraphrase_head, check_similarity_head
    round_robin  04_round_robin check_round_robin
    pcgrad       05_pcgrad      check_project_conflicting
    mlm          06_mlm         check_mask_tokens, check_mlm_head
    cosine       07_cosine      check_mean_pool, check_cosine_mse

A check cell is one call, `check_attention(my_attention)`; its hidden variant (other
arguments, or `hidden=True`) sits in the cell's HIDDEN CHECKS block. Each check runs the
learner's function on fresh, seeded inputs against an independent oracle (torch,
transformers, sentence-transformers, numpy, a value worked out by hand; never minbert's own
code, so a bug shared by the package and a solution cannot hide) and fails with a message
meant for the learner; an exercise still raising NotImplementedError fails with "exercise
not done yet" (`_common._call`). Every check prints its verdict line (`✓ check_x(fn):
passed` / `✗ check_x(fn): FAILED: why`); a failure raises AssertionError only with
MINBERT_CHECKS=raise or under MINBERT_CI=1, and otherwise (a student's kernel) returns,
so "Run All" runs every later cell (`_common.verdict`, `minbert.env.checks_raise`).
"""
from .adamw import HAND_EXAMPLE, check_adamw_optimizer, check_adamw_step
from .attention import (check_attention, check_bert_forward, check_bert_layer,
                        check_embeddings_module, check_merge_heads, check_padding_mask,
                        check_self_attention_module, check_split_heads)
from .cosine import check_cosine_mse, check_mean_pool
from .heads import check_paraphrase_head, check_sentiment_head, check_similarity_head
from .mlm import check_mask_tokens, check_mlm_head
from .pcgrad import check_project_conflicting
from .round_robin import check_round_robin

__all__ = ["HAND_EXAMPLE", "check_adamw_optimizer", "check_adamw_step", "check_attention",
           "check_bert_forward", "check_bert_layer", "check_cosine_mse", "check_embeddings_module",
           "check_mask_tokens", "check_mean_pool", "check_merge_heads", "check_mlm_head", "check_padding_mask",
           "check_paraphrase_head", "check_project_conflicting", "check_round_robin",
           "check_self_attention_module", "check_sentiment_head", "check_similarity_head",
           "check_split_heads"]

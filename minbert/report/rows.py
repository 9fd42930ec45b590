"""The rows of the seed report's results table, each as what it changes in row 2.

A row is what it changes in its preset's baseline (row 2, presets/*.toml), exactly as the
seed's row differs from the seed's baseline ("pretrain" = frozen encoder, the seed's name).
Row 0 trains nothing (report/zero_shot.py); row 14 is not in the seed's table: the seed's own
settings, for a preset that changed them.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..train import RECIPES


@dataclass(frozen=True)
class Row:
    name: str                  # the file name part and the table label (the seed's names)
    description: str
    changes: dict | None       # what the row changes in its preset's baseline (row 2), as
    #                            the seed's row differs from the seed's; None: nothing trained
    mlm: str | None = None     # MLM pre-step before training: "v1" / "v2" (minbert.mlm presets)


FROZEN = dict(encoder="frozen", lr=1e-3)       # "pretrain": only the heads train
ADJUSTED = dict(batch_size=64, head_dropout=0.5)  # the seed's "adjusted hyper-parameters"
# the seed's own training settings (CS224N defaults), for row 14 on a preset that changed them
SEED_SETTINGS = RECIPES["seed"]
ROWS = {
    0: Row("zero-shot", "no training: cosine of mean-pooled embeddings (STS r, Quora threshold "
           "from train); SST = majority-class baseline", None),
    1: Row("multitask-pretrain", "frozen BERT, the three heads trained round-robin (lr 1e-3)",
           FROZEN),
    2: Row("multitask-finetune", "round-robin multitask fine-tuning: the baseline", {}),
    # pcgrad_reduction="mean": the seed used Tseng's PCGrad, which averages (minbert.pcgrad);
    # one batch of each task a round (zipped loaders: "shortest"), one batch size, one step a round
    9: Row("pcgrad", "multitask fine-tuning with PCGrad (one step per round, mean reduction)",
           dict(mode="pcgrad", pcgrad_reduction="mean", schedule="shortest")),
    # pair_mode applies to both pair tasks: Quora then reads [u, v, |u-v|, u*v] too
    10: Row("cosine", "multitask fine-tuning, STS trained as cos(u, v) vs score/5 (Sentence-BERT "
            "CosineSimilarityLoss), pairs encoded separately",
            dict(sts_loss="cosine_mse", pair_mode="separate")),
    11: Row("mlm-v1", "extra MLM pre-training on CFIMDB (v1: batch 4), then row 2", {}, "v1"),
    12: Row("adjusted", "row 2 with adjusted hyper-parameters: batch 64, dropout 0.5", ADJUSTED),
    13: Row("adjusted-mlm-v2", "row 12 after MLM v2 (batch 4 x 32 accumulation)", ADJUSTED, "v2"),
    14: Row("seed-settings", "row 2 with the seed's own settings (batch 8, dropout 0.3, constant "
            "lr 1e-5, heads too, pooler, joint pairs): not in the seed's table; = row 2 under gpu",
            SEED_SETTINGS),
}
# rows 3-8: single task, frozen ("pretrain", the seed's name) then fine-tuned, per task
for i, (task, label) in enumerate((("sst", "SST"), ("quora", "Quora"), ("sts", "STS"))):
    for j, (name, frozen, words) in enumerate((("pretrain", True, "frozen BERT"),
                                               ("finetune", False, "fine-tuned"))):
        ROWS[3 + 2 * i + j] = Row(f"{task}-{name}", f"single-task {label}, {words}",
                                  dict(mode="single", tasks=(task,), **(FROZEN if frozen else {})))
ROWS = dict(sorted(ROWS.items()))

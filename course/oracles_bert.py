"""Grader-side plans of notebook 01's pretrained checks: the self-attention module loaded with
the grader's weights (a drawn layer of the bundled checkpoint), and the whole encoder on
grader-drawn token ids. Oracles: transformers' BertSelfAttention and BertModel (eager
attention), loaded here from the bundled checkpoint's files."""
import functools

import torch

from .oracles_attention import additive, padding01, pick
from .verdict import Plan, Wrong, close, each_close

PAD, CLS, SEP = 0, 101, 102


@functools.lru_cache(maxsize=1)
def oracle_model():
    import transformers

    from minbert.pretrained import bundled_path
    transformers.utils.logging.disable_progress_bar()
    return transformers.BertModel.from_pretrained(str(bundled_path()),
                                                  attn_implementation="eager").eval()


def self_attention_module(fn, seed):
    from minbert.checks.attention import _checkpoint_part
    gen, plan = torch.Generator().manual_seed(seed), Plan()
    model = oracle_model()
    layer = pick(gen, 0, model.config.num_hidden_layers - 1)
    hf = model.encoder.layer[layer].attention.self
    for k, t in _checkpoint_part(f"encoder.layer.{layer}.attention.self.").items():
        plan.put(f"w.{k}", t)
    b, s, hidden = pick(gen, 2, 4), pick(gen, 5, 12), model.config.hidden_size
    x = torch.randn(b, s, hidden, generator=gen)
    mask = additive(padding01(b, s, gen), x.dtype)
    init = [hidden, model.config.num_attention_heads]
    plan.cases = [{"runner": "module", "fn": fn, "init": init, "weights": "w.",
                   "args": [plan.put("x", x)] + m} for m in ([None], [plan.put("mask", mask)])]
    with torch.no_grad():
        want = [hf(x, m) for m in (None, mask)]
    want = [w[0] if isinstance(w, tuple) else w for w in want]

    plan.judge = lambda out: each_close(out, want, "context", 1e-5, "query/key/value, split "
                                        "the heads, attend (1/sqrt(head_size), the mask added), "
                                        "merge the heads back.")
    return plan


def token_batch(gen, batch, seq):
    """Random ordinary ids, [CLS] first, [SEP] last, padded after; lengths differ."""
    ids = torch.randint(1000, 30000, (batch, seq), generator=gen)
    lengths = [seq] + torch.randint(3, seq, (batch - 1,), generator=gen).tolist()
    mask = torch.tensor([[1] * n + [0] * (seq - n) for n in lengths])
    ids[:, 0] = CLS
    ids[torch.arange(batch), torch.tensor(lengths) - 1] = SEP
    ids[mask == 0] = PAD
    return ids, mask


def bert_forward(fn, seed):
    gen, plan = torch.Generator().manual_seed(seed), Plan()
    ids, mask = token_batch(gen, pick(gen, 3, 5), pick(gen, 8, 20))
    tt = torch.zeros_like(ids)
    plan.cases = [{"fn": fn, "args": [{"bert": "minilm-l6"}, plan.put("ids", ids),
                                      plan.put("mask", mask), plan.put("tt", tt)]}]
    with torch.no_grad():
        ref = oracle_model()(input_ids=ids, attention_mask=mask, token_type_ids=tt)
    real = mask.bool()

    def judge(out):
        hidden = out.get(0, "out0", "last_hidden_state", ref.last_hidden_state.shape,
                         torch.float32)
        pooled = out.get(0, "out1", "pooler_output", ref.pooler_output.shape, torch.float32)
        close(hidden[real], ref.last_hidden_state[real], "last_hidden_state (real tokens)",
              1e-4, "Embeddings, then every layer with the additive padding mask.")
        close(pooled, ref.pooler_output, "pooler_output", 1e-4, "pooler = tanh(dense(h[:, 0])).")
    plan.judge = judge
    return plan


EMBEDDING_CONFIG = ("vocab_size", "hidden_size", "max_position_embeddings", "type_vocab_size",
                    "layer_norm_eps", "hidden_dropout_prob", "pad_token_id")


def embeddings_module(fn, seed):
    """cls(config) loaded with the checkpoint's embeddings; on drawn ids with two segments
    (token types 0 and 1) and without token types; in training mode it must drop out."""
    from minbert.checks.attention import _checkpoint_part
    gen, plan, model = torch.Generator().manual_seed(seed), Plan(), oracle_model()
    for k, t in _checkpoint_part("embeddings.").items():
        if k != "position_ids":
            plan.put(f"w.{k}", t)
    ids, mask = token_batch(gen, pick(gen, 3, 5), pick(gen, 8, 20))
    types = torch.zeros_like(ids)
    for r, n in enumerate(mask.sum(1).tolist()):
        types[r, pick(gen, 1, n - 1):n] = 1
    config = {"bertconfig": {k: getattr(model.config, k) for k in EMBEDDING_CONFIG}}
    calls = [[plan.put("ids", ids), plan.put("types", types)], [plan.put("ids", ids), None]]
    plan.cases = [{"runner": "module", "fn": fn, "init": [config], "weights": "w.", "args": a,
                   "train": train} for a, train in ((calls[0], False), (calls[1], False),
                                                    (calls[0], True))]
    with torch.no_grad():
        want = [model.embeddings(input_ids=ids, token_type_ids=t) for t in (types, None)]

    def judge(out):
        got = each_close(out, want, "embeddings", 1e-5, "LayerNorm(word + position + "
                         "token-type embeddings); token types all 0 when none are given.")
        if torch.equal(out.get(2, "out0", "embeddings in training mode", want[0].shape), got[0]):
            raise Wrong("in training mode the embeddings are dropped out (nn.Dropout after the "
                        "LayerNorm, config.hidden_dropout_prob)")
    plan.judge = judge
    return plan

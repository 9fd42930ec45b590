"""Checks of notebook 01_attention: attention, the padding mask, heads, a layer, the
self-attention module, the embeddings module, the encoder.

Oracles: torch's `scaled_dot_product_attention` (with a boolean mask), plain slicing and
`torch.cat`, transformers' `BertLayer`, `BertSelfAttention`, `BertEmbeddings` and `BertModel`
(eager attention).
The additive mask the checks feed is written here, not taken from minbert.model.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ._common import _call, _close, _generator, _tensor, verdict

__all__ = ["check_attention", "check_padding_mask", "check_split_heads", "check_merge_heads",
           "check_bert_layer", "check_self_attention_module", "check_embeddings_module",
           "check_bert_forward"]


def _padding(batch, seq, gen):
    """A (batch, seq) 0/1 mask: row 0 full, the others padded at the end (>= 1 token)."""
    lengths = [seq] + torch.randint(1, seq, (batch - 1,), generator=gen).tolist()
    return torch.tensor([[1] * n + [0] * (seq - n) for n in lengths])


def _additive(mask01, dtype):
    # Written here independently of minbert.model.extended_attention_mask.
    return torch.zeros(mask01.shape, dtype=dtype).masked_fill(mask01 == 0, torch.finfo(dtype).min)[:, None, None, :]


@verdict
def check_attention(fn, *, batch=2, heads=3, seq=5, head_size=8, dtype=torch.float32, seed=0):
    """fn(query, key, value, mask=None) -> (context, probs), inputs (batch, heads, seq, head_size),
    mask additive (batch, 1, 1, seq). Oracle: torch's scaled_dot_product_attention with a
    boolean mask; the probabilities come from the same oracle with value = identity."""
    gen = _generator(seed)
    q, k, v = (torch.randn(batch, heads, seq, head_size, generator=gen, dtype=dtype) for _ in range(3))
    mask01 = _padding(batch, seq, gen)
    keep = mask01.bool()[:, None, None, :]  # True = may attend
    eye = torch.eye(seq, dtype=dtype).expand(batch, heads, seq, seq)
    atol = 1e-5 if dtype == torch.float32 else 1e-10
    for name, add, boolean in (("without a mask", None, None),
                               ("with a padding mask", _additive(mask01, dtype), keep)):
        out = _call(fn, q, k, v, add)
        assert isinstance(out, tuple) and len(out) == 2, \
            f"{name}: return a tuple (context, probs), got {type(out).__name__}"
        ctx, probs = out
        _tensor(ctx, "context", (batch, heads, seq, head_size), dtype)
        _tensor(probs, "probs", (batch, heads, seq, seq), dtype)
        want_probs = F.scaled_dot_product_attention(q, k, eye, attn_mask=boolean)
        want_ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=boolean)
        assert torch.allclose(probs.sum(-1), torch.ones((), dtype=dtype), atol=1e-5), \
            f"{name}: each row of probs should sum to 1 (softmax over the keys, dim=-1)"
        _close(probs, want_probs, f"probs {name}", atol,
               "Did you divide the scores by sqrt(head_size) and add the mask before the softmax?")
        _close(ctx, want_ctx, f"context {name}", atol, "context = probs @ value.")


@verdict
def check_padding_mask(fn, *, batch=4, seq=7, dtype=torch.float32, seed=0):
    """fn(attention_mask (batch, seq) of 0/1, dtype) -> additive (batch, 1, 1, seq) mask.
    Oracle: attention with it must equal sdpa with the boolean mask."""
    gen = _generator(seed)
    mask01 = _padding(batch, seq, gen)
    add = _call(fn, mask01, dtype)
    assert isinstance(add, torch.Tensor), f"return a tensor, got {type(add).__name__}"
    assert tuple(add.shape) == (batch, 1, 1, seq), \
        f"the mask has shape {tuple(add.shape)}; expected (batch, 1, 1, seq) = {(batch, 1, 1, seq)} " \
        f"so that it broadcasts over heads and query positions"
    assert add.dtype == dtype, f"the mask has dtype {add.dtype}; expected {dtype} (the dtype argument)"
    real, pad = mask01.bool(), ~mask01.bool()
    assert (add[:, 0, 0][real] == 0).all(), "real tokens (mask 1) must get 0 added to their scores"
    assert (add[:, 0, 0][pad] <= -1e4).all(), \
        "padded tokens (mask 0) must get a large negative number (e.g. torch.finfo(dtype).min)"
    q, k, v = (torch.randn(batch, 2, seq, 4, generator=gen, dtype=dtype) for _ in range(3))
    got = F.scaled_dot_product_attention(q, k, v, attn_mask=add)
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=real[:, None, None, :])
    _close(got, want, "attention with your mask", 1e-5)


@verdict
def check_split_heads(fn, *, batch=2, seq=5, num_heads=3, head_size=4, seed=0):
    """fn(x (batch, seq, heads*head_size), num_heads) -> (batch, heads, seq, head_size).
    Oracle: head i is the i-th block of head_size columns, cut out by slicing."""
    gen = _generator(seed)
    x = torch.randn(batch, seq, num_heads * head_size, generator=gen)
    want = torch.stack([x[:, :, i * head_size:(i + 1) * head_size] for i in range(num_heads)], dim=1)
    got = _tensor(_call(fn, x, num_heads), "split heads", want.shape)
    assert torch.equal(got, want), ("head i should hold columns i*head_size .. (i+1)*head_size-1 "
                                    "of every position: view as (batch, seq, heads, head_size), "
                                    "then swap the seq and heads axes")


@verdict
def check_merge_heads(fn, *, batch=2, seq=5, num_heads=3, head_size=4, seed=0):
    """fn(x (batch, heads, seq, head_size)) -> (batch, seq, heads*head_size).
    Oracle: the heads concatenated along the feature axis with torch.cat."""
    gen = _generator(seed)
    x = torch.randn(batch, num_heads, seq, head_size, generator=gen)
    want = torch.cat([x[:, i] for i in range(num_heads)], dim=-1)
    got = _tensor(_call(fn, x), "merged heads", want.shape)
    assert torch.equal(got, want), ("position s should hold head 0's vector, then head 1's, ...: "
                                    "swap the heads and seq axes back before reshaping")


def _hf_layer(hidden, heads, intermediate, eps, dropout, gen):
    from transformers import BertConfig
    from transformers.models.bert.modeling_bert import BertLayer
    cfg = BertConfig(hidden_size=hidden, num_attention_heads=heads, intermediate_size=intermediate,
                     layer_norm_eps=eps, hidden_dropout_prob=dropout, attention_probs_dropout_prob=0.0,
                     hidden_act="gelu")
    cfg._attn_implementation = "eager"  # the written-out softmax(QK^T/sqrt(d) + mask) V
    layer = BertLayer(cfg)
    with torch.no_grad():  # random weights, LayerNorm affine included, so misuse shows
        for name, p in layer.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            p.copy_(1.0 + 0.3 * noise if name.endswith("LayerNorm.weight") else 0.3 * noise)
    return layer


@verdict
def check_bert_layer(fn, *, shape=(2, 6, 32), num_heads=4, intermediate=64, eps=1e-12,
                     dropout_p=0.0, seed=0):
    """fn(hidden_states, mask, params, num_heads, eps, dropout_p) -> (batch, seq, hidden),
    hidden_states of `shape` (batch, seq, hidden). Oracle: transformers' BertLayer holding
    the same weights (`params` is its named_parameters(), HF names). With dropout_p > 0 both
    run in training mode from the same seed, so they draw the same dropout masks."""
    batch, seq, hidden = shape
    gen = _generator(seed)
    layer = _hf_layer(hidden, num_heads, intermediate, eps, dropout_p, gen)
    layer.train(dropout_p > 0)
    x = torch.randn(batch, seq, hidden, generator=gen)
    mask = _additive(_padding(batch, seq, gen), x.dtype)
    params = {k: v.detach().clone() for k, v in layer.named_parameters()}
    torch.manual_seed(seed)
    with torch.no_grad():
        want = layer(x, mask)
    want = want[0] if isinstance(want, tuple) else want
    torch.manual_seed(seed)
    got = _tensor(_call(fn, x.clone(), mask, params, num_heads, eps, dropout_p), "layer output",
                  want.shape, x.dtype)
    hint = ("Post-LN BERT: a = LayerNorm(x + dropout(dense(attention(x)))), "
            "out = LayerNorm(a + dropout(W2 gelu(W1 a)))"
            + ("; apply F.dropout(..., p=dropout_p, training=True) to the two dense outputs, "
               "attention output first" if dropout_p else ""))
    _close(got, want, "layer output", 2e-5, hint)


_ORACLE = {}


def _pretrained_pair():
    """(minbert model, HF BertModel, tokenizer) for the bundled MiniLM, loaded once."""
    if not _ORACLE:
        import transformers

        from ..pretrained import bundled_path, load_pretrained
        model, tok = load_pretrained("minilm-l6")
        bars = transformers.utils.logging.is_progress_bar_enabled()
        transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bar in the cell
        try:
            oracle = transformers.BertModel.from_pretrained(str(bundled_path()),
                                                            attn_implementation="eager").eval()
        finally:
            if bars:
                transformers.utils.logging.enable_progress_bar()
        _ORACLE.update(model=model, oracle=oracle, tok=tok)
    return _ORACLE["model"], _ORACLE["oracle"], _ORACLE["tok"]


@verdict
def check_bert_forward(fn, sentences, *, atol=1e-5):
    """fn(model, input_ids, attention_mask, token_type_ids) -> (last_hidden_state, pooler_output)
    on the bundled MiniLM, against transformers' BertModel on a padded batch of `sentences`.
    Only real (unpadded) positions of last_hidden_state are compared: at padded positions the
    two float32 computations drift ~3e-5 apart and no later step reads them."""
    model, oracle, tok = _pretrained_pair()
    batch = tok(list(sentences), padding=True, return_tensors="pt")
    assert (batch["attention_mask"] == 0).any(), "give sentences of different lengths, so there is padding"
    with torch.no_grad():
        out = _call(fn, model, batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        ref = oracle(**batch)
    assert isinstance(out, tuple) and len(out) == 2, "return (last_hidden_state, pooler_output)"
    hidden, pooled = out
    _tensor(hidden, "last_hidden_state", ref.last_hidden_state.shape)
    _tensor(pooled, "pooler_output", ref.pooler_output.shape)
    real = batch["attention_mask"].bool()
    _close(hidden[real], ref.last_hidden_state[real], "last_hidden_state (real tokens)", atol,
           "Embeddings, then every layer with the additive padding mask.")
    _close(pooled, ref.pooler_output, "pooler_output", atol, "pooler = tanh(dense(h[:, 0])).")


def _checkpoint_part(prefix):
    """{name under prefix: tensor} read from the bundled checkpoint's file (its `bert.`
    prefix, if any, dropped): the keys a module at `prefix` must have to load it."""
    from safetensors.torch import load_file

    from ..pretrained import bundled_path
    state = load_file(str(bundled_path() / "model.safetensors"))
    state = {k[len("bert."):] if k.startswith("bert.") else k: v for k, v in state.items()}
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def _load_part(module, name, prefix, what):
    """Load the checkpoint's weights under `prefix` into the learner's module, strictly."""
    assert isinstance(module, torch.nn.Module), \
        f"{name}(...) should build a torch.nn.Module, got {type(module).__name__}"
    state = {k: v for k, v in _checkpoint_part(prefix).items() if k != "position_ids"}
    expected, found = sorted(state), sorted(module.state_dict())
    assert found == expected, (
        f"load_state_dict(strict=True) of the checkpoint's {what} needs the names expected "
        f"{expected}, found {found}: name the layers as Hugging Face does")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise AssertionError(f"the checkpoint's weights do not fit your layers: "
                             f"{' '.join(str(e).split())}") from None


@verdict
def check_embeddings_module(cls, sentences, *, atol=1e-5):
    """cls(config) -> an nn.Module whose parameters carry Hugging Face's names, so that the
    bundled MiniLM's `embeddings.*` weights load with load_state_dict(strict=True) (its
    position_ids buffer aside); module(input_ids, token_type_ids=None) -> (batch, seq, hidden).
    config has transformers' field names (vocab_size, hidden_size, max_position_embeddings,
    type_vocab_size, layer_norm_eps, hidden_dropout_prob, pad_token_id). Oracle: transformers'
    BertEmbeddings of the pretrained MiniLM, eval mode, on padded sentence pairs (token types
    0 and 1) and on single sentences without token_type_ids; in training mode it drops out."""
    _, oracle, tok = _pretrained_pair()
    name = getattr(cls, "__name__", "your class")
    module = _call(cls, oracle.config, _name=name)
    _load_part(module, name, "embeddings.", "embeddings")
    module.eval()
    pairs = tok(list(sentences), list(reversed(sentences)), padding=True, return_tensors="pt")
    singles = tok(list(sentences), padding=True, return_tensors="pt")
    hint = ("LayerNorm(word + position + token-type embeddings), positions 0..seq-1, token "
            "types all 0 when none are given.")
    with torch.no_grad():
        for what, batch, types in (("sentence pairs", pairs, pairs["token_type_ids"]),
                                   ("single sentences, token_type_ids=None", singles, None)):
            want = oracle.embeddings(input_ids=batch["input_ids"], token_type_ids=types)
            got = _tensor(_call(module, batch["input_ids"], types, _name=f"{name}.forward"),
                          f"embeddings of {what}", want.shape, want.dtype)
            _close(got, want, f"embeddings of {what}", atol, hint)
        module.train()
        dropped = _call(module, batch["input_ids"], types, _name=f"{name}.forward")
    assert not torch.equal(dropped, got), (
        "in training mode the embeddings are dropped out (config.hidden_dropout_prob), "
        "as BERT's are: nn.Dropout after the LayerNorm")


@verdict
def check_self_attention_module(cls, sentences, *, layer=0, atol=1e-5):
    """cls(hidden_size, num_heads) -> an nn.Module whose parameters carry Hugging Face's names
    (query, key, value), so that the bundled MiniLM's `encoder.layer.<layer>.attention.self.*`
    weights load with load_state_dict(strict=True); module(hidden_states, mask=None) ->
    context (batch, seq, hidden). Oracle: transformers' BertSelfAttention of the same layer
    (BertModel.from_pretrained, eager attention, eval mode), on that layer's real inputs for a
    padded batch of `sentences`, with and without the additive padding mask."""
    _, oracle, tok = _pretrained_pair()
    cfg, name = oracle.config, getattr(cls, "__name__", "your class")
    module = _call(cls, cfg.hidden_size, cfg.num_attention_heads, _name=name)
    _load_part(module, name, f"encoder.layer.{layer}.attention.self.",
               f"layer {layer} self-attention")
    module.eval()
    batch = tok(list(sentences), padding=True, return_tensors="pt")
    assert (batch["attention_mask"] == 0).any(), "give sentences of different lengths, so there is padding"
    hf = oracle.encoder.layer[layer].attention.self
    with torch.no_grad():
        x = oracle(**batch, output_hidden_states=True).hidden_states[layer]  # layer's input
        mask = _additive(batch["attention_mask"], x.dtype)
        for what, m in (("without a mask", None), ("with the padding mask", mask)):
            want = hf(x, m)
            want = want[0] if isinstance(want, tuple) else want
            got = _tensor(_call(module, x.clone(), m, _name=f"{name}.forward"),
                          f"context {what}", want.shape, x.dtype)
            _close(got, want, f"context {what}", atol,
                   "Project with query/key/value, split into heads (my_split_heads), attend "
                   "(my_attention, scores scaled by 1/sqrt(head_size), the mask added), merge "
                   "the heads back (my_merge_heads).")

"""Checks for the exercises of notebooks 01_attention and 02_adamw.

Each `check_*` calls the learner's function on fresh, seeded inputs and compares
it with an independent oracle: torch's `scaled_dot_product_attention`, plain
slicing, transformers' `BertLayer` / `BertModel`, or the AdamW formulas written
out per number in Python floats. minbert's own code is never the oracle, so a
bug shared by the package and a solution cannot hide. A failed check raises
AssertionError with a message meant for the learner; an exercise still raising
NotImplementedError fails with "exercise not done yet".
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["check_attention", "check_padding_mask", "check_split_heads", "check_merge_heads",
           "check_bert_layer", "check_bert_forward", "check_adamw_step", "check_adamw_optimizer"]


def _call(fn, *args, _name=None, **kwargs):
    """Call the learner's function; turn any exception into a failed check."""
    name = _name or getattr(fn, "__name__", repr(fn))
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise AssertionError(f"{name}: exercise not done yet (it still raises "
                             f"NotImplementedError; replace it with your code)") from None
    except Exception as e:  # a crash is a failed check too, with the reason kept
        raise AssertionError(f"{name} raised {type(e).__name__}: {e}") from e


def _tensor(x, name, shape, dtype=None):
    assert isinstance(x, torch.Tensor), f"{name} should be a torch.Tensor, got {type(x).__name__}"
    assert tuple(x.shape) == tuple(shape), f"{name} has shape {tuple(x.shape)}, expected {tuple(shape)}"
    if dtype is not None:
        assert x.dtype == dtype, f"{name} has dtype {x.dtype}, expected {dtype}"
    assert torch.isfinite(x).all(), f"{name} contains inf or nan"
    return x


def _close(got, want, name, atol, hint=""):
    diff = (got.detach().double() - want.detach().double()).abs().max().item()
    assert diff <= atol, (f"{name} differs from the reference by up to {diff:.3g} "
                          f"(tolerance {atol:g}).{' ' + hint if hint else ''}")


def _padding(batch, seq, gen):
    """A (batch, seq) 0/1 mask: row 0 full, the others padded at the end (>= 1 token)."""
    lengths = [seq] + torch.randint(1, seq, (batch - 1,), generator=gen).tolist()
    return torch.tensor([[1] * n + [0] * (seq - n) for n in lengths])


def _additive(mask01, dtype):
    # Written here independently of minbert.model.extended_attention_mask.
    return torch.zeros(mask01.shape, dtype=dtype).masked_fill(mask01 == 0, torch.finfo(dtype).min)[:, None, None, :]


# --------------------------------------------------------------------- 01_attention
def check_attention(fn, *, batch=2, heads=3, seq=5, head_size=8, dtype=torch.float32, seed=0):
    """fn(query, key, value, mask=None) -> (context, probs), inputs (batch, heads, seq, head_size),
    mask additive (batch, 1, 1, seq). Oracle: torch's scaled_dot_product_attention with a
    boolean mask; the probabilities come from the same oracle with value = identity."""
    gen = torch.Generator().manual_seed(seed)
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


def check_padding_mask(fn, *, batch=4, seq=7, dtype=torch.float32, seed=0):
    """fn(attention_mask (batch, seq) of 0/1, dtype) -> additive (batch, 1, 1, seq) mask.
    Oracle: attention with it must equal sdpa with the boolean mask."""
    gen = torch.Generator().manual_seed(seed)
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


def check_split_heads(fn, *, batch=2, seq=5, num_heads=3, head_size=4, seed=0):
    """fn(x (batch, seq, heads*head_size), num_heads) -> (batch, heads, seq, head_size).
    Oracle: head i is the i-th block of head_size columns, cut out by slicing."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, seq, num_heads * head_size, generator=gen)
    want = torch.stack([x[:, :, i * head_size:(i + 1) * head_size] for i in range(num_heads)], dim=1)
    got = _tensor(_call(fn, x, num_heads), "split heads", want.shape)
    assert torch.equal(got, want), ("head i should hold columns i*head_size .. (i+1)*head_size-1 "
                                    "of every position: view as (batch, seq, heads, head_size), "
                                    "then swap the seq and heads axes")


def check_merge_heads(fn, *, batch=2, seq=5, num_heads=3, head_size=4, seed=0):
    """fn(x (batch, heads, seq, head_size)) -> (batch, seq, heads*head_size).
    Oracle: the heads concatenated along the feature axis with torch.cat."""
    gen = torch.Generator().manual_seed(seed)
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


def check_bert_layer(fn, *, batch=2, seq=6, hidden=32, num_heads=4, intermediate=64,
                     eps=1e-12, dropout_p=0.0, seed=0):
    """fn(hidden_states, mask, params, num_heads, eps, dropout_p) -> (batch, seq, hidden).
    Oracle: transformers' BertLayer holding the same weights (`params` is its
    named_parameters(), HF names). With dropout_p > 0 both run in training mode from
    the same seed, so they draw the same dropout masks."""
    gen = torch.Generator().manual_seed(seed)
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

        from .pretrained import bundled_path, load_pretrained
        model, tok = load_pretrained("minilm-l6")
        oracle = transformers.BertModel.from_pretrained(str(bundled_path()),
                                                        attn_implementation="eager").eval()
        _ORACLE.update(model=model, oracle=oracle, tok=tok)
    return _ORACLE["model"], _ORACLE["oracle"], _ORACLE["tok"]


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


# --------------------------------------------------------------------- 02_adamw
def _adamw_reference(p, grads, lr, betas, eps, weight_decay, correct_bias):
    """The formulas of 02, one Python float at a time (float64): no tensors, no minbert."""
    b1, b2 = betas
    p = list(map(float, p))
    m, v = [0.0] * len(p), [0.0] * len(p)
    history = []
    for t, g in enumerate(grads, start=1):
        alpha = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t) if correct_bias else lr
        for i, gi in enumerate(g):
            m[i] = b1 * m[i] + (1 - b1) * gi
            v[i] = b2 * v[i] + (1 - b2) * gi * gi
            p[i] = p[i] - alpha * m[i] / (math.sqrt(v[i]) + eps)
            p[i] = p[i] - lr * weight_decay * p[i]
        history.append((list(p), list(m), list(v)))
    return history


# A two-step example small enough to do by hand (lr=0.1, betas=(0.9, 0.999), eps=1e-8,
# no weight decay, bias correction on). Step 1: m = 0.1 g, v = 0.001 g^2,
# alpha = 0.1 * sqrt(0.001) / 0.1 = 0.0316228, so each coordinate moves by
# alpha * 0.1 g / (sqrt(0.001) |g| + eps) = 0.1 * sign(g), less a hair for eps
# (0.1 * eps / sqrt(v) = 1.6e-7 and 3.2e-7 here).
HAND_EXAMPLE = dict(
    p0=[1.0, -0.5], grads=[[0.2, -0.1], [0.4, 0.1]],
    hyper=dict(lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, correct_bias=True),
    # (p, m, v) after each step, worked out by hand (step 2 with a calculator).
    expected=[
        ([0.900000158114, -0.400000316227], [0.02, -0.01], [4e-05, 1e-05]),
        ([0.803482023787, -0.405263462350], [0.058, 0.001], [1.9996e-04, 1.999e-05]),
    ])


def _run_steps(fn, p0, grads, hyper):
    p = torch.tensor(p0, dtype=torch.float64)
    m, v = torch.zeros_like(p), torch.zeros_like(p)
    out = []
    for t, g in enumerate(grads, start=1):
        g = torch.tensor(g, dtype=torch.float64)
        before = (p.clone(), m.clone(), v.clone(), g.clone())
        res = _call(fn, p, g, m, v, t, **hyper)
        assert isinstance(res, tuple) and len(res) == 3, "return the tuple (p, m, v)"
        for x, name in zip(res, "pmv"):
            _tensor(x, f"{name} after step {t}", p.shape, torch.float64)
        for x, y, name in zip((p, m, v, g), before, ("p", "m", "v", "g")):
            assert torch.equal(x, y), f"do not change the input {name} in place; return new tensors"
        p, m, v = res
        out.append((p, m, v))
    return out


def check_adamw_step(fn, *, hidden=False):
    """fn(p, g, m, v, t, *, lr, betas, eps, weight_decay, correct_bias) -> (p, m, v).
    Visible: the hand-worked HAND_EXAMPLE. hidden=True: no bias correction, with weight
    decay, 4 steps, against the formulas evaluated per number in Python floats."""
    if not hidden:
        ex = HAND_EXAMPLE
        got = _run_steps(fn, ex["p0"], ex["grads"], ex["hyper"])
        for t, ((p, m, v), (wp, wm, wv)) in enumerate(zip(got, ex["expected"]), start=1):
            _close(m, torch.tensor(wm, dtype=torch.float64), f"m after step {t}", 1e-12,
                   "m <- beta1 m + (1 - beta1) g")
            _close(v, torch.tensor(wv, dtype=torch.float64), f"v after step {t}", 1e-12,
                   "v <- beta2 v + (1 - beta2) g^2")
            _close(p, torch.tensor(wp, dtype=torch.float64), f"p after step {t}", 1e-9,
                   "alpha = lr sqrt(1 - beta2^t) / (1 - beta1^t); p <- p - alpha m / (sqrt(v) + eps)")
        return
    gen = torch.Generator().manual_seed(1)
    p0 = torch.randn(5, generator=gen, dtype=torch.float64).tolist()
    grads = (torch.randn(4, 5, generator=gen, dtype=torch.float64) * 0.1).tolist()
    for hyper in (dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, correct_bias=False),
                  dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, correct_bias=True)):
        got = _run_steps(fn, p0, grads, hyper)
        want = _adamw_reference(p0, grads, **hyper)
        for t, ((p, m, v), (wp, wm, wv)) in enumerate(zip(got, want), start=1):
            _close(p, torch.tensor(wp, dtype=torch.float64), f"p after step {t} with {hyper}", 1e-10,
                   "correct_bias=False means alpha = lr; weight decay comes *after* the Adam "
                   "update: p <- p - lr * weight_decay * p")


def check_adamw_optimizer(cls, *, steps=3, seed=0):
    """cls(params, lr, betas, eps, weight_decay, correct_bias) a torch.optim.Optimizer.
    Two parameters in two param groups (different lr and weight decay), fixed gradients,
    against the per-number formulas."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.nn.Parameter(torch.randn(2, 3, generator=gen, dtype=torch.float64))
    b = torch.nn.Parameter(torch.randn(3, generator=gen, dtype=torch.float64))
    grads = {id(w): [torch.randn(2, 3, generator=gen, dtype=torch.float64) for _ in range(steps)],
             id(b): [torch.randn(3, generator=gen, dtype=torch.float64) for _ in range(steps)]}
    groups = [dict(params=[w], lr=0.1, weight_decay=0.05), dict(params=[b], lr=0.02, weight_decay=0.0)]
    start = {id(w): w.detach().flatten().tolist(), id(b): b.detach().flatten().tolist()}
    opt = _call(cls, groups, lr=1.0, betas=(0.9, 0.95), eps=1e-6, weight_decay=0.0, correct_bias=True)
    assert isinstance(opt, torch.optim.Optimizer), "subclass torch.optim.Optimizer"
    for t in range(steps):
        for prm in (w, b):
            prm.grad = grads[id(prm)][t].clone()
        _call(opt.step, _name=f"{type(opt).__name__}.step (or a function it calls)")
    for prm, group, name in ((w, groups[0], "weight (group 0)"), (b, groups[1], "bias (group 1)")):
        want = _adamw_reference(start[id(prm)], [g.flatten().tolist() for g in grads[id(prm)]],
                                lr=group["lr"], betas=(0.9, 0.95), eps=1e-6,
                                weight_decay=group["weight_decay"], correct_bias=True)[-1][0]
        _close(prm.detach().flatten(), torch.tensor(want, dtype=torch.float64),
               f"{name} after {steps} steps", 1e-10,
               "read lr/betas/eps/weight_decay from each param group, and keep m, v and the step "
               "count t per parameter in self.state[p] across calls")

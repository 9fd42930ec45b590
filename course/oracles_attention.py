"""Grader-side plans of notebook 01's checks: inputs drawn here, oracles run here.

Oracles: torch's scaled_dot_product_attention, slicing and torch.cat, transformers' BertLayer,
BertSelfAttention (with the bundled checkpoint's weights of a drawn layer) and BertModel
(eager attention). Never minbert's own model code: the student's kernel may have changed it.
"""
import functools

import torch
import torch.nn.functional as F

from .verdict import Plan, Wrong, close, each_close


def padding01(batch, seq, gen):
    """(batch, seq) 0/1: row 0 full, the others padded at the end (>= 1 token)."""
    lengths = [seq] + torch.randint(1, seq, (batch - 1,), generator=gen).tolist()
    return torch.tensor([[1] * n + [0] * (seq - n) for n in lengths])


def additive(mask01, dtype):
    return torch.zeros(mask01.shape, dtype=dtype).masked_fill(
        mask01 == 0, torch.finfo(dtype).min)[:, None, None, :]


def pick(gen, lo, hi) -> int:
    return int(torch.randint(lo, hi + 1, (1,), generator=gen))


def attention(fn, seed):
    gen, plan, want = torch.Generator().manual_seed(seed), Plan(), []
    for i, (dtype, masked) in enumerate([(torch.float32, False), (torch.float32, True),
                                         (torch.float64, True)]):
        b, h, s, d = pick(gen, 2, 3), pick(gen, 2, 4), pick(gen, 4, 9), pick(gen, 4, 16)
        q, k, v = (torch.randn(b, h, s, d, generator=gen, dtype=dtype) for _ in range(3))
        m01 = padding01(b, s, gen)
        keep = m01.bool()[:, None, None, :] if masked else None
        mask = plan.put(f"c{i}.m", additive(m01, dtype)) if masked else None
        plan.cases.append({"fn": fn, "args": [plan.put(f"c{i}.q", q), plan.put(f"c{i}.k", k),
                                              plan.put(f"c{i}.v", v), mask]})
        eye = torch.eye(s, dtype=dtype).expand(b, h, s, s)
        want.append((F.scaled_dot_product_attention(q, k, v, attn_mask=keep),
                     F.scaled_dot_product_attention(q, k, eye, attn_mask=keep), dtype))

    def judge(out):
        for i, (ctx, probs, dtype) in enumerate(want):
            atol = 1e-5 if dtype == torch.float32 else 1e-10
            close(out.get(i, "out1", "probs", probs.shape, dtype), probs, f"input {i + 1}: probs",
                  atol, "Scale the scores by 1/sqrt(head_size), add the mask, softmax over keys.")
            close(out.get(i, "out0", "context", ctx.shape, dtype), ctx, f"input {i + 1}: context",
                  atol, "context = probs @ value.")
    plan.judge = judge
    return plan


def padding_mask(fn, seed):
    gen, plan, want = torch.Generator().manual_seed(seed), Plan(), []
    for i, dtype in enumerate((torch.float32, torch.float64)):
        b, s = pick(gen, 3, 5), pick(gen, 5, 12)
        m01 = padding01(b, s, gen)
        plan.cases.append({"fn": fn, "args": [plan.put(f"c{i}.m", m01), {"dtype": str(dtype)[6:]}]})
        want.append((m01, dtype, torch.randn(3, b, 2, s, 4, generator=gen, dtype=dtype)))

    def judge(out):
        for i, (m01, dtype, (q, k, v)) in enumerate(want):
            add = out.get(i, "out0", "the mask", (m01.shape[0], 1, 1, m01.shape[1]), dtype)
            if not ((add[:, 0, 0][m01.bool()] == 0).all() and
                    (add[:, 0, 0][~m01.bool()] <= -1e4).all()):
                raise Wrong(f"input {i + 1}: real tokens must get 0, padded ones a large "
                            "negative number (e.g. torch.finfo(dtype).min)")
            close(F.scaled_dot_product_attention(q, k, v, attn_mask=add),
                  F.scaled_dot_product_attention(q, k, v, attn_mask=m01.bool()[:, None, None]),
                  f"input {i + 1}: attention with your mask", 1e-5)
    plan.judge = judge
    return plan


def heads(fn, seed, merge: bool):
    """split: (B, S, H*D) -> (B, H, S, D), head i = the i-th block of columns; merge: back."""
    gen, plan, want = torch.Generator().manual_seed(seed), Plan(), []
    for i in range(2):
        b, s, h, d = pick(gen, 2, 4), pick(gen, 3, 7), pick(gen, 2, 6), pick(gen, 2, 5)
        x = torch.randn(b, s, h * d, generator=gen)
        split = torch.stack([x[:, :, j * d:(j + 1) * d] for j in range(h)], dim=1)
        given, res = (split, x) if merge else (x, split)
        args = [plan.put(f"c{i}.x", given)] + ([] if merge else [h])
        plan.cases.append({"fn": fn, "args": args})
        want.append(res)

    def judge(out):
        for i, res in enumerate(want):
            if not torch.equal(out.get(i, "out0", "the result", res.shape, res.dtype), res):
                raise Wrong(f"input {i + 1}: " + ("position s holds head 0's vector, then head "
                            "1's, ..." if merge else "head i holds columns i*head_size .. "
                            "(i+1)*head_size-1 of every position"))
    plan.judge = judge
    return plan


def split_heads(fn, seed):
    return heads(fn, seed, merge=False)


def merge_heads(fn, seed):
    return heads(fn, seed, merge=True)


def bert_layer(fn, seed):
    from minbert.checks.attention import _hf_layer  # the instructor's oracle builder (transformers)
    gen, plan, want = torch.Generator().manual_seed(seed), Plan(), []
    for i, (eps, p) in enumerate([(1e-12, 0.0), (1e-12, 0.3), (1e-2, 0.0)]):
        heads_, d = pick(gen, 2, 4), pick(gen, 4, 12)
        b, s, hidden, inter = pick(gen, 2, 3), pick(gen, 4, 9), heads_ * d, pick(gen, 32, 80)
        layer = _hf_layer(hidden, heads_, inter, eps, p, gen)
        layer.train(p > 0)
        x = torch.randn(b, s, hidden, generator=gen)
        mask = additive(padding01(b, s, gen), x.dtype)
        for k, t in layer.named_parameters():
            plan.put(f"c{i}.p.{k}", t)
        plan.cases.append({"fn": fn, "seed": seed % 10007 + i, "args": [
            plan.put(f"c{i}.x", x), plan.put(f"c{i}.mask", mask), {"tdict": f"c{i}.p."},
            heads_, eps, p]})
        torch.manual_seed(seed % 10007 + i)
        with torch.no_grad():
            w = layer(x, mask)
        want.append(w[0] if isinstance(w, tuple) else w)

    plan.judge = lambda out: each_close(out, want, "layer output", 2e-5, "Post-LN BERT layer "
                                        "(dropout on the two dense outputs, attention output "
                                        "first).")
    return plan

"""Grader-side plans of notebooks 06 (BERT's masking rule, the MLM head) and 07 (mean pooling,
the cosine-MSE loss). Oracles: counts over >100,000 drawn tokens; transformers'
BertLMPredictionHead with drawn weights; sentence-transformers' Pooling(mean) and
CosineSimilarityLoss (minbert.checks.cosine._oracle_loss), gradients included."""
import torch

from .oracles_attention import pick
from .verdict import Plan, Wrong, close, each_close

PAD, UNK, CLS, SEP, MASK, VOCAB = 0, 100, 101, 102, 103, 30522


def mask_tokens(fn, seed):
    from minbert.checks.mlm import _padded_rows
    gen, plan = torch.Generator().manual_seed(seed), Plan()
    ids, attn = _padded_rows(gen, 400, 448)  # ~112,000 eligible tokens
    gseed = pick(gen, 0, 10 ** 6)
    args = [plan.put("ids", ids), plan.put("attn", attn), [PAD, UNK, CLS, SEP, MASK], VOCAB, MASK,
            {"gen": gseed}]
    plan.cases = [{"fn": fn, "args": args, "after": [0]}, {"fn": fn, "args": args}]

    def judge(out):
        masked, labels = (out.get(0, k, w, ids.shape) for k, w in (("out0", "masked ids"),
                                                                   ("out1", "labels")))
        if not torch.equal(out.get(0, "in0", "input_ids", ids.shape), ids):
            raise Wrong("do not modify input_ids in place: work on a clone")
        chosen, eligible = labels != -100, (attn == 1) & (ids != PAD) & (ids != CLS) & (ids != SEP)
        if (chosen & ~eligible).any() or not torch.equal(labels[chosen], ids[chosen]) or \
                not torch.equal(masked[~chosen], ids[~chosen]):
            raise Wrong("only real, non-special tokens may be chosen; labels hold the original id "
                        "where chosen (-100 elsewhere); the others stay unchanged")
        n = chosen.sum().item()
        to_mask = (masked[chosen] == MASK).sum().item() / max(n, 1)
        kept = (masked[chosen] == ids[chosen]).sum().item() / max(n, 1)
        shares = (n / eligible.sum().item(), to_mask, 1 - to_mask - kept, kept)
        if any(abs(s - w) >= 0.01 for s, w in zip(shares, (0.15, 0.8, 0.1, 0.1))):
            raise Wrong("measured shares {:.3f} chosen, {:.3f} [MASK], {:.3f} random, {:.3f} kept; "
                        "expected 0.15, 0.8, 0.1, 0.1".format(*shares))
        if not (torch.equal(out.get(1, "out0", "masked ids", ids.shape), masked) and
                torch.equal(out.get(1, "out1", "labels", ids.shape), labels)):
            raise Wrong("the same generator seed must give the same masks")
    plan.judge = judge
    return plan


def mlm_head(fn, seed):
    import transformers
    from transformers.models.bert.modeling_bert import BertLMPredictionHead
    gen, plan = torch.Generator().manual_seed(seed), Plan()
    vocab, hidden = pick(gen, 30, 80), pick(gen, 8, 24)
    head = BertLMPredictionHead(transformers.BertConfig(vocab_size=vocab, hidden_size=hidden,
                                                        hidden_act="gelu")).eval()
    with torch.no_grad():
        for p in head.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        h = torch.randn(2, pick(gen, 3, 8), hidden, generator=gen)
        want = head(h)
    t = head.transform
    for k, v in (("dense.weight", t.dense.weight), ("dense.bias", t.dense.bias),
                 ("ln.weight", t.LayerNorm.weight), ("ln.bias", t.LayerNorm.bias)):
        plan.put(k, v)
    plan.cases = [{"fn": fn, "args": [plan.put("h", h), {"linear": "dense."},
                                      {"layernorm": "ln.", "eps": t.LayerNorm.eps},
                                      plan.put("emb", head.decoder.weight),
                                      plan.put("bias", head.decoder.bias)]}]
    plan.judge = lambda out: close(out.get(0, "out0", "logits", want.shape), want, "logits",
                                   1e-5, "dense, GELU, LayerNorm, then @ embeddings.T + bias")
    return plan


def mean_pool(fn, seed):
    from sentence_transformers.sentence_transformer.modules.pooling import Pooling
    gen, plan, want = torch.Generator().manual_seed(seed), Plan(), []
    for i in range(2):
        b, s, h = pick(gen, 2, 5), pick(gen, 4, 9), pick(gen, 3, 10)
        states = torch.randn(b, s, h, generator=gen)
        mask = torch.tensor([[1] * n + [0] * (s - n) for n in
                             [s] + torch.randint(1, s, (b - 1,), generator=gen).tolist()])
        states[mask == 0] = 50.0 * (i + 1)
        plan.cases.append({"fn": fn, "args": [plan.put(f"c{i}.h", states),
                                              plan.put(f"c{i}.m", mask)]})
        want.append(Pooling(h, pooling_mode="mean")({"token_embeddings": states,
                                                      "attention_mask": mask})["sentence_embedding"])

    plan.judge = lambda out: each_close(out, want, "pooled", 1e-5, "average over the tokens "
                                        "with mask 1 only", dtype=False)
    return plan


def cosine_mse(fn, seed):
    from minbert.checks.cosine import _oracle_loss
    gen, plan = torch.Generator().manual_seed(seed), Plan()
    b, h = pick(gen, 8, 20), pick(gen, 8, 40)
    u = torch.randn(b, h, generator=gen)
    v = u + torch.randn(b, h, generator=gen)
    score = 5 * torch.rand(b, generator=gen)
    plan.cases = [{"fn": fn, "args": [plan.put(k, t) for k, t in (("u", u), ("v", v),
                                                                   ("s", score))],
                   "grad": [0, 1]}]
    ua, va = u.clone().requires_grad_(), v.clone().requires_grad_()
    loss = _oracle_loss(ua, va, score)
    loss.backward()

    def judge(out):
        close(out.get(0, "out0", "the loss", ()), loss, "the loss", 1e-5,
              "divide the score by 5; the mean (not the sum) over the batch")
        for j, g in enumerate((ua.grad, va.grad)):
            close(out.get(0, f"grad{j}", "the gradient", g.shape), g,
                  f"the gradient with respect to {'uv'[j]}", 1e-6, "do not detach u, v or cos")
    plan.judge = judge
    return plan

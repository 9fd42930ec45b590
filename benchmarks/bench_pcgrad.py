"""A PCGrad step vs a plain multitask step on the same three task batches (issue: performance).

Plain:  zero_grad; one forward per task batch; (loss_sst + loss_quora + loss_sts).backward(); step
PCGrad: zero_grad; the same forwards; minbert.pcgrad.pcgrad_backward(losses, encoder); step
Same model (bundled MiniLM-L6 + the three heads), same real batches (SST, Quora, STS from
$MINBERT_DATA, else synthetic sentences), same thread count, the two alternated in one
process so a load spike hits both. Also timed alone: the surgery (`minbert.pcgrad.merge`:
Gram matrix, projection weights, weighted sum) on a (3, P) matrix of the encoder's size.

    python benchmarks/bench_pcgrad.py           # batch 8 and 32, 15 repeats
    python benchmarks/bench_pcgrad.py --smoke   # seconds; CI runs this so it cannot rot
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
TASKS = ("sst", "quora", "sts")


def batches(tok, bsz, max_len):
    from minbert import data
    try:
        root = data.data_dir()
        ex = {t: data.subset(data.load(t, "train" if t != "quora" else "dev", root), bsz, seed=0)
              for t in TASKS}
    except Exception:  # no data: synthetic examples of varied length
        import random
        rng = random.Random(0)
        words = "the movie was a quiet triumph of style over substance and i loved it".split()
        s = lambda: " ".join(rng.choices(words, k=rng.randint(4, 40)))  # noqa: E731
        ex = {"sst": [data.Example(f"s{i}", s(), None, i % 5) for i in range(bsz)],
              "quora": [data.Example(f"q{i}", s(), s(), i % 2) for i in range(bsz)],
              "sts": [data.Example(f"t{i}", s(), s(), float(i % 6)) for i in range(bsz)]}
    out = {}
    for t in TASKS:
        loader = data.make_loader(ex[t], tok, bsz, shuffle=False, seed=0, max_length=max_len)
        out[t] = next(iter(loader))
    return out


def setup(bsz, max_len):
    import minbert
    from minbert.heads import MultitaskBERT
    bert, tok = minbert.load_pretrained("minilm-l6")
    torch.manual_seed(0)
    model = MultitaskBERT(bert, dropout=0.1, encoder="finetune").train()
    return model, minbert.AdamW(model.parameters(), lr=1e-5), batches(tok, bsz, max_len)


def plain_step(model, opt, b):
    opt.zero_grad(set_to_none=True)
    sum(model.forward_loss(t, b[t])[0] for t in TASKS).backward()
    opt.step()


def pcgrad_step(model, opt, b, shared, buffer):
    from minbert.pcgrad import pcgrad_backward
    opt.zero_grad(set_to_none=True)
    pcgrad_backward([model.forward_loss(t, b[t])[0] for t in TASKS], shared, buffer=buffer)
    opt.step()


def median_times(fns: dict, reps, warmup):
    times = {k: [] for k in fns}
    for _ in range(warmup):
        for f in fns.values():
            f()
    for _ in range(reps):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv=None):
    from minbert.pcgrad import GradientBuffer, merge
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--reps", type=int, default=15)
    args = ap.parse_args(argv)
    shapes = [(2, 16)] if args.smoke else [(8, 64), (32, 64)]
    reps, warmup = (2, 1) if args.smoke else (args.reps, 3)
    rows = []
    for bsz, max_len in shapes:
        model, opt, b = setup(bsz, max_len)
        shared = [p for p in model.shared_parameters() if p.requires_grad]
        buffer = GradientBuffer()  # reused from step to step, as train.run does
        t = median_times({"plain": lambda: plain_step(model, opt, b),
                          "pcgrad": lambda: pcgrad_step(model, opt, b, shared, buffer)},
                         reps, warmup)
        P = sum(p.numel() for p in shared)
        g = torch.Generator().manual_seed(0)
        grads, out = torch.randn(len(TASKS), P, generator=g), torch.empty(P)
        surgery = median_times({"merge": lambda: merge(grads, out=out)}, reps, warmup)["merge"]
        rows.append(dict(shape=f"3x{bsz}", plain=t["plain"], pcgrad=t["pcgrad"],
                         ratio=t["pcgrad"] / t["plain"], surgery=surgery, P=P))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'batches':>8} {'plain ms':>9} {'pcgrad ms':>10} {'ratio':>6} {'surgery ms':>11} "
          f"{'shared params':>14}")
    for r in rows:
        print(f"{r['shape']:>8} {1e3 * r['plain']:>9.1f} {1e3 * r['pcgrad']:>10.1f} "
              f"{r['ratio']:>6.2f} {1e3 * r['surgery']:>11.1f} {r['P']:>14,}")
    return rows


if __name__ == "__main__":
    main()

"""minbert vs transformers' BertModel: train step, eval forward, peak memory (issue: performance).

Same bundled MiniLM-L6 weights, same inputs (real SST sentences, padded to the batch's
longest, truncated at 64 tokens), same thread count, measured in one process, alternating
the two implementations so drift in machine load hits both alike.

    python benchmarks/bench_model.py            # full: 32x64 and 128x64, 15 repeats
    python benchmarks/bench_model.py --smoke    # seconds; CI runs this so it cannot rot
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def sentences(n: int) -> list[str]:
    from minbert.data import data_dir, load
    try:
        return [e.text for e in load("sst", "train", data_dir())[:n]]
    except Exception:  # no data: synthetic but varied lengths, so padding is still realistic
        import random
        rng = random.Random(0)
        words = "the movie was a quiet triumph of style over substance and i loved it".split()
        return [" ".join(rng.choices(words, k=rng.randint(4, 50))) for _ in range(n)]


def batch_of(tok, n, max_len):
    texts = sentences(4 * n)[:: 4][:n] if n <= 1000 else sentences(n)
    return dict(tok(texts, padding=True, truncation=True, max_length=max_len, return_tensors="pt"))


def models():
    import transformers
    import minbert
    from minbert.pretrained import bundled_path
    ours, tok = minbert.load_pretrained("minilm-l6")
    theirs = transformers.BertModel.from_pretrained(str(bundled_path())).eval()  # its default (sdpa)
    padded, _ = minbert.load_pretrained("minilm-l6")
    padded.config.unpad = False  # where the speed comes from: the same model on the padded grid
    return {"minbert": ours, "transformers": theirs, "minbert_padded": padded}, tok


def train_step_fn(model):
    from minbert import AdamW
    opt = AdamW(model.parameters(), lr=1e-5)
    model.train()

    def step(batch):
        out = model(**batch)
        loss = out.last_hidden_state.pow(2).mean() + out.pooler_output.pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def eval_fn(model):
    def run(batch):
        model.eval()
        with torch.inference_mode():
            model(**batch)
    return run


def timeit(fns: dict, batch, reps, warmup):
    times = {k: [] for k in fns}
    for _ in range(warmup):
        for f in fns.values():
            f(batch)
    for _ in range(reps):
        for k, f in fns.items():  # alternate: a load spike hits both
            t = time.perf_counter()
            f(batch)
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def matmul_rate(n=1024, reps=10):
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n ** 3 * reps / (time.perf_counter() - t)


def bert_flops(cfg, batch, train):
    """Matmul FLOPs of a forward over the padded batch (what both implementations compute)."""
    b, s = batch["input_ids"].shape
    h, i, L = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    per_layer = 2 * b * s * (4 * h * h + 2 * h * i) + 2 * 2 * b * s * s * h
    fwd = L * per_layer + 2 * b * h * h
    return 3 * fwd if train else fwd


def peak_memory_child(impl, bsz, max_len):
    """Peak resident memory above the pre-step level during one train step, in a fresh
    process (MiB): a thread samples /proc/self/statm every millisecond. (ru_maxrss cannot
    tell: loading the checkpoint may peak higher than the step.)"""
    code = f"""
import os, sys, threading, time, torch
sys.path.insert(0, {str(Path(__file__).parent)!r})
import bench_model as B
page = os.sysconf("SC_PAGE_SIZE")
rss = lambda: int(open("/proc/self/statm").read().split()[1]) * page
ms, tok = B.models(); m = ms[{impl!r}]; batch = B.batch_of(tok, {bsz}, {max_len})
step = B.train_step_fn(m)
peak, done = [0], [False]
def sample():
    while not done[0]:
        peak[0] = max(peak[0], rss()); time.sleep(0.001)
base = rss(); t = threading.Thread(target=sample); t.start()
step(batch)
done[0] = True; t.join()
print((peak[0] - base) / 2 ** 20)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    shapes = [(4, 16)] if args.smoke else [(32, 64), (128, 64)]
    reps, warmup = (2, 1) if args.smoke else (args.reps, 3)
    ms, tok = models()
    with torch.no_grad():  # same numbers first, or the timing means nothing
        b = batch_of(tok, 8, 64)
        real = b["attention_mask"].bool()
        ms["minbert"].eval(); ms["transformers"].eval()
        ours, theirs = ms["minbert"](**b), ms["transformers"](**b)
        diff = max((ours.last_hidden_state - theirs.last_hidden_state)[real].abs().max().item(),
                   (ours.pooler_output - theirs.pooler_output).abs().max().item())
    if diff > 1e-5:
        raise SystemExit(f"minbert and transformers disagree by {diff:.1e} (> 1e-5): timing "
                         "two different computations means nothing")
    rate = matmul_rate(256 if args.smoke else 1024)
    rows = []
    for bsz, max_len in shapes:
        batch = batch_of(tok, bsz, max_len)
        pad = 1 - batch["attention_mask"].float().mean().item()
        for what in ("train", "eval"):
            make = train_step_fn if what == "train" else eval_fn
            t = timeit({k: make(m) for k, m in ms.items()}, batch, reps, warmup)
            flops = bert_flops(ms["minbert"].config, batch, what == "train")
            rows.append(dict(shape=f"{bsz}x{batch['input_ids'].shape[1]}", what=what, padding=round(pad, 3),
                             minbert_s=t["minbert"], transformers_s=t["transformers"],
                             ratio=t["minbert"] / t["transformers"],
                             padded_ratio=t["minbert_padded"] / t["transformers"],
                             minbert_of_peak=flops / t["minbert"] / rate,
                             transformers_of_peak=flops / t["transformers"] / rate))
        # fresh models after training steps changed the weights
        ms, tok = models()
    mem = {}
    if not args.smoke:
        for impl in ("minbert", "transformers"):
            mem[impl] = peak_memory_child(impl, *shapes[0])
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {threads} threads; matmul rate {rate / 1e9:.1f} GFLOP/s; "
          f"max |minbert - transformers| on real tokens {diff:.1e}")
    print("%peak = matmul FLOPs of the padded batch (what transformers computes) per second over "
          "the matmul rate; minbert skips the padding, so its figure can pass 100%")
    print(f"{'shape':>8} {'step':>6} {'pad':>5} {'minbert ms':>11} {'transformers ms':>16} {'ratio':>6} "
          f"{'minbert %peak':>14} {'transf. %peak':>14} {'unpad=False ratio':>18}")
    for r in rows:
        print(f"{r['shape']:>8} {r['what']:>6} {r['padding']:>5.2f} {1e3 * r['minbert_s']:>11.1f} "
              f"{1e3 * r['transformers_s']:>16.1f} {r['ratio']:>6.2f} {100 * r['minbert_of_peak']:>13.0f}% "
              f"{100 * r['transformers_of_peak']:>13.0f}% {r['padded_ratio']:>18.2f}")
    if mem:
        print(f"peak RSS growth of one train step at {shapes[0][0]}x{shapes[0][1]}: "
              + ", ".join(f"{k} {v:.0f} MiB" for k, v in mem.items())
              + f" (ratio {mem['minbert'] / mem['transformers']:.2f})")
    if args.json:
        args.json.write_text(json.dumps(dict(rows=rows, memory_mib=mem, matmul_flops=rate, max_diff=diff), indent=1))
    return rows


if __name__ == "__main__":
    main()

"""minbert vs transformers on a GPU, on a random bert-base-uncased-shaped checkpoint (no download).

Saves a randomly initialised transformers BertModel of bert-base's shape to a temporary
folder (with the bundled tokenizer files, or those of --tokenizer), loads it with both
libraries, checks that the outputs agree on real SST sentences, then times an eval forward
and a train step (torch.optim.AdamW for both) on the GPU: median of 10 after 3 warm-ups.

    python benchmarks/bench_gpu.py [--tokenizer FOLDER] [--batch 64] [--max-length 128]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
import transformers

import minbert
from minbert import data

TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", type=Path, default=None, help="folder with vocab.txt etc.")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--max-length", type=int, default=128)
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark is for a GPU (bench_model.py is the CPU one)")
    if args.tokenizer is None:
        from minbert.pretrained import bundled_path
        args.tokenizer = bundled_path()
    folder = Path(tempfile.mkdtemp(prefix="bert-base-random-"))
    torch.manual_seed(0)
    transformers.BertModel(transformers.BertConfig()).save_pretrained(folder, safe_serialization=True)
    for name in TOKENIZER_FILES:
        if (args.tokenizer / name).is_file():
            shutil.copy(args.tokenizer / name, folder / name)
    ours, tok = minbert.load_pretrained(str(folder))
    theirs = transformers.BertModel.from_pretrained(str(folder), attn_implementation="sdpa")
    ours, theirs = ours.cuda().eval(), theirs.cuda().eval()
    texts = [e.text for e in data.load("sst", "dev")[:args.batch]]
    b = {k: v.cuda() for k, v in tok(texts, padding=True, truncation=True, max_length=args.max_length,
                                     return_tensors="pt").items()}
    with torch.no_grad():
        o, t = ours(**b), theirs(**b)
    real = b["attention_mask"].bool()
    diff = max((o.last_hidden_state - t.last_hidden_state)[real].abs().max().item(),
               (o.pooler_output - t.pooler_output).abs().max().item())
    print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, transformers "
          f"{transformers.__version__}; batch {tuple(b['input_ids'].shape)}, "
          f"padding {1 - real.float().mean().item():.2f}; max |minbert - transformers| {diff:.1e}")

    def timed(model, train):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-5) if train else None
        model.train(train)

        def step():
            if train:
                model(**b).last_hidden_state.pow(2).mean().backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
            else:
                with torch.inference_mode():
                    model(**b)
        for _ in range(3):
            step()
        times = []
        for _ in range(10):
            torch.cuda.synchronize()
            s = time.perf_counter()
            step()
            torch.cuda.synchronize()
            times.append(time.perf_counter() - s)
        return statistics.median(times)

    for train in (False, True):
        a, c = timed(ours, train), timed(theirs, train)
        print(f"{'train' if train else 'eval':>5}: minbert {a * 1e3:.1f} ms, transformers "
              f"{c * 1e3:.1f} ms, ratio {a / c:.2f}")
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

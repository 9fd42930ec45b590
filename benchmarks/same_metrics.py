"""Same metrics, bit for bit: proof that a refactor of the trainer changed no number.

Runs a fixed set of small training runs against whichever `minbert` is importable
(PYTHONPATH) and writes every metric they produced, at full float precision (JSON floats
round-trip float64 exactly), to one JSON file. Run it once per checkout, then compare:

    PYTHONPATH=/path/to/before python benchmarks/same_metrics.py --out before.json --work /tmp/b
    PYTHONPATH=/path/to/after  python benchmarks/same_metrics.py --out after.json --work /tmp/a
    python benchmarks/same_metrics.py --compare before.json after.json   # exit 1 on any difference

Use this same file for both checkouts (copy it out of the one it lives in). Needs
$MINBERT_DATA; every run is one-threaded, on CPU, a few seconds to a minute or two each.
The runs (each a subprocess; every training setting on the command line, so that a change
of defaults cannot hide a change of behaviour):
  experiments  `experiments run --all --preset tiny --seeds 1`: per row, dev, history, MLM metrics
  multitask    round-robin, spread schedule, linear decay, separate pairs, mean pooling
  pcgrad       PCGrad (mean reduction), shortest schedule
  resume       constant lr: 1 epoch, then --resume to 2, against 2 epochs uninterrupted
  ddp-*        multitask and pcgrad on 2 CPU ranks (torchrun, gloo)
  frozen       frozen encoder, heads only
Times (wall_time_s, seconds, ...) are dropped: they are not metrics. Recorded per run: the
final dev metrics and the history (train and dev metrics, gradient-conflict statistics).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

PY = sys.executable
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1")
# every TrainConfig setting of the pre-refactor CLI but mode, epochs, lr and the dropout flag
BASE = dict(tasks=["sst", "quora", "sts"], encoder="finetune", model="minilm-l6",
            n_train=64, n_dev=48, batch_size=8, eval_batch_size=32, max_length=32,
            max_batches_per_task=6, head_lr=1e-3, weight_decay=0, lr_decay="linear",
            pooling="mean", pair_mode="separate", schedule="spread", sts_loss="mse",
            pcgrad_reduction="mean", evals_per_epoch=2, seed=0, device="cpu",
            log_conflict=True, cache_frozen=True)


def no_times(x):
    """x without the keys that hold times (they differ run to run)."""
    if isinstance(x, dict):
        return {k: no_times(v) for k, v in x.items() if k != "seconds" and "time" not in k}
    return [no_times(v) for v in x] if isinstance(x, list) else x


def sh(cmd, **kw):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=ENV, capture_output=True, text=True, **kw)
    if p.returncode:
        sys.exit(f"failed ({p.returncode}): {' '.join(map(str, cmd))}\n{p.stderr[-4000:]}")
    print(f"  {time.perf_counter() - t0:6.1f} s  {' '.join(map(str, cmd))[:150]}", flush=True)
    return p.stdout


def train_args(help_text: str, **settings) -> list:
    """The command line of `python -m minbert.train` with every setting spelled out."""
    s = dict(BASE, data=os.environ["MINBERT_DATA"]) | settings
    has = lambda flag: re.search(rf"(?<![\w-]){flag}\b", help_text)  # noqa: E731
    dropout = s.pop("dropout", 0.1)
    args = ["--head-dropout" if has("--head-dropout") else "--dropout", str(dropout)]
    args += ["--threads", "1"] * bool(has("--threads")) + ["--no-progress"]
    for k, v in s.items():
        flag = "--" + k.replace("_", "-")
        if isinstance(v, bool):
            args.append(flag if v else "--no-" + k.replace("_", "-"))
        else:
            args += [flag, *map(str, v if isinstance(v, list) else [v])]
    return args


def read_run(folder: Path) -> dict:
    metrics = json.loads((folder / "metrics.json").read_text())
    history = json.loads((folder / "history.json").read_text())
    return {"dev": metrics["dev"], "history": no_times(history)}


def train(help_text, folder: Path, nproc=1, extra=(), **settings) -> dict:
    launch = [PY, "-m", "minbert.train"] if nproc == 1 else [
        PY, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
        "-m", "minbert.train"]
    sh(launch + train_args(help_text, **settings) + ["--out", str(folder), *extra])
    return read_run(folder)


def experiments(work: Path) -> dict:
    """Every row of the tiny preset, seed 0: {row file name: its metrics}."""
    module = next(m for m in ("minbert.report.experiments", "minbert.experiments")
                  if _exists(m))
    results, runs = work / "results", work / "runs"
    sh([PY, "-m", module, "run", "--all", "--preset", "tiny", "--seeds", "1", "--threads", "1",
        "--results", str(results), "--runs", str(runs), "--no-progress"])
    out = {}
    for path in sorted(results.rglob("row*.json")):
        r = json.loads(path.read_text())
        out[path.stem] = {"dev": r["dev"], "history": no_times(r["history"])}
        if r.get("mlm"):
            out[path.stem]["mlm"] = no_times(r["mlm"]["metrics"])
    return out


def _exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def measure(work: Path) -> dict:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    h = sh([PY, "-m", "minbert.train", "--help"])  # which flags this checkout's CLI has
    runs = {"experiments": experiments(work / "experiments")}
    mt = dict(mode="multitask", epochs=2, lr=5e-5)
    runs["multitask"] = train(h, work / "multitask", **mt)
    runs["pcgrad"] = train(h, work / "pcgrad", mode="pcgrad", epochs=2, lr=5e-5,
                           schedule="shortest")
    const = dict(mt, lr_decay="constant", evals_per_epoch=1)
    keep = ["--keep-optimizer"] * bool(re.search(r"--keep-optimizer\b", h))
    first = train(h, work / "resumed", extra=keep, **dict(const, epochs=1))
    runs["resume"] = {"part1": first,
                      "resumed": train(h, work / "resumed", extra=["--resume"], **const),
                      "straight": train(h, work / "straight", **const)}
    ddp = dict(n_train=32, n_dev=32, max_batches_per_task=3, batch_size=4, epochs=2, lr=5e-5)
    runs["ddp-multitask"] = train(h, work / "ddp-multitask", nproc=2, mode="multitask", **ddp)
    runs["ddp-pcgrad"] = train(h, work / "ddp-pcgrad", nproc=2, mode="pcgrad",
                               schedule="shortest", **ddp)
    runs["frozen"] = train(h, work / "frozen", mode="multitask", encoder="frozen", epochs=2,
                           lr=1e-3)
    return runs


def leaves(x, path=""):
    """{"a/b[0]/c": value} for every number, string or bool in nested dicts and lists."""
    if isinstance(x, dict):
        return {k: v for key, val in x.items() for k, v in leaves(val, f"{path}/{key}").items()}
    if isinstance(x, list):
        return {k: v for i, val in enumerate(x) for k, v in leaves(val, f"{path}[{i}]").items()}
    return {path: x}


def same(a, b) -> bool:
    """Bit-identical: same type and, for floats, the same 64 bits (NaN == NaN, 0.0 != -0.0)."""
    if type(a) is not type(b):
        return False
    return struct.pack("<d", a) == struct.pack("<d", b) if isinstance(a, float) else a == b


def compare(path_a: str, path_b: str) -> int:
    a, b = (json.loads(Path(p).read_text()) for p in (path_a, path_b))
    print(f"A = {path_a}: {a['meta']}\nB = {path_b}: {b['meta']}")
    n = bad = 0
    for run in sorted(set(a["runs"]) | set(b["runs"])):
        la, lb = leaves(a["runs"].get(run, {})), leaves(b["runs"].get(run, {}))
        print(f"\n== {run}")
        for key in sorted(set(la) | set(lb)):
            va, vb = la.get(key, "<missing>"), lb.get(key, "<missing>")
            ok = key in la and key in lb and same(va, vb)
            n, bad = n + 1, bad + (not ok)
            print(f"  {'same' if ok else 'DIFF'}  {key}: {va!r} | {vb!r}")
    print(f"\n{n} metrics, {bad} differ: " + ("bit-identical" if not bad else "NOT identical"))
    return int(bad > 0)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", help="the JSON to write")
    p.add_argument("--work", default="runs/same-metrics", help="run folders (emptied first)")
    p.add_argument("--compare", nargs=2, metavar=("A.json", "B.json"))
    a = p.parse_args(argv)
    if a.compare:
        sys.exit(compare(*a.compare))
    if not a.out:
        p.error("--out or --compare is required")
    import minbert
    t0 = time.perf_counter()
    runs = measure(Path(a.work).resolve())
    src = Path(minbert.__file__).resolve().parents[1]
    commit = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    meta = {"minbert": str(src), "commit": commit, "python": sys.version.split()[0],
            "wall_time_s": round(time.perf_counter() - t0, 1)}
    Path(a.out).write_text(json.dumps({"meta": meta, "runs": runs}, indent=1) + "\n")
    print(f"wrote {a.out} in {meta['wall_time_s']} s")


if __name__ == "__main__":
    main()

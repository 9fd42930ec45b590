"""minbert.train under torchrun: 2 CPU processes (gloo) on the tiny random BERT.

The oracle for data parallelism is one process that sees the same examples in each step:
N ranks with batch B against one process with batch N x B, same seed, dropout 0 (so that no
random stream depends on the batch shape). Then the final weights, the dev metrics and the
gradient-conflict statistics must agree to float rounding; and a 2-rank run killed after
its first epoch and resumed with 2 ranks must end exactly as the uninterrupted 2-rank run."""
import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import asdict

import pytest
import torch

import minbert.train as T
from minbert import distributed as D

SCRIPT = textwrap.dedent("""
    import json, os, signal, sys, torch
    torch.set_num_threads(1)
    import minbert.train as T
    from minbert import distributed as D
    models = []
    out, configs, how = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
    class Spy:
        def on_fit_end(self, trainer):  # keeps each rank's model, to compare the ranks' weights
            models.append(trainer.model)
        def on_epoch_end(self, trainer):  # SIGKILL on rank 0; torchrun then ends rank 1
            if how == "kill" and trainer.state.epoch == 1 and int(os.environ["RANK"]) == 0:
                os.kill(os.getpid(), signal.SIGKILL)
    for name, c in configs.items():
        T.run(T.TrainConfig(**c), os.path.join(out, name), progress=False, callbacks=[Spy()],
              resume=how == "resume" and name == "cut")
        flat = torch.cat([p.detach().reshape(-1) for p in models[-1].parameters()])
        ranks = D.all_gather(flat)
        if D.is_main():  # the largest difference between any rank's weights and rank 0's
            gap = max((r - ranks[0]).abs().max().item() for r in ranks)
            open(os.path.join(out, name, "rank-gap.json"), "w").write(json.dumps(gap))
""")


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    pass


@pytest.fixture(scope="module")
def tiny_nodrop(tiny, tmp_path_factory):
    """The tiny BERT with dropout off (the encoder's is its checkpoint's, not TrainConfig's)."""
    folder = tmp_path_factory.mktemp("tiny-nodrop")
    shutil.copytree(tiny, folder, dirs_exist_ok=True)
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


def torchrun(tmp_path, configs: dict, how="-", nproc=2):
    tmp_path.mkdir(parents=True, exist_ok=True)
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
         str(nproc), str(script), str(tmp_path), json.dumps(configs), how],
        capture_output=True, text=True, timeout=300, env=env)


def base(model, data_root, **kw):
    # per-rank batch 4 (global 8): sst 21 = 8 + 8 + 5 (last split 3 / 2), sts 22 (3 / 3);
    # dev 15 = 8 + 7 per rank. Mean pooling: the random pooler's outputs are nearly constant,
    # so their Pearson r would magnify float rounding (predictions spread 4e-4 -> r to 1e-4)
    return T.TrainConfig(**(dict(model=str(model), data=str(data_root), epochs=2, batch_size=4,
                                 pooling="mean",
                                 eval_batch_size=4, max_length=32, lr=1e-3, seed=3,
                                 head_dropout=0.0, mode="single", head_lr=None,
                                 evals_per_epoch=1, schedule="shortest", lr_decay="constant",
                                 pair_mode="joint",
                                 tasks=("sst", "quora", "sts"), n_dev=15,
                                 n_train={"sst": 21, "quora": 24, "sts": 22}) | kw))


def read(path):
    return json.loads(path.read_text())


def strip_times(history):
    return [{k: v for k, v in e.items() if k != "wall_time_s"} for e in history]


def assert_close(a, b, where=""):
    """Nested dicts / lists of numbers equal within 1e-5 (bools and strings exactly)."""
    if isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            assert_close(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_close(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        assert a == pytest.approx(b, abs=1e-5), where
    else:
        assert a == b, where


def test_two_ranks_equal_one_process_with_the_global_batch(tiny, tiny_nodrop, data_root,
                                                          tmp_path):
    configs = {m: asdict(base(tiny_nodrop, data_root, mode=m)) for m in ("multitask", "pcgrad")}
    # and PCGrad with dropout on: batch shapes differ by rank, and so do the CPU random streams
    # that dropout draws from; the projection orders must not (distributed.mean_rows)
    # (3 tasks: with 2 the order of the "other" tasks is no choice)
    configs["pcgrad-dropout"] = asdict(base(tiny, data_root, mode="pcgrad", head_dropout=0.1))
    proc = torchrun(tmp_path / "ddp", configs)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in configs:  # every rank ends with the same weights
        assert read(tmp_path / "ddp" / name / "rank-gap.json") == 0.0, name
    for mode, c in list(configs.items())[:2]:
        one = tmp_path / "one" / mode
        T.run(T.TrainConfig(**(c | {"batch_size": 8})), one, progress=False)
        two = tmp_path / "ddp" / mode
        m1, m2 = read(one / "metrics.json"), read(two / "metrics.json")
        assert (m2["world_size"], m2["global_batch_size"]) == (2, 8)
        assert (m1["world_size"], m1["global_batch_size"]) == (1, 8)
        assert m1["steps"] == m2["steps"] == (18 if mode == "multitask" else 6)
        assert_close(m1["dev"], m2["dev"], mode)
        h1, h2 = strip_times(read(one / "history.json")), strip_times(read(two / "history.json"))
        # dev and conflict statistics of the global gradients; train numbers of all ranks
        assert_close(h1, h2, mode)
        assert any(v["conflict_rate"] > 0 for e in h1 for v in e["conflict"].values()), \
            "no conflict: the projection would not be exercised"
        w1 = torch.load(one / "checkpoint.pt", weights_only=True)
        w2 = torch.load(two / "checkpoint.pt", weights_only=True)
        assert w2["config"]["world_size"] == 2 and len(w2["rng_ranks"]) == 2
        for k, v in w1["model"].items():
            torch.testing.assert_close(w2["model"][k], v, atol=1e-5, rtol=0, msg=k)
        # the whole dev set, in file order, written once
        for t in ("sst", "quora", "sts"):
            ids = lambda p: [ln.split("\t")[0] for ln in p.read_text().splitlines()]  # noqa
            assert ids(two / f"dev-predictions-{t}.tsv") == ids(one / f"dev-predictions-{t}.tsv")
            assert len(ids(two / f"dev-predictions-{t}.tsv")) == 16


def test_two_ranks_killed_after_epoch_one_then_resumed(tiny, data_root, tmp_path):
    """Round-robin with dropout on: every rank's random stream must come back (rng_ranks)."""
    c = asdict(base(tiny, data_root, mode="multitask", head_dropout=0.1, tasks=("sst", "sts"),
                    n_train=20))
    proc = torchrun(tmp_path, {"cut": c}, how="kill")
    assert proc.returncode != 0, "the kill did not happen"
    ck = torch.load(tmp_path / "cut/checkpoint.pt", weights_only=True)
    assert ck["epoch"] == 1 and not (tmp_path / "cut/metrics.json").exists()
    proc = torchrun(tmp_path, {"cut": c, "straight": c}, how="resume")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "cut/metrics.json").read_bytes() == (
        tmp_path / "straight/metrics.json").read_bytes()
    assert strip_times(read(tmp_path / "cut/history.json")) == strip_times(
        read(tmp_path / "straight/history.json"))


def test_sharded_sampler_splits_each_global_batch():
    """Hand-computed: 11 examples, 2 ranks x batch 3 (global 6): batches [0..5], [6..10]."""
    class Order(list):
        def set_epoch(self, e):
            pass
    order = Order(range(11))
    r0, r1 = (list(D.ShardedSampler(order, 3, 2, r)) for r in (0, 1))
    assert r0 == [0, 1, 2, 6, 7, 8] and r1 == [3, 4, 5, 9, 10]
    assert len(D.ShardedSampler(order, 3, 2, 1)) == 5
    # a last global batch with fewer examples than ranks is dropped
    assert list(D.ShardedSampler(Order(range(7)), 3, 2, 1)) == [3, 4, 5]
    assert list(D.StridedSampler(5, 2, 1)) == [1, 3]


def test_experiments_gpu_preset_dry_run_under_torchrun(tiny, data_root, tmp_path):
    """The gpu preset's rows 9 (PCGrad) and 13 (MLM pre-step on rank 0 first) on 2 gloo ranks:
    one result JSON per row, written by rank 0, with the world size and the global batch."""
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "minbert.report.experiments", "run", "--rows", "9", "13", "--preset", "gpu", "--dry-run",
         "--model", str(tiny), "--data", str(data_root), "--results", str(tmp_path / "r"),
         "--runs", str(tmp_path / "runs"), "--no-progress", "--threads", "1"],
        capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("seed 0:") == 2, proc.stdout  # one line per row, not per rank
    for name in ("row09-pcgrad-seed0", "row13-adjusted-mlm-v2-seed0"):
        r = read(tmp_path / "r" / "gpu-dry" / f"{name}.json")
        assert (r["world_size"], r["global_batch_size"]) == (2, 2 * r["config"]["batch_size"])
        assert r["predictions"]["sst"] and r["dev"]["sst"]["acc"] >= 0
    assert sorted(p.name for p in (tmp_path / "r" / "gpu-dry").iterdir()) == [
        "row09-pcgrad-seed0.json", "row13-adjusted-mlm-v2-seed0.json"]  # no temporary files

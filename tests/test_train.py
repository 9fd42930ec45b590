"""minbert.train on a tiny random BERT and a few dozen real examples: determinism,
checkpoints, SIGKILL + resume, NaN detection, the epoch rule, output files, metrics."""
import json
import signal
import subprocess
import sys
import textwrap
import warnings
import dataclasses
from dataclasses import asdict

import numpy as np
import pytest
import torch
import transformers

import minbert.train as T
from minbert import data, predictions
from minbert.heads import MultitaskBERT
from minbert.optimizer import AdamW
from minbert.trainer import Trainer

@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    pass


# the settings these tests were written for (the defaults before the course baseline)
PINNED = dict(mode="single", head_lr=None, evals_per_epoch=1, schedule="shortest",
              lr_decay="constant", pair_mode="joint", pooling="pooler")


def cfg(tiny, data_root, **kw):
    base = dict(model=str(tiny), data=str(data_root), epochs=2, batch_size=8, eval_batch_size=32,
                max_length=32, n_train=24, n_dev=16, lr=1e-3, seed=3)
    return T.TrainConfig(**(PINNED | base | kw))


class OnEpochEnd:
    """A trainer callback calling fn(epochs done) after each epoch (after the checkpoint)."""

    def __init__(self, fn):
        self.fn = fn

    def on_epoch_end(self, trainer):
        self.fn(trainer.state.epoch)


def strip_times(history):
    return [{k: v for k, v in e.items() if k != "wall_time_s"} for e in history]


def read(path):
    return json.loads(path.read_text())


def test_config_defaults_are_the_course_baseline_and_validation():
    """The defaults, against the course baseline as benchmarks/README.md states it (config F:
    lr 5e-5, heads 1e-3, linear decay, mean pooling, separate pairs, batch 32, 2 epochs of
    every batch, 64 tokens, 2 dev points an epoch)."""
    c = T.TrainConfig().resolved()
    assert (c.mode, c.tasks, c.encoder, c.lr, c.head_lr, c.lr_decay, c.pooling, c.pair_mode,
            c.batch_size, c.epochs, c.schedule, c.max_length, c.evals_per_epoch, c.head_dropout,
            c.encoder_dropout) == ("multitask", ("sst", "quora", "sts"), "finetune", 5e-5, 1e-3,
                                   "linear", "mean", "separate", 32, 2, "spread", 64, 2, 0.1, None)
    c = T.TrainConfig(mode="single").resolved()
    assert c.tasks == ("sst",)
    c = T.TrainConfig(mode="multitask", encoder="frozen").resolved()
    assert c.tasks == ("sst", "quora", "sts") and c.lr == 1e-3
    with pytest.raises(ValueError, match="one task"):
        T.TrainConfig(mode="single", tasks=("sst", "sts")).resolved()
    with pytest.raises(ValueError, match="finetune"):
        T.TrainConfig(mode="pcgrad", encoder="frozen").resolved()
    with pytest.raises(ValueError, match="mode"):
        T.TrainConfig(mode="joint").resolved()
    with pytest.raises(ValueError, match="finetune"):
        T.TrainConfig(tasks=("sts",), encoder="frozen", pair_mode="separate",
                      sts_loss="cosine_mse").resolved()


def test_cli_builds_the_config_from_fields(monkeypatch):
    seen = {}
    monkeypatch.setattr(T, "run", lambda c, out, **kw: seen.update(c=c, out=out, **kw) or {"dev": {}})
    T.main(["--mode", "single", "--task", "sts", "--model", "minilm-l6", "--out", "runs/x",
            "--epochs", "3", "--lr", "2e-5", "--n-train", "50", "--no-log-conflict", "--resume",
            "--init-from", "some/folder"])
    c = seen["c"]
    assert (c.tasks, c.epochs, c.lr, c.n_train, c.log_conflict, c.init_from) == (
        ("sts",), 3, 2e-5, 50, False, "some/folder")
    assert seen["out"] == "runs/x" and seen["resume"] is True
    T.main(["--out", "runs/y", "--recipe", "seed", "--batch-size", "16", "--head-lr", "none"])
    c = seen["c"]  # the seed's settings (report.txt: batch 8, dropout 0.3, lr 1e-5, the pooler,
    # joint pairs) under the options given
    assert (c.batch_size, c.head_dropout, c.lr, c.head_lr, c.pooling, c.pair_mode, c.schedule,
            c.lr_decay) == (16, 0.3, 1e-5, None, "pooler", "joint", "shortest", "constant")


def test_cli_help_gives_every_option_a_line_and_its_default_and_prints_a_table(
        monkeypatch, capsys):
    parser = T.build_parser()
    for action in parser._actions:
        if action.dest != "help":
            assert action.help and action.help.strip(), action.dest
    text = parser.format_help()
    assert text.count("(default:") == len(parser._actions) - 1  # every option but --help
    for flag, choices in (("--pooling", "{pooler,mean}"), ("--pair-mode", "{joint,separate}"),
                          ("--sts-loss", "{mse,cosine_mse,cosine_embedding}"),
                          ("--pcgrad-reduction", "{sum,mean}")):
        assert f"{flag} {choices}" in text, flag

    def fake_run(c, out, **kw):
        warnings.warn("data.csv: skipped 1 row", data.DataWarning)
        return {"dev": {"sst": {"acc": 0.412345678}, "sts": {"pearson": 0.87}}}
    monkeypatch.setattr(T, "run", fake_run)
    T.main(["--out", "runs/z"])
    out, err = capsys.readouterr()
    assert out.splitlines()[:3] == ["task   metric       dev", "sst    acc       0.4123",
                                    "sts    pearson   0.8700"]
    assert err.strip() == "DataWarning: data.csv: skipped 1 row"  # one line, no source line


def test_a_finished_run_keeps_its_weights_not_the_optimizer(tiny, data_root, tmp_path):
    c = cfg(tiny, data_root, epochs=1, tasks=("sts",))
    T.run(c, tmp_path / "lean", progress=False)
    T.run(c, tmp_path / "kept", progress=False, keep_optimizer=True)
    lean = torch.load(tmp_path / "lean/checkpoint.pt", weights_only=True)
    kept = torch.load(tmp_path / "kept/checkpoint.pt", weights_only=True)
    assert "optimizer" not in lean and "optimizer" in kept
    for k, v in lean["model"].items():
        assert torch.equal(v, kept["model"][k]), k
    assert (tmp_path / "lean/checkpoint.pt").stat().st_size < 0.5 * (
        tmp_path / "kept/checkpoint.pt").stat().st_size
    longer = dataclasses.replace(c, epochs=2)
    with pytest.raises(ValueError, match="keep-optimizer"):
        T.run(longer, tmp_path / "lean", resume=True, progress=False)
    T.run(longer, tmp_path / "kept", resume=True, progress=False)  # continues
    assert [e["epoch"] for e in read(tmp_path / "kept/history.json")] == [1, 2]


# --- runs -------------------------------------------------------------------------------
def test_same_seed_same_metrics_and_files(tiny, data_root, tmp_path):
    c = cfg(tiny, data_root, mode="multitask", n_train={"sst": 24, "quora": 32, "sts": 16})
    m1 = T.run(c, tmp_path / "a", progress=False)
    m2 = T.run(c, tmp_path / "b", progress=False)
    assert (tmp_path / "a/metrics.json").read_bytes() == (tmp_path / "b/metrics.json").read_bytes()
    assert strip_times(read(tmp_path / "a/history.json")) == strip_times(read(tmp_path / "b/history.json"))
    m3 = T.run(c.__class__(**(asdict(c) | {"seed": 4})), tmp_path / "c", progress=False)
    assert read(tmp_path / "c/history.json")[0]["train"] != read(tmp_path / "a/history.json")[0]["train"]

    # the epoch: R = shortest loader (16 sts examples / 8 = 2 batches), one step per batch
    h = read(tmp_path / "a/history.json")
    assert [e["steps"] for e in h] == [6, 12]
    assert all(e["train"][t]["batches"] == 2 for e in h for t in ("sst", "quora", "sts"))
    assert set(h[0]["conflict"]) == {"sst-quora", "sst-sts", "quora-sts"}
    for v in h[0]["conflict"].values():
        assert 0 <= v["conflict_rate"] <= 1 and -1 <= v["mean_cosine"] <= 1
    assert m1["dev"] == h[-1]["dev"] and m1["n_dev"] == {"sst": 16, "quora": 16, "sts": 16}
    assert m1["config"]["seed"] == 3 and m1["steps"] == 12

    # dev predictions: ids, pred, gold; the metric recomputed from the file (numpy oracle)
    lines = (tmp_path / "a/dev-predictions-sts.tsv").read_text().splitlines()
    assert lines[0] == "id\tpred\tgold" and len(lines) == 17
    pred, gold = np.array([[float(x) for x in l.split("\t")[1:]] for l in lines[1:]]).T
    r = np.corrcoef(pred, gold)[0, 1]
    assert m1["dev"]["sts"]["pearson"] == pytest.approx(r, abs=1e-6)
    lines = (tmp_path / "a/dev-predictions-sst.tsv").read_text().splitlines()[1:]
    acc = np.mean([l.split("\t")[1] == l.split("\t")[2] for l in lines])
    assert m1["dev"]["sst"]["acc"] == pytest.approx(acc)


def test_linear_lr_decay_by_hand(tiny, data_root, tmp_path, monkeypatch):
    """lr_decay='linear', set once a round: lr x (1 - steps done / 20). The spread epoch of the
    test below steps 1, 2, 2, 2, 3 times in its five rounds, so the rounds start after 0, 1, 3,
    5, 7 steps (epoch 2: 10, 11, 13, 15, 17). Both groups (encoder 1e-3, heads 1e-2) decay."""
    seen, real = [], AdamW.step
    monkeypatch.setattr(AdamW, "step", lambda self, *a: seen.append(
        sorted(g["lr"] for g in self.param_groups)) or real(self, *a))
    c = cfg(tiny, data_root, mode="multitask", schedule="spread", lr=1e-3, head_lr=1e-2,
            lr_decay="linear", n_train={"sst": 16, "quora": 40, "sts": 24})
    T.run(c, tmp_path / "a", progress=False)
    done = [0, 1, 3, 5, 7, 10, 11, 13, 15, 17]
    per_step = [1 - d / 20 for d, n in zip(done, [1, 2, 2, 2, 3] * 2) for _ in range(n)]
    assert len(seen) == 20
    assert sum(seen, []) == pytest.approx([x * f for f in per_step for x in (1e-3, 1e-2)])
    with pytest.raises(ValueError, match="lr_decay"):
        T.TrainConfig(lr_decay="cosine").resolved()
    # resuming with more epochs would change a decay that spans them all: refused
    with pytest.raises(ValueError, match="epochs"):
        T.run(dataclasses.replace(c, epochs=3), tmp_path / "a", resume=True, progress=False)


def test_spread_schedule_takes_every_batch_once_evenly(tiny, data_root, tmp_path, monkeypatch):
    """schedule='spread': R = the longest loader; the oracle is a hand count. Batches of 8:
    sst 16 -> 2, quora 40 -> 5, sts 24 -> 3. Round r takes task t when floor((r+1) n/5) steps
    up: sst in rounds 2, 4; sts in 1, 3, 4; quora in all five. 10 steps an epoch (shortest: 6)."""
    rounds, real = [], Trainer.round_robin_round
    monkeypatch.setattr(Trainer, "round_robin_round",
                        lambda self, batches, epoch: rounds.append(list(batches)) or real(
                            self, batches, epoch))
    c = cfg(tiny, data_root, mode="multitask", schedule="spread", evals_per_epoch=2,
            n_train={"sst": 16, "quora": 40, "sts": 24})
    m = T.run(c, tmp_path / "a", progress=False)
    assert rounds == [["quora"], ["quora", "sts"], ["sst", "quora"], ["quora", "sts"],
                      ["sst", "quora", "sts"]] * 2
    h = read(tmp_path / "a/history.json")
    # points after rounds 3 and 5 of each epoch: rounds 0-2 hold 1 sst, 3 quora, 1 sts batch
    assert [e["steps"] for e in h] == [5, 10, 15, 20] and m["steps"] == 20
    assert [{t: v["batches"] for t, v in e["train"].items()} for e in h] == [
        {"sst": 1, "quora": 3, "sts": 1}, {"sst": 1, "quora": 2, "sts": 2}] * 2
    # conflicts: only round 4 has every task, once an epoch, in the second half
    assert "conflict" not in h[0] or not h[0]["conflict"]
    assert set(h[1]["conflict"]) == {"sst-quora", "sst-sts", "quora-sts"}
    with pytest.raises(ValueError, match="shortest"):
        T.TrainConfig(mode="pcgrad", schedule="spread").resolved()
    with pytest.raises(ValueError, match="schedule"):
        T.TrainConfig(schedule="longest").resolved()
    # one task: both rules are the same loop, so a single-task config records one name
    assert T.TrainConfig(mode="single", schedule="spread").resolved().schedule == "shortest"
    assert T.TrainConfig(mode="multitask", schedule="spread").resolved().schedule == "spread"


def test_intermediate_points_do_not_change_the_run(tiny, data_root, tmp_path):
    """evals_per_epoch=2 adds a dev point mid-epoch; the oracle is the same run with one point
    an epoch: scoring dev (no grad, eval mode, no random draws) must not move the training."""
    c = cfg(tiny, data_root, mode="multitask", n_train={"sst": 32, "quora": 32, "sts": 32})
    one = T.run(c, tmp_path / "one", progress=False)
    two = T.run(dataclasses.replace(c, evals_per_epoch=2), tmp_path / "two", progress=False)
    h1, h2 = read(tmp_path / "one/history.json"), read(tmp_path / "two/history.json")
    assert [e["epoch"] for e in h2] == [0.5, 1, 1.5, 2] and [e["steps"] for e in h2] == [6, 12, 18, 24]
    assert two["dev"] == one["dev"] and two["epochs"] == one["epochs"] == 2
    assert [h2[1]["dev"], h2[3]["dev"]] == [h1[0]["dev"], h1[1]["dev"]]
    # each point's train numbers cover the batches since the previous point (2 of 4 here)
    assert all(e["train"][t]["batches"] == 2 for e in h2 for t in ("sst", "quora", "sts"))
    assert h2[0]["dev"] != h2[1]["dev"]
    assert (tmp_path / "one/dev-predictions-sts.tsv").read_bytes() == (
        tmp_path / "two/dev-predictions-sts.tsv").read_bytes()


def test_checkpoint_loads_with_weights_only(tiny, data_root, tmp_path):
    c = cfg(tiny, data_root, epochs=1, tasks=("sts",), init_from=str(tiny), model="not-a-model")
    T.run(c, tmp_path, progress=False)
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ck["epoch"] == 1 and len(ck["history"]) == 1
    assert set(ck["rng"]) >= {"torch", "python", "numpy"}
    assert ck["config"]["init_from"] == str(tiny)
    model, tok, config = T.load_run(tmp_path)
    assert isinstance(model, MultitaskBERT) and config.tasks == ("sts",)
    for k, v in model.state_dict().items():
        assert torch.equal(v, ck["model"][k]), k
    assert not list(tmp_path.glob(".*tmp*")), "temporary files left behind"


KILLER = textwrap.dedent("""
    import os, signal, sys, torch
    torch.set_num_threads(1)
    import minbert.train as T
    config = T.TrainConfig(**__CONFIG__)
    class Die:
        def on_epoch_end(self, trainer):
            if trainer.state.epoch == 1:
                os.kill(os.getpid(), signal.SIGKILL)
    T.run(config, sys.argv[1], progress=False, callbacks=[Die()])
""")


def test_sigkill_after_first_epoch_then_resume(tiny, data_root, tmp_path):
    c = cfg(tiny, data_root, mode="multitask", tasks=("sst", "sts"), n_train=16, epochs=3)
    script = KILLER.replace("__CONFIG__", repr(asdict(c)))
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "killed")],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert torch.load(tmp_path / "killed/checkpoint.pt", weights_only=True)["epoch"] == 1
    assert not (tmp_path / "killed/metrics.json").exists()

    resumed = T.run(c, tmp_path / "killed", resume=True, progress=False)
    straight = T.run(c, tmp_path / "straight", progress=False)
    assert resumed == straight
    assert strip_times(read(tmp_path / "killed/history.json")) == strip_times(
        read(tmp_path / "straight/history.json"))
    assert (tmp_path / "killed/metrics.json").read_bytes() == (tmp_path / "straight/metrics.json").read_bytes()

    with pytest.raises(ValueError, match="seed"):
        T.run(T.TrainConfig(**(asdict(c) | {"seed": 99})), tmp_path / "killed", resume=True,
              progress=False)


class Interrupt(Exception):
    pass


def test_pcgrad_interrupted_then_resumed_matches(tiny, data_root, tmp_path):
    """In-process version for PCGrad, whose projection order draws from the global RNG; with
    the linear lr decay, which the resumed run must continue from the checkpoint's initial lr."""
    pytest.importorskip("minbert.pcgrad")
    c = cfg(tiny, data_root, mode="pcgrad", tasks=("sst", "quora", "sts"), n_train=16, epochs=2,
            lr_decay="linear")

    def stop(epoch):
        if epoch == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        T.run(c, tmp_path / "cut", progress=False, callbacks=[OnEpochEnd(stop)])
    torch.manual_seed(12345)  # disturb the global RNG: resume must restore it
    resumed = T.run(c, tmp_path / "cut", resume=True, progress=False, keep_optimizer=True)
    straight = T.run(c, tmp_path / "straight", progress=False, keep_optimizer=True)
    assert resumed == straight
    h = read(tmp_path / "straight/history.json")
    assert strip_times(read(tmp_path / "cut/history.json")) == strip_times(h)
    assert [e["steps"] for e in h] == [2, 4]  # one optimizer step per round of 3 tasks
    # the last round (3 of its 4 steps done) ran at 1e-3 x (1 - 3/4), both runs
    for run in ("cut", "straight"):
        groups = torch.load(tmp_path / run / "checkpoint.pt", weights_only=True)["optimizer"]
        assert [g["lr"] for g in groups["param_groups"]] == pytest.approx([2.5e-4] * 2)
    assert set(h[0]["conflict"]) == {"sst-quora", "sst-sts", "quora-sts"}


def test_nan_loss_names_step_and_task(tiny, data_root, tmp_path, monkeypatch):
    # lr = inf: step 1 (sst) is finite, its update is not, so step 2 (quora) is nan
    c = cfg(tiny, data_root, mode="multitask", lr=float("inf"), epochs=1)
    with pytest.raises(FloatingPointError, match=r"task 'quora' at step 2 \(epoch 1\)"):
        T.run(c, tmp_path / "inf", progress=False)

    calls = {"n": 0}
    real = MultitaskBERT.forward_loss

    def poisoned(self, task, batch):
        loss, out = real(self, task, batch)
        calls["n"] += 1
        return (loss * float("nan") if calls["n"] == 3 else loss), out

    monkeypatch.setattr(MultitaskBERT, "forward_loss", poisoned)
    with pytest.raises(FloatingPointError, match=r"task 'sts' at step 3 \(epoch 1\)"):
        T.run(cfg(tiny, data_root, tasks=("sts",), epochs=1), tmp_path / "nan", progress=False)


def test_pretrain_single_task_and_test_predictions(tiny, data_root, tmp_path):
    c = cfg(tiny, data_root, encoder="frozen", tasks=("sst",), epochs=1, max_batches_per_task=2)
    m = T.run(c, tmp_path, progress=False)
    assert m["steps"] == 2 and m["config"]["lr"] == 1e-3
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    fresh = transformers.BertModel.from_pretrained(str(tiny))  # encoder untouched by training
    assert torch.equal(ck["model"]["bert.encoder.layer.0.attention.self.query.weight"],
                       fresh.state_dict()["encoder.layer.0.attention.self.query.weight"])
    model, tok, config = T.load_run(tmp_path)
    (path,) = predictions.write_predictions(model, tok, config, tmp_path, "test")
    lines = path.read_text().splitlines()
    n_test = sum(1 for _ in open(data_root / "ids-sst-test-student.csv")) - 1
    assert path.name == "sst-test-output.csv" and lines[0] == "id \t Predicted_Sentiment "
    assert len(lines) == n_test + 1
    i, p = lines[1].split(" , ")
    assert len(i) == 25 and p.strip() in {"0", "1", "2", "3", "4"}


# --- notebook 04: its check cell must fail on a stub and on wrong loops --------------
NOTEBOOK = __import__("pathlib").Path(__file__).resolve().parents[1] / "notebooks" / "04_round_robin.ipynb"
WRONG_LOOPS = {
    "stub": "# YOUR CODE HERE\nraise NotImplementedError()",
    "one step per round on the summed loss": textwrap.dedent('''
        its = {t: iter(l) for t, l in loaders.items()}
        out = {t: [] for t in loaders}
        for _ in range(rounds):
            optimizer.zero_grad()
            total = 0
            for t, it in its.items():
                loss = model.loss(t, next(it))
                out[t].append(loss.item())
                total = total + loss
            total.backward()
            optimizer.step()
        return out'''),
    "restarts every loader each round": textwrap.dedent('''
        out = {t: [] for t in loaders}
        for _ in range(rounds):
            for t, l in loaders.items():
                optimizer.zero_grad()
                loss = model.loss(t, next(iter(l)))
                loss.backward()
                optimizer.step()
                out[t].append(loss.item())
        return out'''),
    "never zeroes the gradients": textwrap.dedent('''
        its = {t: iter(l) for t, l in loaders.items()}
        out = {t: [] for t in loaders}
        for _ in range(rounds):
            for t, it in its.items():
                loss = model.loss(t, next(it))
                loss.backward()
                optimizer.step()
                out[t].append(loss.item())
        return out'''),
    "one task after the other": textwrap.dedent('''
        out = {t: [] for t in loaders}
        for t, l in loaders.items():
            it = iter(l)
            for _ in range(rounds):
                optimizer.zero_grad()
                loss = model.loss(t, next(it))
                loss.backward()
                optimizer.step()
                out[t].append(loss.item())
        return out'''),
}


def run_round_robin_exercise(body):
    import re

    import matplotlib
    import nbformat
    matplotlib.use("Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    ids = [c.id for c in nb.cells]
    ns = {}
    for cell in nb.cells[:ids.index("ex-round-robin")]:
        if cell.cell_type == "code" and "setup" in cell.metadata.get("tags", []):
            exec(compile(cell.source, cell.id, "exec"), ns)
    source = nb.cells[ids.index("ex-round-robin")].source
    if body is not None:
        m = re.search(r"( *)### BEGIN SOLUTION\n.*?### END SOLUTION", source, re.S)
        source = source[:m.start()] + "\n".join(
            m.group(1) + line for line in body.strip("\n").splitlines()) + source[m.end():]
    exec(compile(source, "ex-round-robin", "exec"), ns)
    check = nb.cells[ids.index("check-round-robin")]
    exec(compile(check.source, check.id, "exec"), ns)


def test_notebook_04_check_passes_the_solution_and_fails_wrong_loops():
    run_round_robin_exercise(None)
    for name, body in WRONG_LOOPS.items():
        with pytest.raises(AssertionError, match="not done yet" if name == "stub" else None):
            run_round_robin_exercise(body)

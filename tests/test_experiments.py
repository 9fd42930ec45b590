"""minbert.report.experiments end to end on the `tiny` preset (a random 2-layer BERT, a few
batches): the result JSON schema, skipping complete runs, notebook 08's readers, and a
dry run of the `gpu` preset's configs on CPU; the preset files against the seed's settings
and the course baseline, written out by hand."""
import json
from dataclasses import asdict

import pytest

import minbert.report.experiments as E
from minbert import plots
from minbert.metrics import METRIC, metric
from minbert.report import plan
from minbert.report import presets as P
from minbert.report import results as R
from minbert.report import significance as S
from minbert.report.rows import ROWS

KEYS = {"schema", "row", "name", "description", "preset", "dry_run", "seed", "config", "mlm",
        "command", "git_commit", "git_dirty", "versions", "device", "started_at", "wall_time_s",
        "resumed", "train_time_s", "history", "dev", "conflict", "predictions"}


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    pass


# How each row of the seed's table differs from its row 2 (report.txt, written out by hand)
FROZEN = {"encoder": "frozen", "lr": 1e-3}
# PCGrad: "zipping up the dataloaders for all three tasks ... one step per batch" (report.txt),
# so under a baseline that spreads every batch (cpu) row 9 goes back to the zipped rounds
SEED_DIFFS = {1: FROZEN, 9: {"mode": "pcgrad", "pcgrad_reduction": "mean", "schedule": "shortest"},
              10: {"sts_loss": "cosine_mse", "pair_mode": "separate"}, 11: {},
              12: {"batch_size": 64, "head_dropout": 0.5}, 13: {"batch_size": 64, "head_dropout": 0.5}}
for i, task in enumerate(("sst", "quora", "sts")):
    # one task: both schedules are the same loop, recorded as "shortest" (TrainConfig.resolved)
    SEED_DIFFS[3 + 2 * i] = {"mode": "single", "tasks": (task,), "schedule": "shortest", **FROZEN}
    SEED_DIFFS[4 + 2 * i] = {"mode": "single", "tasks": (task,), "schedule": "shortest"}


# Row 2 of the seed (report.txt; CS224N's defaults) and of the course (benchmarks/README.md,
# config F), every TrainConfig field written out by hand: the preset files must give these,
# whatever TrainConfig's defaults are.
SEED_ROW2 = dict(
    mode="multitask", tasks=("sst", "quora", "sts"), encoder="finetune",
    model="bert-base-uncased", init_from=None, data=None, epochs=10, batch_size=8,
    eval_batch_size=128, lr=1e-5, head_lr=None, weight_decay=0.0, head_dropout=0.3, max_length=128,
    n_train=None, n_dev=None, evals_per_epoch=1, max_batches_per_task=None, schedule="shortest",
    lr_decay="constant", seed=0, pcgrad_reduction="sum", pair_mode="joint", pooling="pooler",
    sts_loss="mse", log_conflict=True, cache_frozen=True, device="cuda", encoder_dropout=None)
COURSE_ROW2 = dict(
    SEED_ROW2, model="minilm-l6", epochs=2, batch_size=32, eval_batch_size=64, lr=5e-5,
    head_lr=1e-3, head_dropout=0.1, max_length=64, evals_per_epoch=2, schedule="spread",
    lr_decay="linear", pair_mode="separate", pooling="mean", device="cpu")


def test_preset_files_state_the_seed_and_course_baselines():
    assert asdict(P.row_config(2, 0, P.preset_settings("gpu"))) == SEED_ROW2
    assert asdict(P.row_config(2, 0, P.preset_settings("cpu"))) == COURSE_ROW2
    demo = asdict(P.row_config(2, 0, P.preset_settings("cpu-demo")))
    assert demo == dict(COURSE_ROW2, n_train=160, n_dev=200, evals_per_epoch=1)
    tiny = asdict(P.row_config(2, 0, P.preset_settings("tiny")))
    assert tiny == dict(COURSE_ROW2, max_length=32, n_train=16, n_dev=16, batch_size=8,
                        eval_batch_size=32, max_batches_per_task=2, epochs=1)
    # MLM: the seed's v1 / v2 (minbert.mlm) with the preset's sizes; --dry-run caps both
    assert P.mlm_settings("v2", P.preset_settings("gpu"), 0) == dict(
        batch_size=4, accumulation_steps=32, epochs=3, lr=5e-5, head_lr=1e-3,
        head_warmup_steps=100, max_length=128, seed=0)
    assert P.mlm_settings("v1", P.preset_settings("cpu"), 1) == dict(
        batch_size=4, accumulation_steps=1, epochs=3, lr=5e-5, head_lr=1e-3,
        head_warmup_steps=20, max_length=128, n_texts=400, n_eval=100, seed=1)
    dry = P.preset_settings("gpu", dry_run=True)
    assert asdict(P.row_config(2, 0, dry)) == dict(
        SEED_ROW2, n_train=8, n_dev=8, max_length=32, max_batches_per_task=2, device="cpu",
        eval_batch_size=8, epochs=1)
    assert P.mlm_settings("v1", dry, 0)["max_steps"] == 2
    shown = P.show("cpu")  # the file itself, then the rows
    assert shown.startswith(P.preset_text("cpu").rstrip()) and "seed-settings" in shown


def test_a_preset_file_names_every_field(tmp_path, monkeypatch):
    """A field left out is None only where TrainConfig allows None; anything else is an error,
    so that no preset silently takes a TrainConfig default."""
    cpu = P.preset_text("cpu")
    monkeypatch.setattr(P, "FOLDER", tmp_path)
    (tmp_path / "ok.toml").write_text(cpu.replace('head_lr = 1e-3\n', ""))
    assert P.load_preset("ok")["baseline"]["head_lr"] is None
    assert P.load_preset("ok")["baseline"]["n_train"] is None
    for bad, match in ((cpu.replace('pooling = "mean"\n', ""), "missing.*pooling"),
                       (cpu.replace("\n[mlm]\n", "seed = 3\n\n[mlm]\n"), "per run.*seed"),
                       (cpu.replace("\n[mlm]\n", "pooler = 1\n\n[mlm]\n"), "unknown.*pooler")):
        (tmp_path / "bad.toml").write_text(bad)
        with pytest.raises(ValueError, match=match):
            P.load_preset("bad")


def test_every_row_has_a_config_in_every_preset():
    assert sorted(ROWS) == list(range(15)) and set(R.SEED_REPORT) == set(ROWS) - {0, 14}
    for preset in P.PRESETS:
        s = P.preset_settings(preset)
        for row, r in ROWS.items():
            if r.changes is not None:
                P.row_config(row, 0, s)  # resolves (validates) without error
    gpu = P.row_config(2, 0, P.preset_settings("gpu"))
    assert (gpu.model, gpu.batch_size, gpu.head_dropout, gpu.epochs, gpu.lr, gpu.max_length,
            gpu.n_train, gpu.lr_decay) == (
        "bert-base-uncased", 8, 0.3, 10, 1e-5, 128, None, "constant")
    adj = P.row_config(12, 0, P.preset_settings("gpu"))
    assert (adj.batch_size, adj.head_dropout) == (64, 0.5)
    assert 14 not in E.all_rows("gpu") and P.row_config(14, 0, P.preset_settings("gpu")) == gpu
    # cpu: the course baseline, and each row differs from it as the seed's row from the seed's
    cpu = P.preset_settings("cpu")
    base = P.row_config(2, 0, cpu)
    assert (base.lr, base.head_lr, base.pooling, base.pair_mode, base.batch_size, base.n_train,
            base.n_dev, base.schedule, base.lr_decay) == (
        5e-5, 1e-3, "mean", "separate", 32, None, None, "spread", "linear")
    for preset in ("gpu", "cpu"):
        settings = P.preset_settings(preset)
        b = asdict(P.row_config(2, 0, settings))
        for row, want in SEED_DIFFS.items():
            c = asdict(P.row_config(row, 0, settings))
            got = {k: v for k, v in c.items() if v != b[k]}
            assert got == {k: v for k, v in want.items() if b[k] != v}, (preset, row, got)
    s14 = P.row_config(14, 0, cpu)
    assert (s14.lr, s14.head_lr, s14.pooling, s14.batch_size, s14.schedule, s14.lr_decay) == (
        1e-5, None, "pooler", 8, "shortest", "constant")  # the seed's lr: constant (report.txt)
    assert "MLM v2" in P.show("cpu")


def test_plan_counts_sentence_passes():
    """Row 8 (STS alone) by hand: 189 batches of 32 pairs x 2 epochs x 2 sentences, plus the 863
    dev pairs at 5 curve points, forward only (a third), and 189 x 2 optimizer steps; row 7
    encodes train + dev once; row 9 (PCGrad) steps once a round (189 x 2)."""
    est, p, step = plan.estimate_seconds("cpu", rows=[7, 8, 9], threads=1), 0.0136, 0.34
    assert est[8] == pytest.approx(p * (189 * 32 * 2 * 2 + 863 * 2 * 5 / 3) + step * 189 * 2)
    assert est[7] == pytest.approx(p * (6040 + 863) * 2 / 3)
    dev = (1101 + 3970 * 2 + 863 * 2) * 5 / 3
    assert est[9] == pytest.approx(p * (2 * 32 * 189 * 5 + dev) + step * 189 * 2)


def test_plan_counts_rounds_by_schedule(monkeypatch):
    """Row 2 by hand (batches of 32: SST 267, Quora 508, STS 189; 2 sentences a pair): the
    shortest rule takes 189 rounds of each task, the spread rule every batch of every task."""
    dev = (1101 + 3970 * 2 + 863 * 2) * 5 / 3  # 5 curve points, forward only
    for schedule, per_epoch in (("shortest", 189 * (1 + 2 + 2)), ("spread", 267 + 508 * 2 + 189 * 2)):
        monkeypatch.setitem(P.PRESETS["cpu"]["baseline"], "schedule", schedule)
        est = plan.estimate_seconds("cpu", rows=[2], threads=1)[2]
        steps = 2 * (189 * 3 if schedule == "shortest" else 267 + 508 + 189)
        assert est == pytest.approx(0.0136 * (2 * 32 * per_epoch + dev) + 0.34 * steps), schedule


def test_first_seed_runs_only_the_later_seeds(tiny, data_root, tmp_path):
    """--seeds 2 --first-seed 1: seed 1 alone (the second of two processes sharing seeds 0-1);
    a first seed outside 0 .. N-1 is an error, not a silent no-op."""
    res = tmp_path / "results"
    argv = ["run", "--rows", "1", "--seeds", "2", "--preset", "tiny", "--results", str(res),
            "--runs", str(tmp_path / "runs"), "--model", str(tiny), "--data", str(data_root),
            "--no-progress"]
    E.main(argv + ["--first-seed", "1"])
    made = list((res / "tiny").glob("*.json"))
    assert [f.name for f in made] == ["row01-multitask-pretrain-seed1.json"]
    assert json.loads(made[0].read_text())["seed"] == 1
    with pytest.raises(SystemExit):
        E.main(argv + ["--first-seed", "2"])


def test_run_skip_and_read(tiny, data_root, tmp_path, capsys):
    res, runs = tmp_path / "results", tmp_path / "runs"
    argv = ["run", "--rows", "0", "2", "--preset", "tiny", "--results", str(res), "--runs",
            str(runs), "--model", str(tiny), "--data", str(data_root), "--no-progress"]
    E.main(argv)
    files = sorted((res / "tiny").glob("*.json"))
    assert [f.name for f in files] == ["row00-zero-shot-seed0.json",
                                       "row02-multitask-finetune-seed0.json"]
    for f in files:
        r = json.loads(f.read_text())
        assert KEYS <= set(r), KEYS - set(r)
        assert set(r["dev"]) == {"sst", "quora", "sts"}
        assert {"torch", "transformers", "minbert", "python"} <= set(r["versions"])
        assert {"platform", "cores_available", "torch_threads"} <= set(r["device"])
        p = r["predictions"]["quora"][0]
        assert set(p) == {"id", "sentence1", "sentence2", "gold", "pred", "confidence"}
        assert len(r["predictions"]["sst"]) == 16
        for t, preds in r["predictions"].items():  # the stored pairs give the reported metric
            m = metric(t, [p["pred"] for p in preds], [p["gold"] for p in preds])
            assert m == r["dev"][t][METRIC[t]], (f.name, t)
    r2 = json.loads(files[1].read_text())
    assert r2["config"]["model"] == str(tiny) and len(r2["history"]) == 2
    assert r2["conflict"] and "sst-quora" in r2["conflict"][0]
    assert "threshold" in json.loads(files[0].read_text())["dev"]["quora"]
    mtime = [f.stat().st_mtime_ns for f in files]
    capsys.readouterr()
    E.main(argv)  # second invocation: everything complete
    assert capsys.readouterr().out.count("complete, skipped") == 2
    assert [f.stat().st_mtime_ns for f in files] == mtime
    # a JSON made with another config is an error, not "complete"; a field it predates is
    # its default (e.g. a JSON from before `schedule` existed ran the "shortest" rule)
    text, stored = files[1].read_text(), json.loads(files[1].read_text())
    assert stored["config"]["sts_loss"] == "mse"
    files[1].write_text(json.dumps(dict(stored, config=dict(stored["config"], sts_loss="cos"))))
    with pytest.raises(ValueError, match=r"row02-multitask-finetune-seed0.json.*sts_loss: 'cos'"):
        E.main(argv)
    del stored["config"]["sts_loss"]
    files[1].write_text(json.dumps(stored))
    E.main(argv)
    assert "complete, skipped" in capsys.readouterr().out
    files[1].write_text(text)
    # an interrupted run (checkpoint, no result JSON) is resumed, not restarted
    before = json.loads(files[1].read_text())
    files[1].unlink()
    E.main(argv)
    after = json.loads(files[1].read_text())
    assert after["resumed"] and after["dev"] == before["dev"]
    assert after["predictions"] == before["predictions"]

    df = R.load_results(res)
    assert list(df["row"]) == [0, 2] and df["sts"].notna().all()
    minutes = plan.measured_minutes(res / "tiny")  # the resumed row 2: its curve points' sum
    assert minutes[2, 0][0] == pytest.approx(after["train_time_s"] / 60)
    assert minutes[0, 0][:2] == (json.loads(files[0].read_text())["wall_time_s"] / 60,
                                 json.loads(files[0].read_text())["device"]["torch_threads"])
    s = R.summary_table(df)
    assert {"sst", "sst_std", "overall", "seed_sst", "diff_mean3"} <= set(s.columns)
    sst, quora, sts = df.loc[0, ["sst", "quora", "sts"]]  # CS224N's formula, written out here
    assert s["overall"].iloc[0] == pytest.approx((sst + quora + (sts + 1) / 2) / 3)
    assert s["mean3"].iloc[0] == pytest.approx((sst + quora + sts) / 3)
    assert len(R.format_table(s)) == 2
    assert len(R.error_analysis(df, k=2)) > 0
    plots.plot_overview(df, "tiny", tmp_path / "overview.png")
    plots.plot_figure1(df.loc[1, "history"], "row 2", tmp_path / "figure1.png")
    sig = S.significance_table(df, "tiny", n_resamples=50)  # row 2 is the base: nothing to compare
    assert len(sig) == 0 and "not run" in S.pcgrad_verdict(sig)
    assert R.learning_table(df, "tiny")["row"].tolist() == [2]
    plots.plot_conflicts(df, tmp_path / "conflicts.png")
    assert all((tmp_path / f).stat().st_size > 0 for f in ("overview.png", "figure1.png"))
    E.main(["table", "--results", str(res)])
    assert "multitask-finetune" in capsys.readouterr().out


def test_gpu_preset_dry_run(tiny, data_root, tmp_path):
    """The gpu preset's configs (bert-base settings, MLM v2 pre-step) on a local random BERT."""
    E.main(["run", "--rows", "13", "--preset", "gpu", "--dry-run", "--model", str(tiny),
            "--data", str(data_root),
            "--results", str(tmp_path / "r"), "--runs", str(tmp_path / "runs"), "--no-progress"])
    r = json.loads((tmp_path / "r" / "gpu-dry" / "row13-adjusted-mlm-v2-seed0.json").read_text())
    assert r["dry_run"] and r["config"]["batch_size"] == 64 and r["config"]["max_length"] == 32
    assert r["config"]["init_from"].endswith("encoder")
    assert r["mlm"]["settings"]["accumulation_steps"] == 32 and r["mlm"]["metrics"]["after"]

"""minbert.report.experiments end to end on the `tiny` preset (a random 2-layer BERT, a few
batches): the result JSON schema, skipping complete runs, notebook 08's readers, and a
dry run of the `gpu` preset's configs on CPU."""
import json
from dataclasses import asdict

import pytest

import minbert.report.experiments as E
from minbert import plots
from minbert.metrics import METRIC, metric
from minbert.report import plan
from minbert.report import results as R

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
              12: {"batch_size": 64, "dropout": 0.5}, 13: {"batch_size": 64, "dropout": 0.5}}
for i, task in enumerate(("sst", "quora", "sts")):
    # one task: both schedules are the same loop, recorded as "shortest" (TrainConfig.resolved)
    SEED_DIFFS[3 + 2 * i] = {"mode": "single", "tasks": (task,), "schedule": "shortest", **FROZEN}
    SEED_DIFFS[4 + 2 * i] = {"mode": "single", "tasks": (task,), "schedule": "shortest"}


def test_every_row_has_a_config_in_every_preset():
    assert sorted(E.ROWS) == list(range(15)) and set(R.SEED_REPORT) == set(E.ROWS) - {0, 14}
    for preset in E.PRESETS:
        s = E.preset_settings(preset)
        for row, r in E.ROWS.items():
            if r.changes is not None:
                E.row_config(row, 0, s)  # resolves (validates) without error
    gpu = E.row_config(2, 0, E.preset_settings("gpu"))
    assert (gpu.model, gpu.batch_size, gpu.dropout, gpu.epochs, gpu.lr, gpu.max_length,
            gpu.n_train, gpu.lr_decay) == (
        "bert-base-uncased", 8, 0.3, 10, 1e-5, 128, None, "constant")
    adj = E.row_config(12, 0, E.preset_settings("gpu"))
    assert (adj.batch_size, adj.dropout) == (64, 0.5)
    assert 14 not in E.all_rows("gpu") and E.row_config(14, 0, E.preset_settings("gpu")) == gpu
    # cpu: the course baseline, and each row differs from it as the seed's row from the seed's
    cpu = E.preset_settings("cpu")
    base = E.row_config(2, 0, cpu)
    assert (base.lr, base.head_lr, base.pooling, base.pair_mode, base.batch_size, base.n_train,
            base.n_dev, base.schedule, base.lr_decay) == (
        5e-5, 1e-3, "mean", "separate", 32, None, None, "spread", "linear")
    for preset in ("gpu", "cpu"):
        settings = E.preset_settings(preset)
        b = asdict(E.row_config(2, 0, settings))
        for row, want in SEED_DIFFS.items():
            c = asdict(E.row_config(row, 0, settings))
            got = {k: v for k, v in c.items() if v != b[k]}
            assert got == {k: v for k, v in want.items() if b[k] != v}, (preset, row, got)
    s14 = E.row_config(14, 0, cpu)
    assert (s14.lr, s14.head_lr, s14.pooling, s14.batch_size, s14.schedule, s14.lr_decay) == (
        1e-5, None, "pooler", 8, "shortest", "constant")  # the seed's lr: constant (report.txt)
    assert "MLM v2" in E.show("cpu")


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
        monkeypatch.setitem(E.PRESETS["cpu"]["baseline"], "schedule", schedule)
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
    sig = R.significance_table(df, "tiny", n_resamples=50)  # row 2 is the base: nothing to compare
    assert len(sig) == 0 and "not run" in R.pcgrad_verdict(sig)
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

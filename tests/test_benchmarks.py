"""The benchmark scripts in smoke mode (seconds), so that they cannot rot. They print ratios
against transformers / a plain multitask step measured in the same run; nothing here
asserts a time (the numbers are in benchmarks/README.md, with the command and machine)."""
import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_model_smoke(capsys):
    rows = load("bench_model").main(["--smoke"])
    out = capsys.readouterr().out
    assert {r["what"] for r in rows} == {"train", "eval"}
    assert all(r["minbert_s"] > 0 and r["transformers_s"] > 0 for r in rows)
    assert "ratio" in out and "max |minbert - transformers|" in out


def test_bench_pcgrad_smoke(capsys):
    rows = load("bench_pcgrad").main(["--smoke"])
    assert rows and all(r["plain"] > 0 and r["pcgrad"] > 0 and r["surgery"] > 0 for r in rows)
    assert rows[0]["P"] > 20_000_000  # the whole MiniLM encoder is shared
    assert "surgery ms" in capsys.readouterr().out


def test_same_metrics_compare_passes_equal_files_and_fails_on_one_ulp(tmp_path, capsys):
    mod = load("same_metrics")
    a = {"meta": {}, "runs": {"r": {"dev": {"sts": {"pearson": 0.5}}, "steps": 3}}}
    b = {"meta": {}, "runs": {"r": {"dev": {"sts": {"pearson": 0.5000000000000001}}, "steps": 3}}}
    for name, d in (("a", a), ("b", b)):
        (tmp_path / f"{name}.json").write_text(__import__("json").dumps(d))
    assert mod.compare(str(tmp_path / "a.json"), str(tmp_path / "a.json")) == 0
    assert mod.compare(str(tmp_path / "a.json"), str(tmp_path / "b.json")) == 1
    assert "DIFF" in capsys.readouterr().out


def test_bench_notebooks_lists_every_notebook(monkeypatch, capsys):
    mod = load("bench_notebooks")
    seen = []
    monkeypatch.setattr(mod, "run", lambda nb, mode: (seen.append((nb.name, mode)) or (1.0, "ok")))
    mod.main(["--mode", "both", "--only", "01", "02"])
    assert seen == [("01_attention.ipynb", "ci"), ("01_attention.ipynb", "student"),
                    ("02_adamw.ipynb", "ci"), ("02_adamw.ipynb", "student")]
    assert "total" in capsys.readouterr().out

"""The design card's layout and the two install routes agreeing with each other."""
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_top_level_layout():
    for name in ("notebooks", "minbert", "data", "tests"):
        assert (ROOT / name).is_dir(), name
    for name in ("environment.yml", "README.md", "pyproject.toml", ".ci/run"):
        assert (ROOT / name).is_file(), name


def bare(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_names_the_pyproject_packages():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {bare(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    listed = {bare(line.strip()[2:]) for line in (ROOT / "environment.yml").read_text().splitlines()
              if line.strip().startswith("- ") and not line.strip().startswith("- -e")}
    assert wanted <= listed, f"missing from environment.yml: {sorted(wanted - listed)}"
    assert "python=3.11" in (ROOT / "environment.yml").read_text()


TEST_COMMAND = "MINBERT_CI=1 python -m pytest --nbval-lax tests notebooks"


def recipe(target: str) -> list[str]:
    """The command lines of one Makefile target."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    out = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        out.append(line.strip())
    return out


def test_readme_starts_with_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    setup = readme[readme.index("## Set up"):readme.index("## Get the data")]
    assert re.search(r"```bash\nmake lab\s.*?\nmake test\s", setup, re.S), \
        "README's set-up should show `make lab` and `make test` in one block"
    ci = (ROOT / ".ci/run").read_text()
    block = re.search(r"# --- README: test ---\n(.*?)# --- end test ---", ci, re.S).group(1)
    assert block.strip() == "make test"
    assert re.search(r"^rm -rf \.venv", ci, re.M), "CI proves the README from a fresh environment"
    assert re.search(r"^apt-get install -y --no-install-recommends .*\bchromium\b.*\bbubblewrap\b",
                     ci, re.M)


def test_make_targets_run_the_documented_commands():
    assert recipe("test") == [TEST_COMMAND + " $(PYTEST_ARGS)"]
    assert TEST_COMMAND in (ROOT / "README.md").read_text()
    assert recipe("lab") == ["jupyter lab notebooks/ $(LAB_ARGS)"]
    assert recipe("check") == ['python -m minbert.check "$(FILE)"'], \
        "the student's own file (tests/test_handout.py: no file or an instructor copy refused)"
    install = recipe("$(STAMP)")
    assert install[1:3] == ["python -m pip install -q $(TORCH)",
                            'python -m pip install -q -e ".[dev]"'], "torch first, then the package"
    results_readme = (ROOT / "results" / "README.md").read_text()
    runs = [c for c in recipe("results") if c.startswith("python")]
    assert runs and all(c in results_readme for c in runs), \
        "make results should run exactly the commands of results/README.md"


def test_data_csvs_are_not_committed():
    assert not list((ROOT / "data").glob("*.csv")) or "/data/*.csv" in (ROOT / ".gitignore").read_text()

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


def test_ci_runs_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci/run").read_text()
    for block in ("install", "test"):
        cmds = re.search(rf"# --- README: {block} ---\n(.*?)# --- end {block} ---", ci, re.S).group(1)
        for cmd in filter(None, (c.strip() for c in cmds.splitlines())):
            assert cmd in readme, f".ci/run runs {cmd!r}, which the README does not say"


def test_data_csvs_are_not_committed():
    assert not list((ROOT / "data").glob("*.csv")) or "/data/*.csv" in (ROOT / ".gitignore").read_text()

"""The course as a website (`make site`): the student's hand-out, run, rendered by Sphinx.

1. `course.release` writes the hand-out into WORK/handout: notebooks and package
   with every solution block stripped (the course's own release, not a second stripper);
2. each hand-out notebook runs there in CI mode (MINBERT_CI=1, checks report: nothing is
   answered, so the stand-ins run and each check prints "not done yet");
3. WORK/src gets the run notebooks (a "run it yourself" box added to each), the guides at
   their repository paths (so their relative links hold), the figures, and one page per
   package module a notebook builds, showing its released source;
4. Sphinx (myst-nb, sphinx-book-theme; site/conf.py) writes the HTML into OUT.
Nothing is fetched: theme, fonts, scripts and MathJax come from installed packages.

    python site/build.py [--out build/site] [--work build/site-work]
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the repository's minbert: its release makes the hand-out

import course  # noqa: E402
from course.notebooks import numbered_notebooks  # noqa: E402

GUIDES = ["README.md", "docs/instructors.md", "docs/design.md", "docs/notebooks.md",
          "docs/distributed.md", "results/README.md", "data/README.md", "benchmarks/README.md"]
WIDGET = "application/vnd.jupyter.widget-view+json"
BOX = """
:::{{admonition}} Run it yourself
:class: tip
This page is the student's hand-out of `{name}` (every exercise unanswered, as you get it),
run top to bottom in **CI mode** (`MINBERT_CI=1`): its training cells ran on small data for
few steps, so their numbers are below a student-mode run's (notebook 08 trains nothing: it
reads the committed results), and each check prints "not done yet" where your answer goes.
To run it, from a clone of the repository (see [Set up](../README.md#set-up)):

```bash
{commands}```

It builds {modules}.
:::
"""


def readme_facts() -> tuple[str, dict]:
    """From README.md: the two set-up commands and, per notebook, the modules it builds."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    setup = text[text.index("## Set up"):text.index("## Get the data")]
    commands = re.search(r"```bash\n(make lab.*?)```", setup, re.S).group(1)
    modules = {}
    for line in text.splitlines():
        if not re.match(r"\| `\d\d_\w+\.ipynb` \|", line):
            continue
        cells = line.split("|")
        folder, found = "", []
        for token in re.findall(r"`([^`]+)`", cells[3]):
            if token.endswith("/"):
                folder = token
            elif token.endswith(".py"):
                found.append(token if token.startswith("minbert/") else folder + token)
        modules[re.search(r"`(\d\d_\w+)\.ipynb`", cells[1]).group(1)] = found
    return commands, modules


def run_notebook(path: Path, handout: Path) -> dict:
    """Execute one hand-out notebook in the hand-out folder, in CI mode; its widget outputs
    (progress bars, sliders) dropped: a static page has no kernel to draw them."""
    import nbformat
    from nbclient import NotebookClient
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MINBERT_RESULTS")}
    env.update(MINBERT_CI="1", MINBERT_CHECKS="report", HF_HUB_OFFLINE="1")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(handout)}})
    client.execute(env=env)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if WIDGET not in o.get("data", {})]
    return nb


def with_box(nb, name: str, commands: str, modules: list) -> None:
    """The "run it yourself" box, after the notebook's title cell."""
    import nbformat
    links = ", ".join(f"[`{m}`](../modules/{page_name(m)}.md)" for m in modules) or "no module"
    box = BOX.format(name=name + ".ipynb", commands=commands, modules=links)
    nb.cells.insert(1, nbformat.v4.new_markdown_cell(box.strip() + "\n"))


def page_name(module: str) -> str:
    return module.removesuffix(".py").replace("/", ".")


def module_page(module: str, handout: Path) -> str:
    """A page showing one module as the hand-out ships it."""
    source = (handout / module).read_text(encoding="utf-8")
    fence = "`" * max(4, 1 + max((len(m) for m in re.findall(r"`+", source)), default=0))
    return (f"# `{module}`\n\nThe package module as the student's hand-out ships it: every "
            "written-out exercise answer removed, so the library-backed stand-in runs, or "
            "your own code once its check passes (`minbert.yours`).\n\n"
            f"{fence}python\n{source}{fence}\n")


def write_sources(handout: Path, src: Path, notebooks: dict) -> None:
    """WORK/src: the run notebooks, guides, figures, module pages and the index."""
    import nbformat
    if src.exists():
        shutil.rmtree(src)
    commands, modules = readme_facts()
    for name, nb in notebooks.items():
        with_box(nb, name, commands, modules.get(name, []))
        (src / "notebooks").mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, src / "notebooks" / f"{name}.ipynb")
    for guide in GUIDES:
        (src / guide).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / guide, src / guide)
    shutil.copytree(ROOT / "results" / "figures", src / "results" / "figures")
    (src / "modules").mkdir()
    for module in sorted({m for ms in modules.values() for m in ms}):
        (src / "modules" / f"{page_name(module)}.md").write_text(
            module_page(module, handout), encoding="utf-8")
    shutil.copy(ROOT / "site" / "index.md", src / "index.md")


def build(out: Path, work: Path) -> None:
    start = time.time()
    handout = work / "handout"
    paths = course.release(handout, ROOT / "notebooks")
    print(f"hand-out released into {handout} ({len(paths)} notebooks)", flush=True)
    notebooks = {}
    for path in numbered_notebooks(handout):
        t = time.time()
        notebooks[path.stem] = run_notebook(path, handout)
        print(f"ran {path.name} in CI mode: {time.time() - t:.0f} s", flush=True)
    write_sources(handout, work / "src", notebooks)
    if out.exists():
        shutil.rmtree(out)
    subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-q", "-W", "--keep-going",
                    "-c", str(ROOT / "site"), "-d", str(work / "doctrees"), str(work / "src"),
                    str(out)], check=True)  # -W: a broken link or missing page fails the build
    print(f"site written to {out}/index.html in {time.time() - start:.0f} s")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "site")
    parser.add_argument("--work", type=Path, help="the hand-out and the Sphinx sources, "
                        "rebuilt each time (default: OUT-work beside OUT)")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    build(out, (args.work or out.parent / f"{out.name}-work").resolve())


if __name__ == "__main__":
    main()

"""The course as a website (issue 30): `make site` builds it into a temporary folder (its
recipe, `site/build.py`, where make would first install), and headless Chromium (Debian's
`chromium`, driven by Playwright with executable_path: no browser download) reads every
page, served by `python -m http.server` and opened from disk (file://):
- no page logs a console error or asks for anything outside the site, every image loaded
  (naturalWidth > 0), every internal link finds its page and anchor;
- each notebook has its page, with as many figures as its run drew; the results page holds
  the results table and Figure 1; the search box finds a word offline;
- no line of a solution block (the instructor notebooks' exercise cells, the package's
  `### BEGIN SOLUTION` blocks) is anywhere in the site: not in its files, not on a page as
  shown; the same scan finds such a line put into a page, so it can fail.
Screenshots of the 01, 05 and 08 pages go to $MINBERT_ARTIFACTS/site (default
<repo>/artifacts/site). Skips, naming what is missing, without Sphinx or Playwright (the dev
extras) or /usr/bin/chromium (`apt-get install -y chromium`).
"""
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from course.notebooks import SOLUTION, numbered_notebooks, read_notebook, secret_lines
from course.releasing import release_notebook, replace_blocks
from test_yours import code, solution_lines

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("MINBERT_ARTIFACTS", ROOT / "artifacts")) / "site"
TEXT = {".html", ".js", ".txt", ".json", ".ipynb", ".md", ".py", ".css", ".inv"}


@pytest.fixture(scope="module")
def site(tmp_path_factory, data_root) -> Path:
    """The site as `make site` builds it (CI mode runs of the hand-out), in a temporary folder;
    or, with MINBERT_SITE=build/site, the one `make site` built (its sources in build/site-work)."""
    if os.environ.get("MINBERT_SITE"):
        return Path(os.environ["MINBERT_SITE"]).resolve()
    pytest.importorskip("sphinx", reason="the site needs Sphinx: pip install -e \".[dev]\"")
    out = tmp_path_factory.mktemp("site") / "site"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    venv = f"VENV={sys.prefix}"  # the environment running the tests: `make site` as typed,
    # where make finds it up to date (as `make test` and .ci/run leave it); else its recipe
    made = shutil.which("make") and subprocess.run(["make", "-q", "env", venv], cwd=ROOT).returncode == 0
    command = ["make", "site", venv, f"SITE={out}"] if made else \
        [sys.executable, str(ROOT / "site" / "build.py"), "--out", str(out)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return out


def handed_out() -> set:
    """Every line the hand-out holds (as code() reads it): the released package's files and
    the released notebooks' cells, each as the release writes it."""
    lines = set()
    for p in sorted((ROOT / "minbert").rglob("*.py")):
        lines |= {code(x) for x in replace_blocks(p.read_text(encoding="utf-8"), SOLUTION, [],
                                                  p.name).splitlines()}
    for p in numbered_notebooks(ROOT / "notebooks"):
        for cell in release_notebook(read_notebook(p), p.name)["cells"]:
            lines |= {code(x) for x in "".join(cell["source"]).splitlines()}
    return lines


def answers() -> set:
    """The lines no page may show: every solution line of the instructor notebooks (as
    test_yours scans them) and of the package's `### BEGIN SOLUTION` blocks, 30+ characters;
    a block's line that the hand-out also holds outside any block (the `def` line a stand-in
    shares, an exercise's own `def forward(...)` line, a LayerNorm line another module has)
    is handed out, so not a secret (tests/test_yours.py checks the hand-out itself)."""
    package = set()
    for p in sorted((ROOT / "minbert").rglob("*.py")):
        package |= {code(x) for x in secret_lines(p.read_text(encoding="utf-8"))}
    return solution_lines() | {x for x in package - handed_out() if len(x) >= 30}


class _Text(HTMLParser):
    """A page's text with its lines as shown: a block element starts a line."""
    BLOCKS = {"pre", "div", "p", "li", "td", "th", "tr", "br", "h1", "h2", "h3", "h4", "table"}

    def __init__(self):
        super().__init__()
        self.parts = []

    def handle_starttag(self, tag, attrs=None):
        if tag in self.BLOCKS:
            self.parts.append("\n")

    handle_endtag = handle_starttag

    def handle_data(self, data):
        self.parts.append(data)


def file_lines(path: Path) -> list:
    text = path.read_bytes().decode("utf-8", errors="replace")
    if path.suffix != ".html":
        return text.splitlines()
    parser = _Text()
    parser.feed(text)
    return "".join(parser.parts).splitlines()


def leaks(folder: Path, secret: set) -> list:
    return [f"{p.relative_to(folder)}: {s.strip()}" for p in sorted(folder.rglob("*"))
            if p.suffix in TEXT for s in file_lines(p) if code(s) in secret]


def shown_leaks(page, secret: set) -> list:
    return [s for s in page.evaluate("() => document.body.innerText").splitlines()
            if code(s) in secret]


def highlighted_solution() -> str:
    """01's first exercise cell, the instructor's copy, highlighted as Sphinx highlights code."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer
    nb = json.loads((ROOT / "notebooks" / "01_attention.ipynb").read_text())
    cell = next(c for c in nb["cells"] if "exercise" in c["metadata"].get("tags", []))
    return highlight("".join(cell["source"]), PythonLexer(), HtmlFormatter())


def test_no_solution_line_in_the_site(site, tmp_path):
    secret = answers()
    assert len(secret) > 20, "the scan finds the solutions"
    assert not leaks(site, secret), "\n".join(leaks(site, secret))
    # the scan can fail: the instructor's exercise cell put into a copy of 01's page is found
    page = (site / "notebooks" / "01_attention.html").read_text(encoding="utf-8")
    bad = tmp_path / "01_attention.html"
    bad.write_text(page.replace("</main>", highlighted_solution() + "</main>", 1), encoding="utf-8")
    assert len(leaks(tmp_path, secret)) >= 2, leaks(tmp_path, secret)


@pytest.fixture(scope="module")
def served(site):
    """http://127.0.0.1:PORT serving the site, as `python -m http.server` does."""
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


BROKEN_IMAGES = "() => [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
LINKS = "() => [...document.querySelectorAll('a[href]')].map(a => a.href)"


def visit(browser, url: str):
    """(page, console errors) once `url` has loaded."""
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    errors = []
    page.on("console", lambda m: m.type == "error" and not m.location["url"].endswith(
        "/favicon.ico") and errors.append(f"{m.text} ({m.location['url']})"))  # the browser's own ask
    page.on("pageerror", lambda e: errors.append(str(e)))
    here = "file:" if url.startswith("file:") else "/".join(url.split("/")[:3])
    page.on("request", lambda r: r.url.startswith((here, "data:", "blob:")) or errors.append(
        f"fetched from outside the site: {r.url}"))  # fonts, scripts, styles: all local
    page.goto(url, wait_until="load")
    page.wait_for_load_state("networkidle")
    return page, errors


def ids(path: Path) -> set:
    return set(re.findall(r'\sid="([^"]+)"', path.read_text(encoding="utf-8")))


def dead_links(site: Path, base: str, hrefs: list, here: Path) -> list:
    """The internal links among `hrefs` whose file or anchor is missing from the site."""
    bad = []
    for href in hrefs:
        if not href.startswith(base):
            continue  # an outside link (nbval's repository, ...): not the site's to resolve
        parts = urlsplit(href)
        target = site / unquote(parts.path).lstrip("/")
        target = target / "index.html" if target.is_dir() else target
        if not target.is_file():
            bad.append(f"{here.relative_to(site)}: {href} (no such file)")
        elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in ids(target):
            bad.append(f"{here.relative_to(site)}: {href} (no such anchor)")
    return bad


def test_every_page_loads_clean_with_its_images_and_links(browser, site, served):
    pages = sorted(p for p in site.rglob("*.html") if "_static" not in p.parts)  # theme templates
    assert len(pages) >= 8 + 8, [p.name for p in pages]  # the notebooks, the guides, ...
    secret, bad = answers(), []
    for path in pages:
        rel = path.relative_to(site).as_posix()
        page, errors = visit(browser, f"{served}/{rel}")
        bad += [f"{rel}: console: {e}" for e in errors]
        bad += [f"{rel}: image did not load: {src}" for src in page.evaluate(BROKEN_IMAGES)]
        bad += dead_links(site, served, page.evaluate(LINKS), path)
        bad += [f"{rel}: shows a solution line: {s}" for s in shown_leaks(page, secret)]
        page.close()
    assert not bad, "\n".join(bad)


def drawn_figures(site: Path, name: str) -> int:
    """How many figures the run of notebook `name` drew (the sources build.py rendered)."""
    nb = json.loads((site.parent / f"{site.name}-work" / "src" / "notebooks" / f"{name}.ipynb").read_text())
    return sum("image/png" in o.get("data", {}) for c in nb["cells"] if c["cell_type"] == "code"
               for o in c["outputs"])


def test_each_notebook_page_shows_its_figures_and_how_to_run_it(browser, site, served, artifacts):
    names = [p.stem for p in numbered_notebooks(ROOT / "notebooks")]
    assert len(names) == 8
    for name in names:
        page, errors = visit(browser, f"{served}/notebooks/{name}.html")
        figures = page.locator(".cell_output img")
        assert figures.count() == drawn_figures(site, name), name
        box = page.locator(".admonition:has-text('Run it yourself')")
        assert "make lab" in box.inner_text() and "CI mode" in box.inner_text(), name
        assert box.locator("a[href*='modules/minbert.']").count() >= 1, name
        i = names.index(name)  # previous / next in chapter order
        if i > 0:
            assert page.locator("a.left-prev").get_attribute("href").endswith(f"{names[i - 1]}.html")
        if i < len(names) - 1:
            assert page.locator("a.right-next").get_attribute("href").endswith(f"{names[i + 1]}.html")
        if name[:2] in ("01", "05", "08"):
            page.screenshot(path=str(artifacts / f"{name[:2]}-top.png"))
            if figures.count():
                figures.first.scroll_into_view_if_needed()
                page.screenshot(path=str(artifacts / f"{name[:2]}-figure.png"))
        page.close()
    assert drawn_figures(site, "08_results") >= 3, "Figure 1, the overview, the conflict grid"
    page, _ = visit(browser, f"{served}/notebooks/04_round_robin.html")
    assert "pieces: yours: none yet | stand-ins: attention (" in page.locator("main").inner_text(), \
        "the hand-out's package ran"
    page.close()


def test_results_page_has_the_table_and_figure_1(browser, site, served):
    page, _ = visit(browser, f"{served}/notebooks/08_results.html")
    assert page.locator("th:text-is('Quora acc')").count() == 1, "the results table"
    assert "Figure 1" in page.locator("main").inner_text()
    page.close()


def test_the_shown_solution_scan_can_fail(browser, site, served):
    """The instructor's exercise cell, highlighted as Sphinx does, put on 01's page: found."""
    page, _ = visit(browser, f"{served}/notebooks/01_attention.html")
    secret = answers()
    assert not shown_leaks(page, secret)
    page.evaluate("html => document.querySelector('main').insertAdjacentHTML('beforeend', html)",
                  highlighted_solution())
    assert len(shown_leaks(page, secret)) >= 2
    page.close()


def test_opened_from_disk_it_works_and_search_finds_pages(browser, site, served):
    for rel in ("index.html", "notebooks/01_attention.html", "results/README.html"):
        page, errors = visit(browser, (site / rel).as_uri())
        assert not errors, (rel, errors)
        assert not page.evaluate(BROKEN_IMAGES), rel
        page.close()
    for url in (f"{served}/search.html?q=PCGrad", (site / "search.html").as_uri() + "?q=PCGrad"):
        page, errors = visit(browser, url)
        page.wait_for_selector("#search-results li", timeout=30_000)
        assert page.locator("#search-results li a[href*='05_pcgrad']").count() >= 1, url
        assert not errors, errors
        page.close()


def test_screenshots_were_written(artifacts, capsys):
    shots = sorted(p.name for p in artifacts.glob("*.png"))
    with capsys.disabled():
        print(f"\nsite screenshots: {artifacts} ({', '.join(shots)})")
    assert {"01-top.png", "05-top.png", "08-top.png"} <= set(shots), shots

"""The course in a real browser (issue 14, acceptance 2; issue 28, acceptance 6).

JupyterLab on a free local port serves the student release (`python -m course
release`), a hand-out folder outside the repository; headless Chromium (Debian's `chromium`,
driven by Playwright with executable_path: no browser download) opens released notebooks and
runs all their cells, as a student's "Run All" does:
- 01_attention, answered (the instructor's answers pasted into the hand-out's exercise
  cells): every check passes, the attention function, the self-attention module and the
  embeddings module are saved as the student's own; the attention map's layer/head sliders render as widgets, and moving
  one redraws the figure; the plots are images;
- 03_heads, nothing answered: the training progress bar renders as a widget, each check cell
  states ✗ "not done yet" (student mode reports, it does not raise), the rest runs on;
- 04_round_robin, its own exercise unanswered: it trains with the student's attention and
  modules saved by 01 (its pieces line says so) and the stand-ins for the rest;
- 08_results, run in the hand-out (it reads the results the release ships), at a laptop's
  1,366 x 900 px: no cell of its tables wraps (the sentence columns aside); with the file
  browser closed no table is wider than its output area either (with it open, the results
  table scrolls sideways); the same check at 700 px finds a table too wide, so it is shown
  to fail.
In every notebook every cell ran and none ended in an error.
Screenshots go to $MINBERT_ARTIFACTS/browser (default <repo>/artifacts/browser); the test
prints the folder. CI mode (MINBERT_CI=1) keeps the training short. Skips, naming what is
missing, without Playwright (the dev extras) or /usr/bin/chromium (`apt-get install -y chromium`).
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from test_yours import answered

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("MINBERT_ARTIFACTS", ROOT / "artifacts")) / "browser"
TOKEN = "minbert-browser-test"
CURRENT = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook on screen
RUN_TIMEOUT_MS = 360_000  # one notebook's Run All, CI mode, on a loaded 2-core machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def write_lab_settings(folder: Path):
    """Every cell in the DOM (no windowing), no news or update pop-ups over the notebook."""
    settings = {"@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
                "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
                    {"fetchNews": "false", "checkForUpdates": False}}
    for rel, value in settings.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(json.dumps(value))


@pytest.fixture(scope="module")
def lab(tmp_path_factory, data_root):
    """(base url, release folder) of a JupyterLab serving the student release."""
    if shutil.which("jupyter-lab") is None and not (Path(sys.prefix) / "bin" / "jupyter-lab").exists():
        pytest.skip("jupyterlab is not installed")
    tmp = tmp_path_factory.mktemp("browser")
    release = tmp / "release"
    env = dict(os.environ, MINBERT_CI="1", MINBERT_CHECKS="report", HF_HUB_OFFLINE="1",
               MINBERT_YOURS=str(tmp / "yours"))
    for key in ("PYTHONPATH", "MINBERT_RESULTS"):  # the hand-out's own package and results
        env.pop(key, None)
    subprocess.run([sys.executable, "-m", "course", "release", "--out", str(release),
                    "--notebooks", str(ROOT / "notebooks")], check=True, cwd=ROOT, env=env,
                   capture_output=True)
    nbformat.write(answered(release, "01_attention.ipynb", count=False),
                   release / "01_attention.ipynb")
    write_lab_settings(tmp / "settings")
    port = free_port()
    log = (tmp / "lab.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}",
         "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0", f"--IdentityProvider.token={TOKEN}",
         f"--ServerApp.root_dir={release}", f"--LabApp.user_settings_dir={tmp / 'settings'}",
         f"--LabApp.workspaces_dir={tmp / 'workspaces'}"],
        cwd=release, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                get(f"{base}/api/status?token={TOKEN}")
                break
            except OSError:
                assert proc.poll() is None and time.time() < deadline, \
                    (tmp / "lab.log").read_text()[-3000:]
                time.sleep(0.5)
        yield base, release
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
        log.close()


def run_all(browser, base, name, shots: Path, watch=None, size=(1400, 1000)):
    """Open `name`, Run All Cells, wait for every cell, save; -> (page, saved notebook JSON).
    watch: a selector that must appear while the cells run (a screenshot is taken then)."""
    page = browser.new_page(viewport={"width": size[0], "height": size[1]})
    page.set_default_timeout(120_000)
    # a workspace of its own: only this notebook open (a restored tab would run a second kernel)
    page.goto(f"{base}/lab/workspaces/nb{name[:2]}/tree/{name}?reset&token={TOKEN}")
    page.wait_for_selector(".jp-Notebook .jp-Cell")
    # the kernel is up and idle (the status bar reads "Python 3 (ipykernel) | Idle")
    page.wait_for_function("() => /\\| Idle/.test(document.querySelector('#jp-main-statusbar')?.textContent)")
    page.click(".lm-MenuBar-item:has-text('Run')")
    page.click("li.lm-Menu-item[data-command='runmenu:run-all']")
    if watch:  # e.g. a progress bar, shown while its loop runs
        page.wait_for_selector(watch, state="attached", timeout=RUN_TIMEOUT_MS)
        try:
            page.locator(watch).first.scroll_into_view_if_needed(timeout=5_000)
        except Exception:  # noqa: BLE001 - the loop may end (and its bar go) before the scroll
            pass
        page.screenshot(path=str(shots / f"{name[:2]}-while-running.png"))
    # every code cell's prompt is [n]: (not [ ]: unrun, not [*]: running or queued)
    prompts = f"{CURRENT} .jp-CodeCell .jp-InputPrompt"
    try:
        page.wait_for_function("sel => { const p = [...document.querySelectorAll(sel)];"
                               " return p.length > 0 && p.every(x => /\\[\\d+\\]/.test(x.textContent)); }",
                               arg=prompts, timeout=RUN_TIMEOUT_MS)
    except Exception:
        page.screenshot(path=str(shots / f"{name[:2]}-stuck.png"))
        seen = page.evaluate("sel => [...document.querySelectorAll(sel)].map(x => x.textContent)", prompts)
        raise AssertionError(f"{name}: Run All did not finish; prompts {seen}") from None
    page.screenshot(path=str(shots / f"{name[:2]}-after-run-all.png"))
    page.keyboard.press("Control+s")
    page.wait_for_function("() => !document.querySelector('.jp-mod-dirty')")
    saved = get(f"{base}/api/contents/{name}?token={TOKEN}&content=1")["content"]
    return page, saved


def assert_ran_without_errors(nb: dict, answered=False):
    """Every code cell ran, none ended in an error; every check cell says ✗ "not done yet"
    (or, answered, ✓ passed)."""
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c["execution_count"] for c in code), "a cell did not run"
    errors = [(c["id"], o["ename"], o["evalue"]) for c in code for o in c["outputs"]
              if o["output_type"] == "error"]
    assert not errors, f"cells ended in an error: {errors}"
    for c in code:
        if c["metadata"].get("minbert", {}).get("kind") == "check":
            text = "".join(o.get("text", "") for o in c["outputs"])
            ok = "✓" in text and "✗" not in text if answered else "not done yet" in text
            assert ok, (c["id"], text)


def printed(nb: dict) -> str:
    return "".join(o.get("text", "") for c in nb["cells"] for o in c.get("outputs", []))


def test_answered_01_saves_the_students_code_and_its_sliders_redraw(browser, lab, artifacts):
    base, _ = lab
    page, nb = run_all(browser, base, "01_attention.ipynb", artifacts)
    assert_ran_without_errors(nb, answered=True)
    for piece in ("attention", "self_attention", "embeddings"):
        assert f"saved to {lab[1].parent / 'yours' / piece}.py" in printed(nb), piece
    sliders = page.locator(f"{CURRENT} .jp-OutputArea .widget-slider")
    assert sliders.count() == 2, "the layer and head sliders render as widgets"
    widget = page.locator(f"{CURRENT} .jp-OutputArea .widget-interact")
    figure = widget.locator("img")
    widget.scroll_into_view_if_needed()
    before = figure.first.get_attribute("src")
    page.screenshot(path=str(artifacts / "01-sliders-before.png"))
    handle = sliders.nth(0).locator(".noUi-handle")
    handle.focus()
    page.keyboard.press("ArrowRight")  # layer 2 -> 3
    page.wait_for_function("([sel, old]) => { const i = document.querySelector(sel);"
                           " return i && i.getAttribute('src') !== old; }",
                           arg=[f"{CURRENT} .widget-interact img", before])
    assert sliders.nth(0).locator(".widget-readout").inner_text().strip() == "3"
    page.screenshot(path=str(artifacts / "01-sliders-after.png"))
    assert page.locator(f"{CURRENT} .jp-OutputArea .jp-RenderedImage img").count() >= 3  # + the figure above
    page.close()


def test_training_progress_bar_is_a_widget(browser, lab, artifacts):
    base, _ = lab
    bar = f"{CURRENT} .jp-OutputArea .widget-hprogress"  # tqdm.auto's bar: an ipywidgets progress bar
    page, nb = run_all(browser, base, "03_heads.ipynb", artifacts, watch=bar)
    assert_ran_without_errors(nb)
    train = next(c for c in nb["cells"] if c["id"] == "train")
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in train["outputs"])
    assert page.locator(f"{CURRENT} .jp-OutputArea .jp-RenderedImage img").count() >= 1
    page.close()


def test_04_trains_with_the_students_code(browser, lab, artifacts):
    """After 01 (answered, above): 04 runs the student's attention and modules."""
    base, _ = lab
    page, nb = run_all(browser, base, "04_round_robin.ipynb", artifacts)
    assert_ran_without_errors(nb)
    line = next(t for t in printed(nb).splitlines() if t.startswith("pieces:"))
    assert line.startswith("pieces: yours: attention (01), self_attention (01), embeddings (01) | "
                           "stand-ins: "), line
    assert page.locator(f"{CURRENT} .jp-OutputArea .jp-RenderedImage img").count() >= 1
    page.close()


# Notebook 08 at a laptop's width: the JS below lists every table cell on more than one line
# (the prose columns aside: their sentences wrap on purpose) and every table wider than its
# output area; none may be found at 1,366 px.
PROSE = ["sentence1", "sentence2"]
WRAPPED = """([prose, scope]) => [...document.querySelectorAll(scope + ' .jp-OutputArea-output table')].flatMap((t, i) => {
  const bad = [], out = t.closest('.jp-OutputArea-output');
  const over = t.getBoundingClientRect().right - out.getBoundingClientRect().right;
  if (over > 0.5) bad.push(`table ${i}: ${Math.round(over)} px wider than its output area`);
  const head = [...t.querySelectorAll('thead tr:last-child th')].map(h => h.textContent.trim());
  for (const c of t.querySelectorAll('th, td')) {
    if (c.tagName === 'TD' && prose.includes(head[c.cellIndex])) continue;
    const r = document.createRange();
    r.selectNodeContents(c);
    const lines = new Set([...r.getClientRects()].filter(q => q.width > 0).map(q => Math.round(q.bottom)));
    if (lines.size > 1) bad.push(`table ${i}: '${c.textContent.trim()}' on ${lines.size} lines`);
  }
  return bad; })"""


def wrapped_cells(page, width: int, css: str = "") -> list:
    """What WRAPPED finds in the notebook on screen at `width` px (with `css` added)."""
    page.set_viewport_size({"width": width, "height": 900})
    if css:
        page.add_style_tag(content=css)
    page.wait_for_timeout(500)  # the lab lays the panel out again
    tables = page.locator(f"{CURRENT} .jp-OutputArea-output table").count()
    assert tables >= 7, f"08 shows its 7 tables as HTML tables, not text; found {tables}"
    assert page.locator(f"{CURRENT} th:text-is('Quora acc')").count() == 1, "the results table is one"
    return page.evaluate(WRAPPED, [PROSE, CURRENT])


def test_08_in_the_handout_fits_a_laptop_and_the_check_can_fail(browser, lab, artifacts):
    """At 1,366 x 900 no table row wraps; with the file browser closed (clicking its tab, as
    one does to read a wide table) no table is wider than the notebook either; with it open,
    the results table scrolls sideways in its output area."""
    base, _ = lab
    page, nb = run_all(browser, base, "08_results.ipynb", artifacts, size=(1366, 900))
    assert_ran_without_errors(nb)
    results = page.locator(f"{CURRENT} th:text-is('Quora acc')")
    wrapped = [b for b in wrapped_cells(page, 1366) if "wider than" not in b]
    results.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "08-results-1366-file-browser-open.png"))
    assert not wrapped, "\n".join(wrapped)
    page.click(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")  # close the file browser
    bad = wrapped_cells(page, 1366)
    results.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "08-results-1366.png"))
    assert not bad, "\n".join(bad)
    # 700 px: the results table is too wide; once its cells may wrap, cells on two lines
    bad = wrapped_cells(page, 700)
    assert any("wider than" in b for b in bad), bad
    bad = wrapped_cells(page, 700, css="td, th { white-space: normal !important; }")
    assert any(" on 2 lines" in b for b in bad), bad
    page.close()


def test_screenshots_were_written(browser, artifacts, capsys):
    shots = sorted(p.name for p in artifacts.glob("*.png"))
    with capsys.disabled():
        print(f"\nbrowser test screenshots: {artifacts} ({', '.join(shots)})")
    assert len(shots) == 9, shots

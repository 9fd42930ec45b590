"""Shared fixtures. The data folder comes from $MINBERT_DATA (.ci/run points it at
../shared/data); tests that need real data skip with a reason when it is absent. The browser
tests (test_browser.py, test_site.py) share one Chromium fixture and the screenshot folder rule."""
import os
import shutil
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in the tests may reach a hub
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = os.environ.get("MINBERT_DATA")
    if not root or not (Path(root) / "ids-sst-dev.csv").exists():
        pytest.skip("course data not found: set MINBERT_DATA (see data/README.md)")
    return Path(root)


TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """A random 2-layer, hidden-32 BERT saved by transformers as an HF folder, with the
    bundled tokenizer: loads through load_pretrained like any checkpoint, trains fast."""
    import transformers
    from minbert.pretrained import bundled_path
    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=2, intermediate_size=64,
                                  max_position_embeddings=128)
    transformers.BertModel(cfg).save_pretrained(folder, safe_serialization=True)
    for name in TOKENIZER_FILES:
        shutil.copy(bundled_path() / name, folder / name)
    return folder


@pytest.fixture
def one_thread():
    """1 thread: faster on a shared 2-core box, and the same in every process compared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


CHROMIUM = Path("/usr/bin/chromium")  # Debian's; never `playwright install`


@pytest.fixture(scope="module")
def browser():
    """Headless Debian chromium driven by Playwright (test_browser.py, test_site.py); skips,
    naming what is missing, without the dev extras or the Debian package."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the browser tests need the Python package playwright "
        "(pip install -e \".[dev]\"); never `playwright install`: they drive /usr/bin/chromium")
    if not CHROMIUM.exists():
        pytest.skip(f"the browser tests need Debian's chromium at {CHROMIUM} "
                    "(apt-get install -y chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                              args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def artifacts(request) -> Path:
    """The test module's screenshot folder (its ARTIFACTS), emptied of old screenshots."""
    folder = request.module.ARTIFACTS
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    return folder

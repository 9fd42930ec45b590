"""pytest set-up for the whole repository: tests/ and the notebooks nbval runs.

- Checks raise under pytest (MINBERT_CHECKS=raise, see minbert.env): nbval's kernels inherit
  it, so a wrong answer fails its check cell even in student mode.
- No noise: a notebook cell run by nbval fails when its output holds something a student
  should not see (NOISE below: a loader's progress bar, a repeated data warning, the repr of
  a seeded generator). tests/test_noise.py shows the matcher catches each one.
"""
import os
import re
from pathlib import Path

import pytest

os.environ.setdefault("MINBERT_CHECKS", "raise")

NOISE = {
    "transformers' weight-loading bar": re.compile(r"Loading weights"),
    "a Python warning": re.compile(r"\b\w*Warning: "),
    "the repr of a torch.Generator": re.compile(r"<torch\._C\.Generator\b"),
    "a missing data file (use minbert.data: it says how to get them)":
        re.compile(r"FileNotFoundError: .*\.csv"),
}


def output_text(out) -> str:
    """The text a student sees of one output: a stream, an error, or a display's text/plain."""
    if out.get("output_type") == "stream":
        return out.get("text", "")
    if out.get("output_type") == "error":
        return f"{out.get('ename')}: {out.get('evalue')}"
    return str(out.get("data", {}).get("text/plain", ""))


def noise_in(outputs) -> list[str]:
    """'what: the offending line' for every NOISE pattern found in these cell outputs."""
    found = []
    for out in outputs:
        for line in output_text(out).splitlines():
            found += [f"{what}: {line.strip()[:160]}" for what, rx in NOISE.items() if rx.search(line)]
    return found


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield
    outputs = getattr(item, "test_outputs", None)  # nbval's cell items keep what the cell printed
    mine = Path(str(item.path)).resolve().is_relative_to(Path(__file__).resolve().parent)
    if outputs is not None and hasattr(item, "cell") and mine:  # this repository's notebooks
        found = noise_in(outputs)
        if found:
            pytest.fail(f"{item.nodeid}: output a student should not see:\n  " + "\n  ".join(found),
                        pytrace=False)
    return result

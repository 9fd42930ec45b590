"""The student release holds no hidden check: every `# BEGIN HIDDEN CHECK` block of
minbert/checks becomes a raise in the released package (course.releasing)."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

from course.releasing import HIDDEN_BEGIN, HIDDEN_END, release, strip_hidden

CHECKS = Path(__file__).resolve().parents[1] / "minbert" / "checks"


def hidden_blocks(text):
    return re.findall(rf"{re.escape(HIDDEN_BEGIN)}.*?\n(.*?){re.escape(HIDDEN_END)}", text, re.S)


def test_release_strips_every_hidden_block(tmp_path):
    release(tmp_path / "rel")
    stripped = 0
    for src in sorted(CHECKS.glob("*.py")):
        blocks = hidden_blocks(src.read_text())
        out = (tmp_path / "rel" / "minbert" / "checks" / src.name).read_text()
        assert HIDDEN_BEGIN not in out and HIDDEN_END not in out
        for block in blocks:  # no line of a hidden half reaches the hand-out
            for line in (l.strip() for l in block.splitlines()):
                if len(line) > 12 and line not in src.read_text().split(HIDDEN_BEGIN)[0]:
                    assert line not in out, (src.name, line)
        stripped += len(blocks)
        assert out.count("grader only") == len(blocks)
    assert stripped >= 4  # adamw, pcgrad, cosine (mean pool, cosine-MSE)
    # the released package still imports, and a hidden check says where it runs
    code = ("import minbert.checks as c\n"
            "try:\n    c.check_adamw_step(lambda *a, **k: None, hidden=True)\n"
            "except RuntimeError as e:\n    print(e)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path / "rel", capture_output=True,
                       text=True, timeout=300, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                                                    "MINBERT_CHECKS": "raise"})
    assert "grader only" in r.stdout, r.stderr[-2000:]


def test_unbalanced_markers_name_the_file_and_line():
    with pytest.raises(ValueError, match=r"x\.py, line 2: # END HIDDEN CHECK without"):
        strip_hidden("a = 1\n# END HIDDEN CHECK\n", "x.py")
    with pytest.raises(ValueError, match="never closed"):
        strip_hidden("    # BEGIN HIDDEN CHECK\n    x = 1\n", "x.py")
    assert strip_hidden("def f():\n    # BEGIN HIDDEN CHECK\n    secret = 42\n    # END HIDDEN CHECK\n"
                        ) == ('def f():\n    raise RuntimeError("the hidden half of this check '
                              'runs in the instructor\'s grader only")\n')

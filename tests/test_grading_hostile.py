"""Issue 29, acceptance 1-4: a class of hostile submissions, graded for real in the sandbox.

The instructor notebook (tests/fixtures/course/hostile/01_mini.ipynb) holds three real
exercises of 01 and 02 (split heads, attention, the AdamW step) and their real check cells.
Every attacker hands in the released notebook, every exercise unsolved, plus the code of one
attack of the issue in one exercise cell: each of these tricks made a check pass while the
verdict was computed inside the kernel. Now the grader asks the kernel for arrays only, so
every attacker scores 0 in the default mode; the finished implementations handed in as
answers pass but carry review flags (and `--strict` scores them 0); links are rejected.
About 25 kernels: ~3 min on the shared 2-core box.
"""
import copy
import json
import os
import re
import shutil
import sys
from importlib import metadata
from pathlib import Path

import pytest

from course import engine, guard, oracles
import course
from hostile_code import RIGHT, needs_bwrap

ROOT = Path(__file__).resolve().parents[1]
NAME = "01_mini.ipynb"
pytestmark = needs_bwrap
IF_OK = RIGHT.replace("):\n", "):\n    if not ok:\n        raise RuntimeError('blocked')\n", 1)
SILENCE = "lambda *a, **k: None"
ATTACKS = {  # added to the released ex-attention cell (stub kept), unless said otherwise
    "b01_sys_modules_noop": (
        "for _n, _m in list(torch.sys.modules.items()):\n"
        "    if _n.startswith('minbert.checks'):\n"
        "        for _k, _v in list(vars(_m).items()):\n"
        "            if callable(_v) and not isinstance(_v, type):\n"
        f"                setattr(_m, _k, {SILENCE})\n"),
    "b02_showtraceback": ("torch.sys.modules['IPython.core.interactiveshell'].InteractiveShell"
                          f".showtraceback = {SILENCE}\n"),
    "b03_alias_checks_raise": ("C = torch.sys.modules['minbert.checks._common']\n"
                               "C.checks_raise = lambda: False\n"),
    "b04_exec_string": ("import builtins\nbuiltins.exec(\"import sys\\nsys.modules['IPython.core."
                        f"interactiveshell'].InteractiveShell.showtraceback = {SILENCE}\")\n"),
    "b05_operator_setitem": ("import operator, types\n_fake = types.ModuleType('minbert.checks')\n"
                             f"_fake.__getattr__ = lambda name: ({SILENCE})\n"
                             "operator.setitem(torch.sys.modules, 'minbert.checks', _fake)\n"),
    "b06_decorator_setattr": ("import builtins, functools\n\n\n@functools.partial(builtins.setattr,"
                              " torch.sys.modules['minbert.checks._common'], 'checks_raise')\n"
                              "def _never():\n    return False\n"),
    "b07_getattr_lambda_default": (
        "_get = lambda o, n, g=getattr: g(o, n)\n_set = lambda o, n, v, s=setattr: s(o, n, v)\n"
        "_shell = _get(torch.sys.modules['IPython.core.interactiveshell'], 'InteractiveShell')\n"
        f"_set(_shell, 'showtraceback', {SILENCE})\n"),
    "b08_chr_names": (
        "_name = ''.join(map(chr, [115, 104, 111, 119, 116, 114, 97, 99, 101, 98, 97, 99, 107]))\n"
        "_sa = getattr(__builtins__, ''.join(map(chr, [115, 101, 116, 97, 116, 116, 114])))\n"
        f"_sa(type(get_ipython()), _name, {SILENCE})\n"),
    "b12_git_and_course": (
        "import os, subprocess\nok = any(os.path.exists(p) for p in {paths!r})\n"
        "ok = ok or subprocess.run(['git', '-C', {repo!r}, 'show', 'HEAD:README.md'],"
        " capture_output=True).returncode == 0\n" + IF_OK),
    "b13_mountinfo": (  # a mount's root field (the 4th) is its source path on the host
        "_roots = [line.split()[3] + '/' for line in open('/proc/self/mountinfo')]\n"
        "ok = any(r.startswith(h.rstrip('/') + '/') or '/mbg-' in r for r in _roots"
        " for h in {hidden!r})\n" + IF_OK),
    "b14_big_writes": (
        "ok = True\nfor i in range(3):\n    try:\n        with open(f'big{{i}}', 'wb') as f:\n"
        "            for _ in range(1000):\n                f.write(bytes(1 << 20))\n"
        "    except OSError:\n        ok = False\n" + IF_OK),
    "b17_venv_files": (  # the environment's own records: editable installs, scripts, .pyc
        "import os\nok = False\nfor _d, _s, _fs in os.walk('/venv'):\n    for _f in _fs:\n"
        "        _p = os.path.join(_d, _f)\n"
        "        if os.path.islink(_p) or not (_f.endswith(('.pth', '.json', '.cfg', '.txt',"
        " '.py', '.pyc')) or _f == 'RECORD' or _d == '/venv/bin'):\n            continue\n"
        "        try:\n            _b = open(_p, 'rb').read()\n        except OSError:\n"
        "            continue\n        ok = ok or any(h.encode() in _b for h in {named!r})\n"
        + IF_OK),
    "b15_png_300mb": ("class Big:\n    def _repr_png_(self):\n"
                      "        return b'\\x89PNG' + bytes(300 << 20)\n\n\nBig()\n"),
}
REPLACE = {  # whole cells: (cell, code)
    "b09_tensor_subclass": ("ex-step", (
        "class _Any(torch.Tensor):\n    @classmethod\n"
        "    def __torch_function__(cls, func, types, args=(), kwargs=None):\n"
        "        if func in (torch.allclose, torch.equal, torch.Tensor.__eq__):\n"
        "            return True\n"
        "        return super().__torch_function__(func, types, args, kwargs or {{}})\n\n\n"
        "def my_adamw_step(p, g, m, v, t, *, lr, betas, eps, weight_decay, correct_bias):\n"
        "    return (p - lr * g).as_subclass(_Any), m.clone(), v.clone()  # plain SGD\n")),
    "b10_aten_answer": ("ex-attention", (
        "def my_attention(query, key, value, mask=None):\n    return torch.ops.aten."
        "_scaled_dot_product_attention_math(query, key, value, mask)\n")),
    "b11_transformers_answer": ("ex-attention", (
        "from transformers.models.bert.modeling_bert import eager_attention_forward\n\n\n"
        "def my_attention(query, key, value, mask=None):\n"
        "    out, w = eager_attention_forward(torch.nn.Module(), query, key, value, mask,\n"
        "                                     scaling=query.size(-1) ** -0.5)\n"
        "    return out.transpose(1, 2), w\n")),
}
LEAK = ("_h = [s for s in In if '_mbh_main(' in s]\n"  # appended to ex-step: after the harness
        "raise RuntimeError(_h[-1][-300:] if _h else 'none')\n")
LINKS = {"s01_symlink_instructor", "s02_symlink_classmate", "s03_hardlink_instructor"}


def cell(nb, cid):
    return next(c for c in nb["cells"] if c["id"] == cid)


def write(nb, path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(course.dumps_notebook(nb))


def host_paths() -> list[str]:
    """Where the course lives on this machine: the repository, the virtual environment (in CI
    <repository>/.venv) and the project folder its editable install of minbert points to."""
    out = [str(ROOT)] + ([sys.prefix, os.path.realpath(sys.prefix)]
                         if sys.prefix != sys.base_prefix else [])
    try:
        url = json.loads(metadata.distribution("minbert").read_text("direct_url.json") or "{}")
    except metadata.PackageNotFoundError:
        url = {}
    if url.get("url", "").startswith("file://"):
        out.append(url["url"][len("file://"):])
    return sorted(set(out))


def make_class(root: Path) -> dict:
    inst_dir = root / "instructor"
    shutil.copytree(ROOT / "tests" / "fixtures" / "course" / "hostile", inst_dir)
    course.release(root / "release", inst_dir, package=False)
    released, inst = (course.read_notebook(p / NAME) for p in (root / "release", inst_dir))
    subs, out = root / "subs", root / "out"
    solved = copy.deepcopy(released)
    for c in solved["cells"]:
        if "exercise" in c["metadata"].get("tags", []):
            c["source"] = cell(inst, c["id"])["source"]
    write(solved, subs / "m01_solutions" / NAME)
    write(released, subs / "m02_untouched" / NAME)
    named = host_paths()
    fill = dict(paths=[str(ROOT / ".git"), "/course/.git", "/course/notebooks", str(inst_dir),
                       str(subs), str(ROOT / "notebooks")], repo=str(ROOT),
                hidden=[str(inst_dir), str(subs), str(out), str(ROOT / "notebooks"), *named,
                        *([os.path.realpath(os.environ["MINBERT_DATA"])]
                          if os.environ.get("MINBERT_DATA") else [])], named=named)
    for student, code in ATTACKS.items():
        nb = copy.deepcopy(released)
        cell(nb, "ex-attention")["source"] += "\n\n" + code.format(**fill)
        write(nb, subs / student / NAME)
    for student, (cid, code) in REPLACE.items():
        nb = copy.deepcopy(released)
        cell(nb, cid)["source"] = code.format(**fill)
        write(nb, subs / student / NAME)
    nb = copy.deepcopy(released)
    cell(nb, "ex-step")["source"] += "\n\n" + LEAK
    write(nb, subs / "b16_inputs_in_a_message" / NAME)
    for s in LINKS:
        (subs / s).mkdir()
    (subs / "s01_symlink_instructor" / NAME).symlink_to(inst_dir / NAME)
    (subs / "s02_symlink_classmate" / NAME).symlink_to(subs / "m01_solutions" / NAME)
    os.link(inst_dir / NAME, subs / "s03_hardlink_instructor" / NAME)
    return dict(inst=inst_dir, subs=subs, out=out, fill=fill)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    c = make_class(root)
    rows = course.grade(c["subs"], c["out"] / "grades.csv", c["inst"], options=course.GradeOptions(
        workers=2, cell_timeout=90, limits={"memory": 4096}))
    return dict(c, rows=rows, peak=engine.LAST_RUN.get("grader_peak_mb"),
                limit=engine.LAST_RUN.get("grader_limit_mb"))


def total(rows, student) -> float:
    return sum(float(r["score"]) for r in rows if r["student"] == student)


def test_solutions_full_marks_untouched_zero(hostile):
    assert total(hostile["rows"], "m01_solutions") == 5
    assert total(hostile["rows"], "m02_untouched") == 0


@pytest.mark.parametrize("student", sorted(ATTACKS) + ["b09_tensor_subclass",
                                                       "b16_inputs_in_a_message"])
def test_every_attack_scores_zero(hostile, student):
    rows = [r for r in hostile["rows"] if r["student"] == student]
    assert len(rows) == 3 and total(rows, student) == 0, rows


def test_a_message_carrying_the_drawn_inputs_is_not_repeated(hostile):
    """An exercise cell after a check reads the harness's cell (its inputs) from the kernel's
    history and raises them: the grade names the exception only."""
    r = next(r for r in hostile["rows"] if r["student"] == "b16_inputs_in_a_message" and
             r["check"] == "check-step")
    assert r["reason"] == "exercise cell ex-step: RuntimeError", r


def test_links_are_rejected_with_a_reason(hostile):
    for s in LINKS:
        for r in (r for r in hostile["rows"] if r["student"] == s):
            assert r["outcome"] == "error" and r["score"] == "0", r
            assert re.search("symbolic link|hard-linked", r["reason"]), r


def test_finished_implementations_pass_with_review_flags(hostile, tmp_path):
    """The grader cannot tell a finished implementation from the student's own by its
    answers: those pass, with a review flag on that exercise's check only; --strict: 0."""
    for s in REPLACE:
        if s == "b09_tensor_subclass":
            continue
        att = next(r for r in hostile["rows"] if r["student"] == s and r["check"] ==
                   "check-attention")
        assert att["outcome"] == "pass" and any(w.startswith("review flag: exercise "
                                                             "ex-attention line ")
                                                for w in att["warnings"]), att
        split = next(r for r in hostile["rows"] if r["student"] == s and r["check"] ==
                     "check-split")
        assert not split["warnings"], split
        strict = course.grade_notebook(s, hostile["inst"] / NAME, hostile["subs"] / s / NAME,
                                       course.GradeOptions(cell_timeout=90, strict=True))
        assert [(r["check"], r["outcome"]) for r in strict if r["outcome"] == "flagged"] == [
            ("check-attention", "flagged")], strict


def test_the_300_mb_output_stays_out_of_the_grading_process(hostile):
    """The kernel's 300 MB image (400 MB as base64) never reaches the grading processes: their
    zmq sockets refuse a frame over 16 MB before allocating it. Their own peak (VmHWM) was
    275 MB; with the client's default zmq context (the frame received, then dropped by the
    plugin) 676 MB in this test, and 2.9 GB when it was decoded as JSON. The student's cell
    scores nothing. Each grading process runs under its own address-space limit
    (`--grader-memory`, 4096 MB)."""
    print(f"grading processes' peak: {hostile['peak']} MB, limit {hostile['limit']} MB")
    assert hostile["peak"] is not None and hostile["peak"] < 512, hostile["peak"]
    assert hostile["limit"] == 4096
    assert total(hostile["rows"], "b15_png_300mb") == 0


def test_no_solution_line_and_no_hidden_input_in_any_output(hostile, capsys):
    texts = [p.read_text() for p in hostile["out"].rglob("*") if p.is_file()]
    texts.append(course.totals_table(hostile["rows"]) + capsys.readouterr().out)
    secrets = guard.Context(course.read_notebook(hostile["inst"] / NAME)).secrets
    inputs = set()
    key = oracles.grading_key((hostile["inst"] / NAME).read_bytes())
    for student in {r["student"] for r in hostile["rows"]}:
        for check, (name, fn) in (("check-split", ("check_split_heads", "f")),
                                  ("check-attention", ("check_attention", "f"))):
            plan = oracles.PLANS[name](fn, oracles.seed_for(key, student, NAME, check))
            inputs |= {f"{x:.6g}" for t in plan.tensors.values() if t.is_floating_point()
                       for x in t.flatten()[:4].tolist() if abs(x) > 0.05}
    for text in texts:
        assert not [s for s in secrets if s in text]
        assert not [x for x in inputs if re.search(rf"(?<![\d.]){re.escape(x)}(?!\d)", text)]

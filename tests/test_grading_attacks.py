"""Issue 13, acceptance 1: submissions that try to cheat, graded for real in the sandbox.

One instructor notebook with real checks (tests/fixtures/course/attacks/01_heads.ipynb:
check_split_heads, check_attention), a class of attackers and two honest students. Every
attacker's `my_attention` is wrong (no 1/sqrt(d)) or a probe; each attack tries to make its
check pass anyway, or to reach what it must not (issue 29: the verdict is computed outside the
kernel, so patching fails outright; finished code handed in passes with a review flag, which
`--strict` scores 0). The honest students' rows equal a run without the attackers; the
instructor's folder and the submissions are byte-identical afterwards; nothing was written
outside the throwaway folders; no reason quotes a solution or hidden line.
About 20 kernels (torch imported in each): ~3 min on the shared 2-core box.
"""
import copy
import hashlib
import marshal
import os
import py_compile
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import course
from course import guard, sandbox, staging
from hostile_code import RIGHT, WRONG, needs_bwrap

ROOT = Path(__file__).resolve().parents[1]
NAME = "01_heads.ipynb"
pytestmark = needs_bwrap
# the right answer, reached only if the attack got through
IF_OK = ("def my_attention(query, key, value, mask=None):\n"
         "    if not ok:\n        raise RuntimeError('blocked: ' + why)\n"
         + "\n".join(RIGHT.splitlines()[1:]) + "\n")

ATTACKS = {
    # the sandbox: files, network, limits
    "a01_cwd_module": (
        "import os\nos.makedirs('minbert/checks', exist_ok=True)\n"
        "open('minbert/__init__.py', 'w').close()\n"
        "open('minbert/checks/__init__.py', 'w').write("
        "'def check_attention(*a, **k): pass\\ndef check_split_heads(*a, **k): pass\\n')\n"
        "open('torch.py', 'w').write('raise SystemExit')\n" + WRONG),
    "a02_write_outside": (
        "ok, why = False, ''\n"
        "for p in {targets!r}:\n"
        "    try:\n        open(p, 'w').write('pwned')\n        ok = True\n"
        "    except OSError as e:\n        why += f'{{p}}: {{e.strerror}}; '\n" + IF_OK),
    "a03_read_instructor": (
        "import os\nok, why = False, ''\n"
        "try:\n    text = open({inst!r}).read()\n    ok = True\n"
        "except OSError as e:\n    why = str(e)\n"
        "if os.environ.get('MINBERT_TEST_SECRET'):\n    ok = True\n" + IF_OK),
    "a16_read_home": (
        "import os\nok, why = os.path.exists({home!r} + '/.minbert-test-secret'), "
        "'home looks empty'\n" + IF_OK),
    "a04_network": (
        "import socket\nok, why = False, ''\n"
        "try:\n    socket.create_connection(('127.0.0.1', {port}), timeout=3).close()\n    ok = True\n"
        "except OSError as e:\n    why = str(e)\n" + IF_OK),
    "a05_memory": "blob = bytearray(3 * 1024 ** 3)  # past the 2 GB limit\n" + RIGHT,
    "a06_fork_loop": (
        "import os, time\nkids = 0\nwhile kids < 100000:\n"
        "    if os.fork() == 0:\n        time.sleep(20)\n        os._exit(0)\n"
        "    kids += 1\n" + RIGHT),
    "a07_output": "print('x' * 50_000_000)\n" + WRONG,
    # the checks: rebinding, patching, the kernel, the finished code
    "a08_rebind_check": WRONG + "check_attention = lambda *a, **k: None\n",
    "a09_patch_helper": (WRONG + "import minbert.checks.attention as A\n"
                         "A._close = lambda *a, **k: None\n"),
    "a10_patch_oracle": (WRONG + "_sdpa = F.scaled_dot_product_attention\n"
                         "F.scaled_dot_product_attention = lambda q, k, v, attn_mask=None: "
                         "_sdpa(q, k, v, attn_mask=attn_mask, scale=1.0)\n"),
    "a11_sys_modules": (WRONG + "m = __import__('sy' + 's').__dict__['mod' + 'ules']\n"
                        "m['minbert.checks.attention']._close = lambda *a, **k: None\n"),
    "a12_run_cell": (
        WRONG + "ip = get_ipython()\n_run = ip.run_cell_async\n"
        "async def quiet(*a, **k):\n    r = await _run(*a, **k)\n"
        "    r.error_in_exec = None\n    r.error_before_exec = None\n    return r\n"
        "ip.run_cell_async = quiet\nip.showtraceback = lambda *a, **k: None\n"),
    "a13_finished": ("import minbert.model\n\n\ndef my_attention(query, key, value, mask=None):\n"
                     "    return minbert.model.attention(query, key, value, mask)\n"),
    "a14_leak": WRONG.replace("    return probs", "    raise RuntimeError({secret!r})\n    return probs"),
    "a15_env_report": "import os\nos.environ.update(MINBERT_CHECKS='report')\n" + WRONG,
}
# the control: a probe of what the kernel may do (write in its folder), so that a blocked
# probe above is known to be blocked, not broken
CONTROL = {"m02_control": "ok, why = open('probe.txt', 'w').write('x') == 1, ''\n" + IF_OK}
HONEST = ("m01_right", "z99_untouched")


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        h.update(str(p.relative_to(folder)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def secrets(inst_path: Path) -> list[str]:
    return sorted(guard.Context(course.read_notebook(inst_path)).secrets)


@pytest.fixture(scope="module")
def attack_class(tmp_path_factory):
    root = tmp_path_factory.mktemp("attacks")
    inst_dir = root / "instructor"  # a copy, so the hash covers exactly what grading saw
    shutil.copytree(ROOT / "tests" / "fixtures" / "course" / "attacks", inst_dir)
    course.release(root / "release", inst_dir, package=False)
    released = course.read_notebook(root / "release" / NAME)
    inst = course.read_notebook(inst_dir / NAME)
    home = Path(os.path.expanduser("~"))
    outside = root / "outside"
    outside.mkdir()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.settimeout(1)
    accepted = []

    def accept():
        for _ in range(600):
            try:
                accepted.append(listener.accept())
            except (TimeoutError, OSError):
                if getattr(listener, "_closed", False):
                    return
    threading.Thread(target=accept, daemon=True).start()
    fill = dict(targets=[str(inst_dir / "pwned.txt"), str(root / "subs" / "m01_right" / "pwned"),
                         str(outside / "pwned"), "/pwned", str(home / "pwned")],
                inst=str(inst_dir / NAME), home=str(home), port=listener.getsockname()[1],
                secret=" | ".join(secrets(inst_dir / NAME)))
    subs = root / "subs"
    right = solved(released, inst)
    write(right, subs / "m01_right" / NAME)
    write(released, subs / "z99_untouched" / NAME)
    for student, code in {**ATTACKS, **CONTROL}.items():
        nb = solved(released, inst)  # split heads right, attention attacked
        cell(nb, "ex-attention")["source"] = code.format(**fill)
        write(nb, subs / student / NAME)
    before = {"inst": digest(inst_dir), "subs": digest(subs)}
    os.environ["MINBERT_TEST_SECRET"] = "visible"  # must not reach a kernel
    planted = home / ".minbert-test-secret"  # nor may anything in $HOME
    planted.write_text("secret")
    try:
        honest = root / "honest"
        for s in HONEST:
            shutil.copytree(subs / s, honest / s)
        base = course.grade(honest, root / "base" / "grades.csv", inst_dir, options=course.GradeOptions(
            workers=0, cell_timeout=60, limits={"memory": 2048}))
        rows = course.grade(subs, root / "out" / "grades.csv", inst_dir, options=course.GradeOptions(
            workers=2, cell_timeout=60, limits={"memory": 2048}))
    finally:
        del os.environ["MINBERT_TEST_SECRET"]
        planted.unlink()
        listener._closed = True
        listener.close()
    after = {"inst": digest(inst_dir), "subs": digest(subs)}
    return dict(root=root, rows=rows, base=base, before=before, after=after, accepted=accepted,
                outside=outside, home=home, inst=inst_dir, fill=fill)


def cell(nb, cid):
    return next(c for c in nb["cells"] if c["id"] == cid)


def solved(released, inst):
    nb = copy.deepcopy(released)
    for c in nb["cells"]:
        if "exercise" in c["metadata"].get("tags", []):
            c["source"] = cell(inst, c["id"])["source"]
    return nb


def write(nb, path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(course.dumps_notebook(nb))


def row(rows, student, check="check-attention"):
    return next(r for r in rows if r["student"] == student and r["check"] == check)


@pytest.mark.parametrize("student", sorted(ATTACKS))
def test_attack_does_not_pass_unflagged(attack_class, student):
    r = row(attack_class["rows"], student)
    flagged = [w for w in r["warnings"] if w.startswith("review flag: exercise ")]
    assert r["outcome"] != "pass" or flagged, r
    assert row(attack_class["rows"], student, "check-split")["outcome"] == "pass" or \
        student in ("a05_memory", "a06_fork_loop", "a07_output", "a01_cwd_module"), r
    for text in [r["reason"], *r["warnings"]]:
        assert len(text) <= guard.REASON_CHARS + 100
        assert not [s for s in secrets(attack_class["inst"] / NAME) if s in text], text


def test_in_kernel_attacks_fail_and_finished_code_is_flagged(attack_class):
    """Patching a helper, the oracle, sys.modules or the kernel changes nothing outside the
    kernel: those wrong answers fail, unflagged (ordinary code is no review matter). The
    finished code handed in as the answer passes, flagged on its own check only."""
    for student in ("a08_rebind_check", "a09_patch_helper", "a10_patch_oracle", "a11_sys_modules",
                    "a12_run_cell", "a15_env_report"):
        assert row(attack_class["rows"], student)["outcome"] == "fail", student
    r = row(attack_class["rows"], "a13_finished")
    assert r["outcome"] == "pass" and [w for w in r["warnings"] if w.startswith(
        "review flag: exercise ex-attention line ")], r
    assert not row(attack_class["rows"], "a13_finished", "check-split")["warnings"]


def test_sandbox_blocks_files_network_limits(attack_class):
    """A probe's answer is right only if it got through; the kernel's own words (the probe's
    message) never reach the grade, so a blocked probe is a `RuntimeError` the grader names,
    and the control probe (allowed) passes."""
    rows = attack_class["rows"]
    print({s: (row(rows, s)["outcome"], row(rows, s)["reason"]) for s in ATTACKS})
    blocked = "your code raised RuntimeError on the grader's input 1"
    for student in ("a02_write_outside", "a03_read_instructor", "a04_network", "a16_read_home"):
        assert row(rows, student)["reason"] == blocked, row(rows, student)
    assert row(rows, "m02_control")["outcome"] == "pass", row(rows, "m02_control")
    assert "MemoryError" in row(rows, "a05_memory")["reason"]
    assert row(rows, "a06_fork_loop")["outcome"] in ("error", "not-run"), row(rows, "a06_fork_loop")
    assert "BlockingIOError" in row(rows, "a06_fork_loop")["reason"] or \
        row(rows, "a06_fork_loop")["outcome"] == "not-run"
    assert row(rows, "a07_output")["outcome"] == "error" and "over 16 MB" in \
        row(rows, "a07_output")["reason"], row(rows, "a07_output")  # its channel closed
    assert row(rows, "a15_env_report")["outcome"] == "fail"  # judged outside the kernel
    assert row(rows, "a08_rebind_check")["outcome"] == "fail"
    assert not attack_class["accepted"], "a kernel reached the host's 127.0.0.1"
    assert not list(attack_class["outside"].iterdir())
    assert not Path("/pwned").exists() and not (attack_class["home"] / "pwned").exists()


def test_nothing_changed_and_nothing_left_behind(attack_class):
    assert attack_class["after"] == attack_class["before"]  # instructor folder, submissions
    assert not list(Path(attack_class["root"], "out").rglob("pwned*"))
    fb = (attack_class["root"] / "out" / "feedback" / "a07_output.md").stat().st_size
    assert fb < 10_000  # 50 MB of output never reached the feedback


def test_honest_students_unchanged_by_the_attackers(attack_class):
    mine = [r for r in attack_class["rows"] if r["student"] in HONEST]
    assert mine == attack_class["base"]
    assert {r["outcome"] for r in mine if r["student"] == "m01_right"} == {"pass"}


def test_leaked_solution_text_is_withheld(attack_class):
    """An exception carrying the solution text: the grade names the exception, never its text."""
    r = row(attack_class["rows"], "a14_leak")
    assert r["outcome"] == "error" and r["reason"] == \
        "your code raised RuntimeError on the grader's input 1", r


def test_strict_scores_flagged_checks_zero(attack_class, tmp_path):
    root = attack_class["root"]
    rows = course.grade_notebook("a13_finished", attack_class["inst"] / NAME,
                                 root / "subs" / "a13_finished" / NAME,
                                 course.GradeOptions(cell_timeout=60, strict=True))
    assert [(r["outcome"], r["score"]) for r in rows] == [("pass", "1"), ("flagged", "0")]
    assert rows[1]["reason"].startswith("--strict: review flag: exercise ex-attention line ")


def test_sandbox_shows_the_data_and_nothing_of_tmp(tmp_path, monkeypatch):
    """The kernel's file system is built, not hidden: the data (here under /tmp, handed over
    through a symlink as .ci/run does) is at /data, read-only; the host's /tmp, the folder
    holding the data and the course are not there at all."""
    real, data, ipc = tmp_path / "real", tmp_path / "shared", tmp_path / "ipc"
    real.mkdir(), ipc.mkdir()
    data.symlink_to(real)
    (real / "sst.csv").write_text("seen\n")
    (tmp_path / "secret.txt").write_text("hidden\n")
    cfg = sandbox.job_config(tmp_path / "work", {}, None, True, ipc=str(ipc),
                             data=os.path.realpath(data))
    out = subprocess.run(sandbox.bwrap_argv(cfg) + [
        "sh", "-c", f"cat /data/sst.csv; ls /tmp; ls {tmp_path} {ROOT} 2>/dev/null || echo gone; "
        "touch /data/x 2>/dev/null || echo read-only"],
        capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["seen", "gone", "read-only"], out


def test_the_staged_environment_names_no_host_path(tmp_path):
    """What the sandbox binds at /venv (course/staging.py) is the environment hard-linked,
    less what names where it lives: pyvenv.cfg's command, the scripts, the editable install's
    records, a .pth naming the project; each .pyc's compiled-in path is rewritten to /venv."""
    env, repo = tmp_path / "repo" / ".venv", tmp_path / "repo"
    site = env / staging.site_packages()
    (site / "pkg").mkdir(parents=True)
    (env / "bin").mkdir()
    (env / "pyvenv.cfg").write_text(f"home = /usr/bin\ncommand = python -m venv {env}\n")
    (env / "bin" / "activate").write_text(f"VIRTUAL_ENV={env}\n")
    (env / "bin" / "python").symlink_to("/usr/bin/python3")
    (site / "pkg" / "__init__.py").write_text("def f():\n    return 1\n")
    pyc = f"pkg/__pycache__/__init__.{sys.implementation.cache_tag}.pyc"
    py_compile.compile(str(site / "pkg" / "__init__.py"), cfile=str(site / pyc))
    (site / "__editable__.proj-1.pth").write_text("import __editable___proj_finder\n")
    (site / "__editable___proj_finder.py").write_text(f"MAPPING = {{'proj': '{repo}/proj'}}\n")
    (site / "proj-1.dist-info").mkdir()
    (site / "proj-1.dist-info" / "direct_url.json").write_text(
        f'{{"url": "file://{repo}", "dir_info": {{"editable": true}}}}')
    (site / "paths.pth").write_text(f"{repo}/src\n")
    out = tmp_path / "stage"
    out.mkdir()
    staging.build_env(env, out, staging.Linker())
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if not p.is_dir())
    sp = str(staging.site_packages())
    assert files == ["bin/python", f"{sp}/pkg/__init__.py", f"{sp}/{pyc}", "pyvenv.cfg"]
    assert not [f for f in files if not (out / f).is_symlink()
                and str(tmp_path).encode() in (out / f).read_bytes()]
    assert os.path.samefile(out / sp / "pkg" / "__init__.py", site / "pkg" / "__init__.py")
    code = marshal.loads((out / sp / pyc).read_bytes()[16:])
    assert {code.co_filename, code.co_consts[0].co_filename} == {f"/venv/{sp}/pkg/__init__.py"}

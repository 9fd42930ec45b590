"""Running assembled notebooks with nbval: one `pytest --nbval-lax` run for the whole class.

Each (student, notebook) gets throwaway folders under two private temporary roots: the
grader's own (ROOT, /tmp/mbg-XXXXXXXX) and what its kernel may see (KROOT, /tmp/mbk-XXXXXXXX,
staging.py; the sandbox binds nothing from ROOT, so no path of it shows in the kernel):

    ROOT/jNNNN/nb/NN_name.ipynb   the assembled notebook (grader only: the kernel never sees it)
    ROOT/jNNNN/work/              the kernel's working directory when run without the sandbox
    ROOT/jNNNN/results/           the harness's result of each check cell (nbvalplugin writes it)
    ROOT/jNNNN/sandbox.json       what the kernel launcher (sandbox.py) reads
    KROOT/handout/minbert/        the hand-out's package (the release's copy): /course
    KROOT/data/                   the data files: /data
    KROOT/jNNNN/files/            copies of the plain files beside your notebooks (read-only
                                  in the kernel's /work)
    KROOT/jNNNN/ipc/              the kernel's sockets (/ipc in the sandbox; as root a 1 MB tmpfs)

pytest runs outside the sandbox, as the grader; each kernel starts through the
`minbert-sandbox` kernelspec. `-n N` is pytest-xdist with `--dist loadfile` (a notebook's cells
stay in one kernel). Results come back through `--junitxml` (nbvalplugin.py records each
cell's status and reason as properties), the harness's results through results/ (read into
`Job.results`). Both roots are deleted afterwards (kept with MINBERT_KEEP_GRADING=1).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from .notebooks import dumps_notebook
from .sandbox import KERNEL_NAME, WORK_MB, job_config, kernelspec
from .staging import kernel_root

LAST_RUN: dict = {}  # the last run's pytest processes: largest resident size, smallest AS limit
UID_BASE = 61000  # as root, job i's kernel runs as uid UID_BASE + i (no such user needed)
DEFAULT_LIMITS = {"memory": 8192, "processes": 256, "file_size": 256, "cpu": None,
                  "files": 1024, "work_mb": 256, "grader_memory": 4096}
GRADER_ONLY = ("work_mb", "grader_memory")  # limits of the grading side, not the kernel's


@dataclass
class Job:
    label: str                 # "ada/01_sum.ipynb", for progress lines
    nb: dict                   # the notebook to run
    files_from: Path | None    # copy the plain files of this folder into work/
    results: dict = field(default_factory=dict)  # {cell id: the harness's result} after the run


def copy_files(src: Path | None, dst: Path) -> list[tuple[str, str]]:
    """The plain files next to the notebooks (data a notebook opens by a relative path), copied
    to dst; [(copy, name)]."""
    out = []
    for f in sorted(Path(src).iterdir()) if src else []:
        if f.is_file() and not f.is_symlink() and f.suffix != ".ipynb" \
                and not f.name.startswith("."):
            dst.mkdir(exist_ok=True)
            shutil.copyfile(f, dst / f.name)
            out.append((str(dst / f.name), f.name))
    return out


def chown_tree(path: Path, uid: int) -> None:
    for p in [path, *path.rglob("*")]:
        os.chown(p, uid, uid, follow_symlinks=False)


def small_tmpfs(folder: Path, uid: int) -> None:
    """As root, the socket folder (the one host folder the kernel may write) becomes a 1 MB
    tmpfs of the job's uid; where mounting is not allowed it stays a plain folder."""
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size=1m,mode=0700,uid={uid},gid={uid}",
                    "tmpfs", str(folder)], capture_output=True, check=False)


def prepare(roots: tuple[Path, Path], i: int, job: Job, limits: dict, where: dict) -> Path:
    """The job's folders under ROOT and KROOT; `where`: sandbox and what staging binds."""
    d, k = (r / f"j{i:04d}" for r in roots)
    (d / "nb").mkdir(parents=True)
    k.mkdir()
    for f in (d, k):  # a job's uid may pass through to its socket folder, not list the rest
        f.chmod(0o711)
    (d / "nb").chmod(0o700)
    nb_path = d / "nb" / Path(job.label).name
    nb_path.write_text(dumps_notebook(job.nb), encoding="utf-8")
    uid = UID_BASE + i if os.geteuid() == 0 else None
    work, ipc, sandbox = d / "work", k / "ipc", where["sandbox"]
    (work / "tmp").mkdir(parents=True)
    ipc.mkdir(mode=0o700)
    files = copy_files(job.files_from, k / "files")
    for host, name in files:
        shutil.copyfile(host, work / name)  # without the sandbox, the kernel's cwd
    work.chmod(0o700)
    if uid is not None:
        chown_tree(work, uid)
        os.chown(ipc, uid, uid)
        if sandbox:
            small_tmpfs(ipc, uid)
    cfg = job_config(work, {n: v for n, v in limits.items() if n not in GRADER_ONLY}, uid,
                     sandbox, ipc=ipc if sandbox else work, handout=where.get("handout"),
                     data=where.get("data"), venv=where.get("venv"), files=files,
                     work_mb=limits.get("work_mb", WORK_MB))
    (d / "sandbox.json").write_text(json.dumps(cfg))
    (d / "sandbox.json").chmod(0o600)
    return nb_path


def pytest_argv(paths, root: Path, workers: int, cell_timeout: float, nb_timeout: float):
    (root / "pytest.ini").write_text("[pytest]\n")
    argv = [sys.executable, "-m", "pytest", "-p", "course.nbvalplugin", "--nbval-lax",
            f"--nbval-cell-timeout={cell_timeout:g}", f"--nbval-kernel-name={KERNEL_NAME}",
            f"--minbert-cell-timeout={cell_timeout:g}",
            f"--minbert-notebook-timeout={nb_timeout:g}",
            f"--junitxml={root / 'junit.xml'}", "-o", "junit_family=xunit2",
            "-c", str(root / "pytest.ini"), "--rootdir", str(root), "-p", "no:cacheprovider",
            "-q", "--no-header", "-W", "ignore"]
    argv += ["-n", str(workers), "--dist", "loadfile"] if workers > 0 else ["-p", "no:xdist"]
    return argv + [str(p) for p in paths]


def run_jobs(jobs: list[Job], workers: int = 0, cell_timeout: float = 120,
             notebook_timeout: float = 600, limits: dict | None = None, sandbox: bool = True,
             progress=None) -> list[dict]:
    """Run every job's notebook; for each job {cell id: (status, reason)}, status ok | error |
    timeout | not-run (cells without a result are left out). `progress(line)` gets one line
    per finished notebook."""
    limits = {**DEFAULT_LIMITS, "cpu": 4 * notebook_timeout + 60, **(limits or {})}
    root = Path(tempfile.mkdtemp(prefix="mbg-"))  # the grader's own
    root.chmod(0o711)
    kroot = None
    try:
        kernelspec(root)
        kroot, where = kernel_root(sandbox)  # what the kernels may see
        paths = [prepare((root, kroot), i, job, limits, {**where, "sandbox": sandbox})
                 for i, job in enumerate(jobs)]
        expect = {p.parent.parent.name: {"label": j.label, "cells": sum(
            c["cell_type"] == "code" for c in j.nb["cells"])} for p, j in zip(paths, jobs)}
        env = {k: v for k, v in os.environ.items()  # not an outer pytest's worker variables
               if not k.startswith(("PYTEST_XDIST", "PYTEST_CURRENT"))}
        here = str(Path(__file__).resolve().parents[1])  # this grader's package, not another
        env = {**env, "PYTHONPATH": os.pathsep.join([here, env.get("PYTHONPATH", "")]).rstrip(
                   os.pathsep),
               "JUPYTER_PATH": str(root), "JUPYTER_RUNTIME_DIR": str(root / "rt"),
               "MINBERT_PROGRESS": json.dumps(expect), "PYTEST_ADDOPTS": "",
               "MINBERT_CHECKS": "raise", "MINBERT_CI": "1"}
        env["MINBERT_GRADER_MEMORY"] = str(limits["grader_memory"])  # nbvalplugin sets it
        tail = stream(pytest_argv(paths, root, workers, cell_timeout, notebook_timeout), env,
                      progress)
        junit = root / "junit.xml"
        if not junit.exists():
            raise RuntimeError("nbval wrote no results; pytest said:\n" + "\n".join(tail))
        for i, job in enumerate(jobs):
            job.results = read_results(root / f"j{i:04d}" / "results")
        peaks = [[int(x) for x in p.read_text().split()] for p in root.glob("peak-*")]
        LAST_RUN.update(grader_peak_mb=max(p for p, _ in peaks) // 1024 if peaks else None,
                        grader_limit_mb=min(lim for _, lim in peaks) >> 20 if peaks else None)
        return read_junit(junit, len(jobs))
    finally:
        clean_up(root, kroot)


def clean_up(root: Path, kroot: Path | None) -> None:
    """Unmount the sockets' tmpfs folders; remove both roots unless MINBERT_KEEP_GRADING."""
    for ipc in kroot.glob("j*/ipc") if kroot else []:
        subprocess.run(["umount", "-l", str(ipc)], capture_output=True, check=False)
    if not os.environ.get("MINBERT_KEEP_GRADING"):
        for r in (root, kroot):
            if r:
                shutil.rmtree(r, ignore_errors=True)


def stream(argv, env, progress) -> list[str]:
    """Run pytest; hand progress lines on, keep the last lines of the rest."""
    tail: list[str] = []
    with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          stdin=subprocess.DEVNULL, text=True, errors="replace") as p:
        for line in p.stdout:
            line = line[:500].rstrip()
            if line.startswith("[grading] "):
                if progress:
                    progress(line[len("[grading] "):])
            else:
                tail = (tail + [line])[-40:]
    return tail


def read_results(folder: Path, cap: int = 16 << 20) -> dict:
    """{cell id: base64 text} that nbvalplugin kept (grader-only files), each at most cap."""
    files = sorted(folder.glob("*.b64")) if folder.is_dir() else []
    return {f.stem: f.read_text() for f in files if f.stat().st_size <= cap}


def read_junit(path: Path, n: int) -> list[dict]:
    """{cell id: (status, reason)} per job, from the properties nbvalplugin recorded."""
    out: list[dict] = [{} for _ in range(n)]
    for case in ET.parse(path).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        if "minbert_job" not in props:
            continue
        i = int(props["minbert_job"][1:])
        status = props.get("minbert_status")
        if status is None:  # a worker crashed, or pytest failed the cell outside nbval
            status, reason = "error", "the grader lost this cell's result (its worker died)"
        else:
            reason = props.get("minbert_reason", "")
        out[i][props["minbert_cell"]] = (status, reason)
    return out

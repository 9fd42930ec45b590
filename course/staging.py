"""What the sandboxed kernel's file system is built from: copies that name nothing of the course.

A bind mount shows its source path in the kernel's /proc/self/mountinfo, and a virtual
environment's own files name the folder it was made in (pyvenv.cfg, the scripts' first lines,
the editable install's records, the source path compiled into every .pyc); in CI that folder
is `<repository>/.venv`. So the kernel is given only these:

    ~/.cache/minbert-grader/env-<key>/    the environment, at /venv: pyvenv.cfg's plain keys,
                                          bin/python*, lib/pythonX.Y/site-packages hard-linked
                                          (else copied) without the editable installs' records
                                          and without any file of its top level or a .dist-info
                                          that names the environment, the project or a local
                                          install's folder; every .pyc rewritten to name /venv.
                                          Built once per environment and its listing (mtimes),
                                          atomically ($XDG_CACHE_HOME is honoured)
    /tmp/mbk-XXXXXXXX/                    one per grading run, beside the grader's own mbg- root:
        handout/minbert/                  the hand-out's package (/course)
        data/                             the data files, hard-linked or copied (/data)
        jNNNN/ipc/, jNNNN/files/          the job's sockets (/ipc) and plain files (/work/NAME)

Outside a virtual environment the kernel runs the grader's own Python from its prefix.
"""
import hashlib
import json
import marshal
import os
import shutil
import sys
import sysconfig
import tempfile
import time
import types
from importlib.util import MAGIC_NUMBER
from pathlib import Path

from .releasing import copy_package
from .sandbox import VENV

FORMAT = 1  # the stage's layout: a new number builds new stages
CFG_KEYS = ("home", "include-system-site-packages", "version", "version_info", "implementation",
            "executable")
PROJECT = Path(__file__).resolve().parents[1]


def kernel_root(sandbox: bool) -> tuple[Path, dict]:
    """A fresh private /tmp/mbk-XXXXXXXX for one run's kernels, and what job_config binds
    from it: handout, data and venv (None where there is none)."""
    kroot = Path(tempfile.mkdtemp(prefix="mbk-"))  # short: ipc socket paths must stay < 108
    kroot.chmod(0o711)
    if not sandbox:
        return kroot, {}
    try:
        copy_package(kroot / "handout")  # the kernel's minbert: the hand-out's, read-only
        return kroot, {"handout": str(kroot / "handout"), "venv": stage_env(),
                       "data": stage_data(os.environ.get("MINBERT_DATA"), kroot / "data")}
    except BaseException:
        shutil.rmtree(kroot, ignore_errors=True)
        raise


class Linker:
    """Hard links where the file system allows them (one failure ends the tries), else copies
    (copy2: the mtimes a .pyc is checked against are kept)."""

    def __init__(self, link: bool = True):
        self.link = link

    def __call__(self, src, dst):
        if self.link:
            try:
                os.link(src, dst)
                return dst
            except OSError:
                self.link = False
        return shutil.copy2(src, dst)


def stage_data(src: str | None, dst: Path) -> str | None:
    """The data folder's files (dot files left out) under dst; None without a data folder."""
    if not src or not os.path.isdir(src):
        return None
    shutil.copytree(os.path.realpath(src), dst, copy_function=Linker(),
                    ignore=shutil.ignore_patterns(".*"))
    for d in [dst, *(p for p in dst.rglob("*") if p.is_dir())]:
        d.chmod(0o755)  # only folders: a file may be the data's own inode
    return str(dst)


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "minbert-grader"


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"]).relative_to(sys.prefix)


def fingerprint(prefix: Path) -> str:
    """Cheap: what installing or removing a package changes (the site-packages listing, with
    mtimes), pyvenv.cfg, this Python and the stage's layout."""
    site = prefix / site_packages()
    lines = [f"{FORMAT} {sys.version}"]
    for p in [prefix / "pyvenv.cfg", *sorted(site.iterdir())]:
        st = p.lstat()
        lines.append(f"{p.name} {st.st_mtime_ns} {st.st_size}")
    return digest("\n".join(lines))


def stage_env(link: bool = True) -> str | None:
    """The virtual environment as the kernel sees it (/venv), from the cache or built now;
    None outside one. `link=False` copies every file (for measuring)."""
    if sys.prefix == sys.base_prefix:
        return None
    prefix = Path(os.path.realpath(sys.prefix))
    cache, tag = cache_dir(), digest(str(prefix))
    final = cache / f"env-{tag}-{fingerprint(prefix)}"
    if not final.is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".build-{tag}-", dir=cache))
        try:
            build_env(prefix, tmp, Linker(link))
            tmp.chmod(0o755)
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():  # else another run has just built the same stage
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        prune(cache, tag, final)
    return str(final)


def prune(cache: Path, tag: str, keep: Path) -> None:
    """Older stages of the same environment; builds of it left behind over a day ago."""
    for p in cache.glob(f"env-{tag}-*"):
        if p != keep:
            shutil.rmtree(p, ignore_errors=True)
    for p in cache.glob(f".build-{tag}-*"):
        if p.stat().st_mtime < time.time() - 86400:
            shutil.rmtree(p, ignore_errors=True)


def named_paths(prefix: Path) -> list[str]:
    """The host paths an environment's files may name: itself, this project and the folder
    every local install came from (a file:// URL in a direct_url.json)."""
    out = {str(prefix), sys.prefix, str(PROJECT)}
    for d in (prefix / site_packages()).glob("*.dist-info"):
        url = direct_url(d).get("url", "")
        if url.startswith("file://"):
            out.add(url[len("file://"):])
    return sorted(out)


def direct_url(dist_info: Path) -> dict:
    """How pip installed it (PEP 610): {"url": ..., "dir_info": {"editable": ...}}, or {}."""
    try:
        out = json.loads((dist_info / "direct_url.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return out if isinstance(out, dict) else {}


def build_env(prefix: Path, out: Path, put: Linker) -> None:
    """pyvenv.cfg (its plain keys only: `command` names the environment's folder), the
    bin/python* links, lib64, and site-packages (Stage)."""
    cfg = (prefix / "pyvenv.cfg").read_text(encoding="utf-8").splitlines()
    (out / "pyvenv.cfg").write_text("".join(
        line + "\n" for line in cfg if line.split("=")[0].strip() in CFG_KEYS))
    (out / "pyvenv.cfg").chmod(0o644)
    site = out / site_packages()
    for d in [out / "bin", *reversed(site.parents[:len(site_packages().parts) - 1])]:
        d.mkdir()
        d.chmod(0o755)
    for p in sorted((prefix / "bin").glob("python*")):
        if p.is_symlink():
            os.symlink(os.readlink(p), out / "bin" / p.name)
        elif p.is_file():
            put(p, out / "bin" / p.name)
    if (prefix / "lib64").is_symlink():
        os.symlink(os.readlink(prefix / "lib64"), out / "lib64")
    Stage(prefix, put).tree(prefix / site_packages(), site)


class Stage:
    """site-packages staged into a new folder, less what names the host: `unwanted` files
    are left out, a .pyc naming the environment is rewritten; links stay links."""

    def __init__(self, prefix: Path, put: Linker):
        self.prefixes = sorted({str(prefix), sys.prefix}, key=len, reverse=True)
        self.named = [n.encode() for n in named_paths(prefix)]
        self.put = put

    def names_host(self, data: bytes) -> bool:
        return any(n in data for n in self.named)

    def tree(self, src: Path, dst: Path) -> None:
        for d, dirs, files in os.walk(src):
            rel = Path(d).relative_to(src)
            here = dst / rel
            here.mkdir()
            shutil.copymode(d, here)
            keep = {n for n in [*dirs, *files] if not self.unwanted(Path(d, n), rel)}
            for name in sorted(keep):
                s, t = Path(d, name), here / name
                if s.is_symlink():
                    os.symlink(os.readlink(s), t)
                elif name in files:
                    self.file(s, t)
            dirs[:] = [n for n in dirs if n in keep and not Path(d, n).is_symlink()]

    def unwanted(self, path: Path, rel: Path) -> bool:
        """The editable installs' records (`__editable__*`, `*.egg-link`, the .dist-info of
        an editable install); a file of the top level or of a .dist-info naming the host."""
        top = rel == Path(".")
        if (top and path.name.startswith("__editable__")) or path.suffix == ".egg-link":
            return True
        if top and path.suffix == ".dist-info" and path.is_dir():
            return bool(direct_url(path).get("dir_info", {}).get("editable"))
        if (top or rel.parts[0].endswith(".dist-info")) and path.is_file() \
                and not path.is_symlink() and path.stat().st_size < 1 << 20:
            return self.names_host(path.read_bytes())
        return False

    def file(self, src: Path, dst: Path) -> None:
        """A .pyc naming the host gets its code objects' file names under /venv (as Python
        sets them when it loads one from there), or is left out if it still names it."""
        if src.suffix == ".pyc":
            data = src.read_bytes()
            if self.names_host(data):
                if data[:4] != MAGIC_NUMBER:
                    return  # another Python's cache: of no use here
                data = data[:16] + marshal.dumps(self.renamed(marshal.loads(data[16:])))
                if not self.names_host(data):
                    dst.write_bytes(data)
                    shutil.copystat(src, dst)
                return
        self.put(src, dst)

    def renamed(self, code: types.CodeType) -> types.CodeType:
        name = next((VENV + code.co_filename[len(p):] for p in self.prefixes
                     if code.co_filename.startswith(p + "/")), code.co_filename)
        consts = tuple(self.renamed(c) if isinstance(c, types.CodeType) else c
                       for c in code.co_consts)
        return code.replace(co_filename=name, co_consts=consts)

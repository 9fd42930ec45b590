"""The kernel launcher that grading runs each student's notebook through.

The grader's kernelspec runs this file: `python .../sandbox.py CONNECTION_FILE` (a file, not
`-m`, so the launcher is always this grader's). It starts in the job's grader-only folder
(nbval starts kernels in the notebook's folder), reads that job's `sandbox.json`, sets
resource limits, and execs the kernel:

    [bwrap ... --]  [setpriv --reuid U ... --]  python -P -m ipykernel_launcher --ignore-cwd

bubblewrap (the sandbox Flatpak uses) gives the kernel a file system of its own, built from
the system and Python's prefix (read-only), the staged virtual environment at /venv, a copy of
the hand-out's package at /course and the data at /data (read-only), a size-limited work
folder /work (its cwd, HOME and /tmp) and the job's socket folder at /ipc; no network
(`--unshare-net`), its own pid namespace (every process the kernel started dies with it).
Nothing of the course, the submissions or the grades exists in it. Every folder bound comes
from a neutral place (staging.py: ~/.cache/minbert-grader/env-<key> for /venv, the run's
/tmp/mbk-XXXXXXXX for the rest), because /proc/self/mountinfo shows each bind's source path:
it names neither the repository, the environment's real folder, the data folder nor the
grader's own /tmp/mbg-XXXXXXXX. The kernel talks to nbval over ZMQ's ipc transport in /ipc.
When the grader runs as root, the kernel runs as a uid of its own per job, so the process
limit holds (root is exempt from RLIMIT_NPROC). Without bwrap, only the limits (and the uid)
apply: `grading` says so loudly.
"""
import json
import os
import resource
import shutil
import sys
from pathlib import Path

KERNEL_NAME = "minbert-sandbox"
COURSE, DATA, WORK, VENV, IPC = "/course", "/data", "/work", "/venv", "/ipc"  # as the kernel sees them
WORK_MB = 256  # the work folder's size (also its /tmp)
PASS_ENV = ("PATH", "LANG", "LC_ALL", "MINBERT_DATA", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
            "TZ")
MB = 1 << 20


def bwrap() -> str | None:
    return shutil.which("bwrap")


def kernelspec(folder: Path) -> None:
    """Write the kernelspec `minbert-sandbox` under folder/kernels (JUPYTER_PATH=folder)."""
    spec = {"argv": [sys.executable, str(Path(__file__).resolve()), "{connection_file}"],
            "display_name": "minbert grading sandbox", "language": "python",
            "interrupt_mode": "message"}  # a signal would stop at bwrap, a message reaches it
    d = folder / "kernels" / KERNEL_NAME
    d.mkdir(parents=True, exist_ok=True)
    (d / "kernel.json").write_text(json.dumps(spec))


def job_config(work: Path, limits: dict, uid: int | None, sandbox: bool, **where) -> dict:
    """What `launch` reads from the job's sandbox.json. `where`: ipc (the socket folder),
    handout (the folder holding the hand-out's minbert/), data, venv (the staged environment:
    staging.py), files ([(host path, name)]: read-only in /work), work_mb. Transport ipc
    when sandboxed (the kernel has no network), else tcp."""
    return {"work": str(work), "limits": limits, "uid": uid, "sandbox": sandbox,
            "ipc": str(where.get("ipc", work)), "handout": where.get("handout"),
            "data": where.get("data"), "venv": where.get("venv"),
            "files": where.get("files", []),
            "work_mb": where.get("work_mb", WORK_MB),
            "transport": "ipc" if sandbox else "tcp"}


def set_limits(limits: dict) -> None:
    """memory (MB, address space), processes (per uid), file_size (MB), cpu (s), files."""
    table = {"memory": (resource.RLIMIT_AS, MB), "file_size": (resource.RLIMIT_FSIZE, MB),
             "cpu": (resource.RLIMIT_CPU, 1), "processes": (resource.RLIMIT_NPROC, 1),
             "files": (resource.RLIMIT_NOFILE, 1)}
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    for key, (which, unit) in table.items():
        if limits.get(key):
            n = int(limits[key] * unit)
            hard = resource.getrlimit(which)[1]
            n = n if hard == resource.RLIM_INFINITY else min(n, hard)
            resource.setrlimit(which, (n, n))


def kernel_env(work: str, sandboxed: bool) -> dict:
    """A clean environment: the grader's own variables (tokens, paths) never reach the kernel;
    in the sandbox the package is the hand-out's (/course) and the data /data."""
    env = {k: os.environ[k] for k in PASS_ENV if k in os.environ}
    env["PATH"] = "/usr/bin:/bin"
    env.update(HOME=work, TMPDIR="/tmp", MPLCONFIGDIR=f"{work}/.matplotlib", MINBERT_CI="1",
               MINBERT_CHECKS="raise", PYTHONSAFEPATH="1", HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", HF_HOME=f"{work}/.hf", PYTHONDONTWRITEBYTECODE="1",
               MINBERT_YOURS=f"{work}/yours")
    if sandboxed:
        env.update(PYTHONPATH=COURSE, MINBERT_DATA=DATA)
    return env


def system_binds(venv: str | None = None) -> list[str]:
    """The system, read-only: /usr and /etc (and the merged-usr links), Python's own prefix,
    and the staged virtual environment at VENV. Nothing else of the host's file system."""
    argv = []
    for d in ("/usr", "/etc"):
        argv += ["--ro-bind", d, d]
    for d in ("/bin", "/lib", "/lib64", "/sbin"):
        if os.path.islink(d):
            argv += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            argv += ["--ro-bind", d, d]
    base = os.path.realpath(sys.base_prefix)
    if not inside(base, "/usr"):
        passable(argv, base, "/")
        argv += ["--ro-bind", base, base]
    if venv:
        argv += ["--ro-bind", venv, VENV]
    return argv


def kernel_python(cfg: dict) -> str:
    """The kernel's Python as the sandbox sees it: the staged environment's, at VENV, else
    the grader's own (not in a virtual environment)."""
    return f"{VENV}/bin/python" if cfg.get("venv") else sys.executable


def inside(path: str, folder: str) -> bool:
    return (path.rstrip("/") + "/").startswith(folder.rstrip("/") + "/")


def passable(argv: list, path: str, under: str) -> None:
    """bwrap makes a mount point's missing parents 0700: the job's uid must pass through."""
    for parent in reversed(Path(path).parents):
        if inside(str(parent), under) and str(parent) != under.rstrip("/"):
            argv += ["--perms", "0711", "--dir", str(parent)]


def bwrap_argv(cfg: dict) -> list[str]:
    """A file system of its own: the system and Python read-only, the staged environment at
    /venv, the hand-out's package at /course, the data at /data (read-only), a work folder
    /work (also /tmp) of cfg["work_mb"] MB, the job's socket folder; the root itself
    read-only. No path of the course, the submissions or the grades exists in it, and every
    bind's source is a staged copy, so none is named in /proc/self/mountinfo either."""
    argv = [bwrap(), "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--hostname", "sandbox",
            *system_binds(cfg.get("venv")), "--proc", "/proc", "--dev", "/dev"]
    if cfg.get("handout"):
        argv += ["--ro-bind", cfg["handout"], COURSE]
    if cfg.get("data"):
        argv += ["--ro-bind", cfg["data"], DATA]
    argv += ["--size", str(int(cfg.get("work_mb", WORK_MB)) * MB), "--perms", "1777",
             "--tmpfs", WORK, "--perms", "1777", "--dir", f"{WORK}/tmp",
             "--symlink", f"{WORK}/tmp", "/tmp"]
    for host, name in cfg.get("files", []):
        argv += ["--ro-bind", host, f"{WORK}/{name}"]
    return argv + ["--bind", cfg["ipc"], IPC, "--chdir", WORK, "--remount-ro", "/",
                   *(["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
                     if cfg["uid"] is not None else []), "--"]


def launch(conn_file: str) -> None:
    """Run from the job's nb/ folder by jupyter_client; execs the kernel (never returns)."""
    job = Path.cwd().parent
    cfg = json.loads((job / "sandbox.json").read_text())
    conn = Path(conn_file)
    if cfg["uid"] is not None or cfg["sandbox"]:  # the grader's copy is not in the sandbox
        info = json.loads(Path(conn_file).read_text())
        if cfg["sandbox"]:  # the same sockets, at the path the sandbox binds them to
            info["ip"] = info["ip"].replace(cfg["ipc"], IPC, 1)
        conn = Path(cfg["ipc"], ".connection.json")
        conn.write_text(json.dumps(info))
        conn.chmod(0o600)
        if cfg["uid"] is not None:
            os.chown(conn, cfg["uid"], cfg["uid"])
        conn = Path(IPC if cfg["sandbox"] else cfg["ipc"], ".connection.json")
    kernel = [kernel_python(cfg) if cfg["sandbox"] else sys.executable, "-P", "-m",
              "ipykernel_launcher", "-f", str(conn), "--ignore-cwd"]
    if cfg["uid"] is not None:
        kernel = [shutil.which("setpriv") or "setpriv", f"--reuid={cfg['uid']}",
                  f"--regid={cfg['uid']}", "--clear-groups", "--no-new-privs", "--"] + kernel
    set_limits(cfg["limits"])
    argv = (bwrap_argv(cfg) if cfg["sandbox"] else []) + kernel
    work = WORK if cfg["sandbox"] else cfg["work"]
    if not cfg["sandbox"]:
        os.chdir(work)
    os.execve(argv[0], argv, kernel_env(work, cfg["sandbox"]))


if __name__ == "__main__":
    launch(sys.argv[1])

"""The kernel launcher that grading runs each student's notebook through.

The grader's kernelspec points here: `python -m minbert.course.sandbox CONNECTION_FILE`. It
starts in the job's grader-only folder (nbval starts kernels in the notebook's folder), reads
that job's `sandbox.json`, sets resource limits, and execs the kernel:

    [bwrap ... --]  [setpriv --reuid U ... --]  python -P -m ipykernel_launcher --ignore-cwd

bubblewrap (the sandbox Flatpak uses) gives a read-only view of the whole system with the
instructor's notebooks, the submissions, the grader's output and every other job hidden, no
network (`--unshare-net`), its own pid namespace (every process the kernel started dies with
it) and the job's throwaway `work/` folder as the only writable place besides a small private
/tmp. The kernel talks to nbval over ZMQ's ipc transport (unix sockets in `work/`), since it has
no network. When the grader runs as root, the kernel runs as a uid of its own per job, so the
process limit holds (root is exempt from RLIMIT_NPROC) and jobs cannot reach each other's
files. Without bwrap, only the limits (and the uid) apply: `grading` says so loudly.
"""
import json
import os
import resource
import shutil
import sys
from pathlib import Path

KERNEL_NAME = "minbert-sandbox"
PASS_ENV = ("PATH", "LANG", "LC_ALL", "MINBERT_DATA", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
            "TZ")
MB = 1 << 20


def bwrap() -> str | None:
    return shutil.which("bwrap")


def kernelspec(folder: Path) -> None:
    """Write the kernelspec `minbert-sandbox` under folder/kernels (JUPYTER_PATH=folder)."""
    spec = {"argv": [sys.executable, "-m", "minbert.course.sandbox", "{connection_file}"],
            "display_name": "minbert grading sandbox", "language": "python",
            "interrupt_mode": "message"}  # a signal would stop at bwrap, a message reaches it
    d = folder / "kernels" / KERNEL_NAME
    d.mkdir(parents=True, exist_ok=True)
    (d / "kernel.json").write_text(json.dumps(spec))


def job_config(work: Path, hide: list, limits: dict, uid: int | None, sandbox: bool,
               cwd_on_path: bool = False) -> dict:
    """What `launch` reads from the job's sandbox.json; transport "ipc" when sandboxed (the
    kernel has no network), else tcp."""
    return {"work": str(work), "hide": [str(h) for h in hide], "limits": limits, "uid": uid,
            "sandbox": sandbox, "cwd_on_path": cwd_on_path,
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


def kernel_env(work: str) -> dict:
    """A clean environment: the grader's own variables (tokens, paths) never reach the kernel."""
    env = {k: os.environ[k] for k in PASS_ENV if k in os.environ}
    env.setdefault("PATH", "/usr/bin:/bin")
    env.update(HOME=work, TMPDIR="/tmp", MPLCONFIGDIR=f"{work}/.matplotlib", MINBERT_CI="1",
               MINBERT_CHECKS="raise", PYTHONSAFEPATH="1", HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", HF_HOME=f"{work}/.hf", PYTHONDONTWRITEBYTECODE="1")
    return env


def needed_paths() -> list[tuple[str, str]]:
    """What the kernel must still see inside a hidden folder (Python, the package, the data),
    as (real path, the path it is handed): CI's MINBERT_DATA may be a symlink under /tmp."""
    return [(os.path.realpath(n), os.path.abspath(n))
            for n in (sys.prefix, sys.base_prefix, str(Path(__file__).resolve().parents[2]),
                      os.environ.get("MINBERT_DATA", "")) if n]


def needed() -> list[str]:
    return [real for real, _ in needed_paths()]


def inside(path: str, folder: str) -> bool:
    return (path.rstrip("/") + "/").startswith(folder.rstrip("/") + "/")


def hidable(path) -> bool:
    """A folder can be hidden whole (nothing the kernel needs lives inside it)."""
    p = os.path.realpath(path)
    return os.path.isdir(p) and not any(inside(n, p) for n in needed())


def passable(argv: list, path: str, under: str) -> None:
    """bwrap makes a mount point's missing parents 0700: the job's uid must pass through."""
    for parent in reversed(Path(path).parents):
        if inside(str(parent), under) and str(parent) != under.rstrip("/"):
            argv += ["--perms", "0711", "--dir", str(parent)]


def reveal(argv: list, h: str) -> None:
    """Bind back, read-only, what the kernel needs inside the hidden folder h (e.g. Python
    under $HOME, or a course cloned under /tmp): the rest of h stays hidden."""
    for real, given in needed_paths():
        for n in dict.fromkeys((real, given)):  # a symlink's target at the link's path too
            if inside(n, h) and n != h:
                passable(argv, n, h)
                argv += ["--ro-bind", real, n]


def bwrap_argv(cfg: dict, tmp_mb: int = 512) -> list[str]:
    work = cfg["work"]
    argv = [bwrap(), "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            "--perms", "1777", "--size", str(tmp_mb * MB), "--tmpfs", "/tmp",
            "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--hostname", "sandbox"]
    reveal(argv, "/tmp")  # a checkout or venv under /tmp (mktemp -d) must stay visible
    hidden = ["/tmp"]
    for h in dict.fromkeys(os.path.realpath(h) for h in cfg["hide"]):
        if not os.path.isdir(h):
            continue
        argv += ["--perms", "0755", "--tmpfs", h]
        hidden.append(h)
        reveal(argv, h)
    for h in hidden:
        if inside(work, h):
            passable(argv, work, h)
    argv += ["--bind", work, work, "--chdir", work]
    if cfg["uid"] is not None:  # setpriv needs these two to drop to the job's uid
        argv += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    return argv + ["--"]


def launch(conn_file: str) -> None:
    """Run from the job's nb/ folder by jupyter_client; execs the kernel (never returns)."""
    job = Path.cwd().parent
    cfg = json.loads((job / "sandbox.json").read_text())
    work, conn = cfg["work"], Path(conn_file)
    if cfg["uid"] is not None:  # the grader's copy is 0600: the job's uid gets its own
        conn = Path(work, ".connection.json")
        conn.write_text(Path(conn_file).read_text())
        conn.chmod(0o600)
        os.chown(conn, cfg["uid"], cfg["uid"])
    kernel = [sys.executable, "-P", "-m", "ipykernel_launcher", "-f", str(conn)]
    if not cfg.get("cwd_on_path"):
        kernel.append("--ignore-cwd")
    if cfg["uid"] is not None:
        kernel = [shutil.which("setpriv") or "setpriv", f"--reuid={cfg['uid']}",
                  f"--regid={cfg['uid']}", "--clear-groups", "--no-new-privs", "--"] + kernel
    set_limits(cfg["limits"])
    argv = (bwrap_argv(cfg) if cfg["sandbox"] else []) + kernel
    os.chdir(work)
    env = kernel_env(work) if cfg["sandbox"] or cfg["uid"] is not None else \
        {**os.environ, "MINBERT_CI": "1", "MINBERT_CHECKS": "raise"}  # `course check`
    os.execve(argv[0], argv, env)


if __name__ == "__main__":
    launch(sys.argv[1])

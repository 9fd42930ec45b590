"""A pytest plugin, loaded next to nbval when the grader runs `pytest --nbval-lax`.

nbval runs every code cell of a notebook in one kernel and fails a cell that raised. This
plugin adds what grading needs by wrapping nbval's kernel and cell classes (nbval 0.11):

- the kernel from the job's sandbox.json: the `minbert-sandbox` kernelspec over ZMQ's ipc
  transport (a sandboxed kernel has no network);
- a dead kernel is noticed within a second (nbval would wait for the cell timeout);
- a notebook time limit besides nbval's per-cell one; after it, a dead kernel, a failed
  interrupt or a closed output channel, the rest is `not-run`;
- no frame over MESSAGE_CAP is ever received (`capped_context`); frames that together pass
  it, or oversized headers, become a stub before any of it is copied or decoded
  (`recv_frames`, `gated`); printed output is capped per cell;
- the harness's result (a display message of type verdict.MIME, sent during its own cell)
  is written, as it came, to the job's grader-only `results/<cell id>.b64`; it is data for
  the grading process, never shown or decoded here;
- each cell's result as junit properties: `minbert_job`, `minbert_cell` (the cell id),
  `minbert_status` (ok | error | timeout | not-run) and `minbert_reason` (one line).
"""
import functools
import json
import os
from pathlib import Path
from queue import Empty
from time import monotonic

import pytest

from course import guard

OUTPUT_CAP = 1 << 20  # bytes of output kept per cell; the rest is dropped unread
MESSAGE_CAP = (16 << 20) + (64 << 10)  # bytes of one message's frames (verdict.RESULT_CAP)
FRAME_CAP = 64 << 10  # bytes of a header, parent header or metadata frame
MIME = "application/x-minbert-result"  # verdict.MIME
HARNESS_CALL = "\n_mbh_main("  # the last line of verdict.harness_cell's source
PROGRESS = "[grading]"


class KernelDied(RuntimeError):
    pass


def job_of(nb_dir) -> dict:
    path = Path(nb_dir).parent / "sandbox.json"
    return json.loads(path.read_text()) if path.exists() else {}


@functools.cache  # one context for every kernel client of this grading process
def capped_context():
    """A zmq context whose sockets refuse frames over MESSAGE_CAP: libzmq reads the size in a
    frame's header and drops the connection before allocating it (that channel then stays
    closed: the cell's output is lost, the rest of the notebook is not run)."""
    import zmq
    ctx = zmq.Context()
    ctx.setsockopt(zmq.MAXMSGSIZE, MESSAGE_CAP)
    return ctx


def start_new_kernel(startup_timeout=60, kernel_name="python", **kwargs):
    """nbval.kernel.start_new_kernel, with the transport the job asks for."""
    from jupyter_client.manager import KernelManager
    from nbval.kernel import NbvalKernelspecManager
    cfg = job_of(kwargs.get("cwd") or ".")
    extra = {"transport": "ipc", "ip": f"{cfg['ipc']}/k"} if cfg.get("transport") == "ipc" \
        else {}
    km = KernelManager(kernel_name=kernel_name, kernel_spec_manager=NbvalKernelspecManager(),
                       **extra)
    km.start_kernel(**{**kwargs, "stdout": open(os.devnull, "w")})  # noqa: SIM115
    kc = km.client(context=capped_context())
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=startup_timeout)
    except RuntimeError:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
        raise
    return km, kc


def await_reply(self, msg_id, timeout=None):
    """nbval's await_reply, polling in 1 s slices so that a dead kernel is noticed."""
    end = None if timeout is None else monotonic() + float(timeout)
    while True:
        left = 1.0 if end is None else min(1.0, end - monotonic())
        if left <= 0:
            raise Empty
        try:
            msg = self.get_message(stream="shell", timeout=left)
        except Empty:
            if not self.km.is_alive():
                raise KernelDied("the kernel died") from None
            continue
        if msg["parent_header"].get("msg_id") == msg_id:
            return


def gated(deserialize):
    """Wrap Session.deserialize: a message over MESSAGE_CAP, or with an oversized header, is
    replaced by a small stub before any of it is decoded as JSON (or copied)."""
    def des(self, msg_list, content=True, copy=True):
        sizes = [len(m) for m in msg_list]
        if len(sizes) < 5 or max(sizes[1:4]) > FRAME_CAP:  # no parent we could match: ignored
            return {"header": {"msg_type": "status", "msg_id": ""}, "msg_id": "",
                    "msg_type": "status", "parent_header": {}, "metadata": {},
                    "content": {"execution_state": "busy"}, "buffers": []}
        frames = [m if isinstance(m, bytes) or n > MESSAGE_CAP else m.bytes  # (.bytes copies)
                  for m, n in zip(msg_list[:5], sizes)]
        if sum(sizes) <= MESSAGE_CAP:
            return deserialize(self, frames, content=content, copy=True)
        frames[4] = b"{}"  # the oversized content is dropped unread (its signature unchecked)
        auth, self.auth = self.auth, None
        try:
            msg = deserialize(self, frames, content=True, copy=True)
        finally:
            self.auth = auth
        text = f"[output of {sum(sizes)} bytes dropped unread by the grader]"
        msg["content"] = {"name": "stdout", "text": text, "data": {"text/plain": text},
                          "metadata": {}, "execution_count": None, "execution_state": "idle"}
        return msg
    return des


def recv_frames(self, **kwargs):
    """ZMQSocketChannel._recv without the copy: frames stay zmq's until `gated` has seen
    their sizes (a 400 MB frame is held once, by zmq, and never copied into bytes)."""
    msg = self.socket.recv_multipart(copy=False)
    _ident, smsg = self.session.feed_identities(msg, copy=False)
    return self.session.deserialize(smsg, copy=False)


def capped(get_message):
    """Wrap RunningKernel.get_message: past OUTPUT_CAP bytes per cell, outputs are emptied."""
    def get(self, stream, timeout=None):
        msg = get_message(self, stream, timeout)
        content, parent = msg.get("content", {}), msg["parent_header"].get("msg_id")
        data = content.get("data") if isinstance(content.get("data"), dict) else {}
        if MIME in data:  # the harness's result: kept aside, not an output
            if parent == getattr(self, "_minbert_cell", None):
                self._minbert_results.append(data.pop(MIME))
            else:
                data.pop(MIME)
        if msg["msg_type"] in ("stream", "display_data", "execute_result", "error"):
            seen = getattr(self, "_minbert_seen", {})
            self._minbert_seen = seen
            size = len(str(content)[: OUTPUT_CAP + 1])
            seen[parent] = seen.get(parent, 0) + size
            if seen[parent] > OUTPUT_CAP:
                content.update(text="", data={"text/plain": ""}, metadata={})
            if msg["msg_type"] == "error":
                content["evalue"] = str(content.get("evalue", ""))[:2000]
                content["traceback"] = [str(t)[:2000] for t in content.get("traceback", [])[-50:]]
        return msg
    return get


def execute(execute_cell_input):
    """Wrap RunningKernel.execute_cell_input: remember the running cell's message id. The
    harness cell runs silent: its source carries the drawn inputs (60 MB of base64 for the
    embeddings' weights), which a kernel echoes on iopub (execute_input) unless silent."""
    def run(self, cell_input, allow_stdin=None):
        self._minbert_results = []
        if HARNESS_CALL in cell_input:
            self._minbert_cell = self.kc.execute(cell_input, silent=True, store_history=False,
                                                 allow_stdin=False, stop_on_error=False)
        else:
            self._minbert_cell = execute_cell_input(self, cell_input, allow_stdin)
        return self._minbert_cell
    return run


def keep_result(item) -> None:
    """The harness's one result message of this cell, to the job's results/ folder."""
    kernel = getattr(item.parent, "kernel", None)
    got = getattr(kernel, "_minbert_results", [])
    if len(got) == 1 and isinstance(got[0], str):
        out = Path(str(item.parent.fspath)).parent.parent / "results"
        out.mkdir(mode=0o700, exist_ok=True)
        (out / f"{item.cell.get('id', item.cell_num)}.b64").write_text(got[0])
    if kernel is not None:
        kernel._minbert_results = []


def run_cell(runtest):
    """Wrap IPyNbCell.runtest: time limits, the stop after a dead kernel, junit properties."""
    def run(self):
        nb = self.parent
        st = nb.__dict__.setdefault("_minbert", {"stop": None, "deadline": None})
        opt = self.config.option
        cell_t = float(opt.minbert_cell_timeout)
        nb_t = float(opt.minbert_notebook_timeout)
        if st["deadline"] is None:  # counted from the first cell, once the kernel is up
            st["deadline"] = monotonic() + nb_t
        left = st["deadline"] - monotonic()
        if st["stop"] is None and left <= 0:
            st["stop"] = f"notebook time limit ({nb_t:g} s) reached"
        self.user_properties += [("minbert_job", Path(str(nb.fspath)).parent.parent.name),
                                 ("minbert_cell", str(self.cell.get("id", self.cell_num)))]
        if st["stop"]:
            record(self, "not-run", st["stop"])
            pytest.skip(st["stop"])
        opt.nbval_cell_timeout = min(cell_t, left)
        try:
            runtest(self)
            keep_result(self)
        except KernelDied:
            st["stop"] = "the kernel died"
            record(self, "error", "the kernel died running this cell")
            raise
        except Exception as e:
            keep_result(self)
            record(self, *failure(self, e, cell_t, nb_t, cell_t <= left, st))
            raise
        record(self, "ok", "")
    return run


def failure(item, e: Exception, cell_t: float, nb_t: float, by_cell: bool, st: dict):
    """(status, reason) of a cell whose nbval run raised `e`."""
    text = str(e.args[1]) if len(e.args) > 1 else str(e)
    if "waiting for output" in text:  # the reply came, the output did not: a refused frame
        st["stop"] = "the kernel's output channel was closed by an earlier cell"
        return "error", "its output stopped reaching the grader (a message over 16 MB is refused)"
    if "Timeout of" in text:
        if "Failed to interrupt" in text:
            st["stop"] = "the kernel did not recover from a timeout"
        which, limit = ("cell", cell_t) if by_cell else ("notebook", nb_t)
        return "timeout", f"stopped by the {which} time limit ({limit:g} s)"
    errors = [o for o in getattr(item, "test_outputs", None) or [] if o.get("output_type") == "error"]
    if errors:
        o = errors[-1]
        return "error", guard.error_reason(o.get("ename", "Error"), o.get("evalue", ""),
                                           o.get("traceback", []))
    return "error", f"grader: {type(e).__name__}: {text.strip().splitlines()[0][:200] if text.strip() else ''}"


def record(item, status: str, reason: str) -> None:
    item.user_properties += [("minbert_status", status), ("minbert_reason", reason)]


def pytest_addoption(parser):
    g = parser.getgroup("minbert grading")
    g.addoption("--minbert-cell-timeout", default=120)
    g.addoption("--minbert-notebook-timeout", default=600)


def pytest_configure(config):
    """This process's own memory limit (the controller's and each -n worker's), then the
    patches of nbval's classes."""
    memory = int(os.environ.get("MINBERT_GRADER_MEMORY", 0)) << 20  # soft: kernels set theirs
    if memory:
        import resource
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        resource.setrlimit(resource.RLIMIT_AS, (memory if hard < 0 else min(memory, hard), hard))
    from nbval import kernel, plugin
    if getattr(kernel, "_minbert_patched", False):
        return
    kernel._minbert_patched = True
    kernel.start_new_kernel = start_new_kernel
    kernel.RunningKernel.await_reply = await_reply
    kernel.RunningKernel.get_message = capped(kernel.RunningKernel.get_message)
    kernel.RunningKernel.execute_cell_input = execute(kernel.RunningKernel.execute_cell_input)
    from jupyter_client.channels import ZMQSocketChannel
    from jupyter_client.session import Session
    Session.deserialize = gated(Session.deserialize)
    ZMQSocketChannel._recv = recv_frames
    plugin.IPyNbCell.runtest = run_cell(plugin.IPyNbCell.runtest)
    plugin.IPyNbCell.setup = lambda self: None  # no xfail after a timeout: the cell's own result


_PROGRESS = {"done": {}, "out": os.dup(1), "worker": False}  # fd 1 before pytest captures it


def pytest_sessionstart(session):
    _PROGRESS["worker"] = hasattr(session.config, "workerinput")


def pytest_sessionfinish(session):
    """Each grading process's peak resident memory (KiB: VmHWM, its own since its exec, where
    ru_maxrss would carry its parent's peak over) and address-space limit, for LAST_RUN."""
    rt = os.environ.get("JUPYTER_RUNTIME_DIR")
    if rt and Path(rt).parent.is_dir():
        import resource
        status = Path("/proc/self/status").read_text()
        peak = next(int(x.split()[1]) for x in status.splitlines() if x.startswith("VmHWM:"))
        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        Path(rt).parent.joinpath(f"peak-{os.getpid()}").write_text(f"{peak} {limit}")


def pytest_runtest_logreport(report):
    """One progress line per notebook, written by the controller (workers' reports too)."""
    expected = json.loads(os.environ.get("MINBERT_PROGRESS", "{}"))
    if report.when != "teardown" or not expected or _PROGRESS["worker"]:
        return
    job, done = Path(report.nodeid.split("::")[0]).parent.parent.name, _PROGRESS["done"]
    done[job] = done.get(job, 0) + 1
    if done[job] == expected.get(job, {}).get("cells"):
        finished = sum(done[j] == expected[j]["cells"] for j in done)
        line = f"\n{PROGRESS} {finished}/{len(expected)} {expected[job]['label']}\n"
        os.write(_PROGRESS["out"], line.encode())

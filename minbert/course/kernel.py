"""Running an assembled notebook in a fresh kernel, cell by cell, under time limits.

A cell's status comes from the kernel's execute reply, never from the outputs stored in the
notebook (a student can fake those). nbformat and nbclient are imported inside `Kernel`: they
take seconds to import and only grading needs them, not `python -m minbert.course release`.
"""
import math
import os
import re
import subprocess
from time import monotonic

from .notebooks import fmt

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
TIMED_OUT = {"ename": "CellTimeoutError", "evalue": "", "traceback": []}


def error_reason(ename: str, evalue: str, traceback: list) -> str:
    """One line for the grade sheet: the exception and its message (or its failing line)."""
    if ename == "NotImplementedError":
        return "exercise not implemented"
    line = (evalue or "").strip().splitlines()[0] if (evalue or "").strip() else ""
    if ename == "SyntaxError":  # drop IPython's temporary file name
        line = re.sub(r"\(\S+, line (\d+)\)", r"(line \1)", line)
    if not line:  # bare `assert x == y`: show the failing line from the traceback
        arrows = [ln.strip() for ln in ANSI.sub("", "\n".join(traceback)).splitlines()
                  if ln.strip().startswith("---->")]
        line = "at " + re.sub(r"^---->\s*\d*\s*", "", arrows[-1]) if arrows else ""
    return f"{ename}: {line}" if line else ename


class Kernel:
    """One python3 kernel (MINBERT_CI=1, working directory `cwd`) running the cells of `nb`.
    Errors never stop it; a timeout interrupts the cell and ends as an error reply."""

    def __init__(self, nb: dict, cwd):
        import nbformat  # heavy imports: see the module docstring
        from nbclient import NotebookClient
        from nbclient.exceptions import DeadKernelError
        self.node = nbformat.from_dict(nb)
        self.new_cell, self.DeadKernelError = nbformat.v4.new_code_cell, DeadKernelError
        self.reply = {}
        self.client = NotebookClient(
            self.node, kernel_name="python3", allow_errors=True, shutdown_kernel="immediate",
            iopub_timeout=1,  # outputs are not scored, so do not wait long for them
            interrupt_on_timeout=True, error_on_timeout=TIMED_OUT,
            on_cell_executed=lambda cell, cell_index, execute_reply:
                self.reply.update(execute_reply["content"]),
            resources={"metadata": {"path": str(cwd)}})  # the kernel's working directory

    def started(self):
        """Context manager: the kernel runs inside it."""
        env = {**os.environ, "MINBERT_CI": "1"}  # MINBERT_DATA passes through
        return self.client.setup_kernel(env=env, stderr=subprocess.DEVNULL)  # no kernel log noise

    def run(self, index: int, timeout: float, cell=None) -> str:
        """Run code cell `index` (or `cell` in its place): 'ok', 'error' (see `error`),
        'timeout' or 'dead'."""
        self.reply.clear()
        self.client.timeout = math.ceil(timeout)
        try:
            self.client.execute_cell(self.node.cells[index] if cell is None else cell, index)
        except self.DeadKernelError:
            return "dead"
        if self.reply.get("status") != "error":
            return "ok"
        return "timeout" if self.reply.get("ename") == TIMED_OUT["ename"] else "error"

    def error(self) -> str:
        return error_reason(self.reply.get("ename", "Error"), self.reply.get("evalue", ""),
                            self.reply.get("traceback", []))

    def probe(self, index: int, timeout: float) -> str:
        """After an interrupt: does the kernel run `pass` again? (status as `run`)"""
        cell = self.node.cells[index]
        status = self.run(index, timeout, self.new_cell("pass"))
        self.node.cells[index] = cell  # execute_cell stored the probe there
        return status


def timeout_reason(cell_timeout: float, notebook_timeout: float, left: float) -> str:
    which, limit = ("cell", cell_timeout) if cell_timeout <= left else ("notebook", notebook_timeout)
    return f"stopped by the {which} time limit ({fmt(limit)} s)"


def run_cells(nb: dict, cwd, cell_timeout: float, notebook_timeout: float) -> dict:
    """Run every code cell in one fresh kernel; {cell index: (status, reason)} with status
    ok | error | timeout | not-run. Once the notebook's time is up, or the kernel died or did
    not recover from a timeout, the remaining cells are not run."""
    kernel = Kernel(nb, cwd)
    results, stop = {}, None
    with kernel.started():
        deadline = monotonic() + notebook_timeout
        for i, cell in enumerate(kernel.node.cells):
            if cell.cell_type != "code":
                continue
            left = deadline - monotonic()
            if stop is None and left <= 0:
                stop = f"notebook time limit ({fmt(notebook_timeout)} s) reached"
            if stop:
                results[i] = ("not-run", stop)
                continue
            status = kernel.run(i, min(cell_timeout, left))
            if status == "timeout":
                results[i] = ("timeout", timeout_reason(cell_timeout, notebook_timeout, left))
                status = kernel.probe(i, min(10, cell_timeout))
                if status not in ("ok", "dead"):
                    stop = "the kernel did not recover from a timeout"
            elif status == "error":
                results[i] = ("error", kernel.error())
            elif status == "ok":
                results[i] = ("ok", "")
            if status == "dead":  # running the cell, or the probe after its timeout
                results[i], stop = ("error", "the kernel died running this cell"), "the kernel died"
    return results

"""Grading outside the student's kernel: grader-drawn inputs in, plain arrays out, oracles here.

For every check cell whose call names a check of `oracles.PLANS` (`check_attention(my_attention)`),
the grader draws that check's inputs itself, from a seed secret to the student (a hash of the
instructor notebook, the student and the cell: `seed_for`), and replaces the cell's source by
`harness_cell(plan)`: the harness (harness.py) and the inputs as a safetensors file. In the
kernel the harness calls the student's function on them and publishes the outputs as one
safetensors file (MIME). nbvalplugin keeps that message's payload, size-capped, before any
JSON is decoded; `read_result` opens it with limits (dtypes, sizes) and `Plan.judge` compares
it here with the oracle. What the kernel prints, raises or exits with never scores.
"""
import base64
import hashlib
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

HARNESS = Path(__file__).with_name("harness.py")
MIME = "application/x-minbert-result"
RESULT_CAP = 16 << 20        # bytes of base64 kept per check; a larger result is no result
HEADER_CAP = 1 << 20         # bytes of safetensors header
DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64}


class Wrong(Exception):
    """The outputs are there and wrong: outcome `fail`."""


class Broken(Exception):
    """No usable output (not implemented, raised, nothing returned): outcome `error`."""


@dataclass
class Plan:
    """One check's cases (JSON for the harness), its inputs, and `judge(outputs)`, which
    raises Wrong or Broken, else the check passes."""
    cases: list = field(default_factory=list)
    tensors: dict = field(default_factory=dict)
    judge: Callable | None = None

    def put(self, name: str, t: torch.Tensor) -> dict:
        """Register an input tensor; returns the harness's reference to it."""
        self.tensors[name] = t.detach().clone().contiguous()
        return {"t": name}


def seed_for(key: bytes, *parts: str) -> int:
    """A 48-bit seed from the grader's secret key and the (student, notebook, cell)."""
    h = hashlib.sha256(key)
    for p in parts:
        h.update(b"\0" + p.encode())
    return int.from_bytes(h.digest()[:6], "little")


def harness_cell(plan: Plan) -> str:
    from safetensors.torch import save
    blob = base64.b64encode(save(plan.tensors)).decode()
    spec = json.dumps({"cases": plan.cases})  # key order kept: it is the tasks' order
    return HARNESS.read_text() + f"\n_mbh_main({spec!r}, {blob!r})\n"


class Outputs:
    """The kernel's arrays for one check, read with limits; `get` raises Broken/Wrong."""

    def __init__(self, tensors: dict, status: dict):
        self.tensors, self.status = tensors, status

    def ok(self, i: int) -> None:
        st = self.status.get(f"c{i}")
        if st is None:
            raise Broken("no result for this check came back from the kernel")
        if st == "NotImplementedError":
            raise Broken("exercise not implemented")
        if st == "KeyError":
            raise Broken("the exercise's function or class is not defined (or raised KeyError)")
        if st != "ok":
            from .oracles import exception_name
            raise Broken(f"your code raised {exception_name(st)} on the grader's input {i + 1}")

    def get(self, i: int, key: str, what: str, shape=None, dtype=None) -> torch.Tensor:
        self.ok(i)
        t = self.tensors.get(f"c{i}.{key}")
        if t is None:
            raise Wrong(f"input {i + 1}: {what}: no tensor returned")
        if shape is not None and tuple(t.shape) != tuple(shape):
            raise Wrong(f"input {i + 1}: {what} has shape {tuple(t.shape)}, expected "
                        f"{tuple(shape)}")
        if dtype is not None and t.dtype != dtype:
            raise Wrong(f"input {i + 1}: {what} has dtype {t.dtype}, expected {dtype}")
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise Wrong(f"input {i + 1}: {what} contains inf or nan")
        return t


def close(got, want, what: str, atol: float, hint: str = "") -> None:
    diff = (got.double() - want.detach().double()).abs().max().item() if got.numel() else 0.0
    if not diff <= atol:
        raise Wrong(f"{what} differs from the reference by up to {diff:.3g} (tolerance "
                    f"{atol:g}).{' ' + hint if hint else ''}")


def each_close(out: Outputs, want: list, what: str, atol: float, hint: str,
               dtype: bool = True) -> list:
    """Case i's first output against want[i], in order: its shape (and dtype), then its
    values within atol. Returns the outputs."""
    got = []
    for i, w in enumerate(want):
        got.append(out.get(i, "out0", what, w.shape, w.dtype if dtype else None))
        close(got[-1], w, f"input {i + 1}: {what}", atol, hint)
    return got


def read_result(b64: str | None) -> Outputs:
    """The harness's safetensors file, checked before it is loaded: size, header, dtypes."""
    from safetensors.torch import load
    if not b64:
        return Outputs({}, {})
    if len(b64) > RESULT_CAP:
        raise Broken("the kernel's result is larger than the grader reads")
    try:
        raw = base64.b64decode(b64, validate=True)
        (n,) = struct.unpack("<Q", raw[:8])
        if n > HEADER_CAP:
            raise ValueError("header too large")
        header = json.loads(raw[8:8 + n])
        meta = header.pop("__metadata__", {}) or {}
        if any(v.get("dtype") not in DTYPES or len(v.get("shape", [])) > 6
               for v in header.values()):
            raise ValueError("unexpected dtype or rank")
        tensors = load(raw)
    except Exception as e:  # noqa: BLE001 (any malformed file is no result)
        raise Broken(f"the kernel's result is not a readable array file ({type(e).__name__})") \
            from None
    return Outputs(tensors, {str(k)[:20]: str(v)[:60] for k, v in meta.items()})

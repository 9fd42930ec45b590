"""Issue 29: the verdict is computed outside the student's kernel.

Each check of the course is planned by the grader (inputs drawn from a secret seed, the oracle
run grader-side: course/oracles*.py). Here the harness the grader pastes into the
kernel (course/harness.py) runs in this process on the instructor's solutions, which
pass on several seeds, and on wrong answers, which fail: so every check is shown to fail. The
kernel's result is read with limits (size, header, dtypes) before anything is decoded.
"""
import base64
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save
from torch import nn

import minbert
from course import oracles, verdict
from course.notebooks import kind, numbered_notebooks, read_notebook
from course.verdict import Broken, read_result, seed_for

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = [p for p in numbered_notebooks(ROOT / "notebooks") if p.name != "08_results.ipynb"]
HARNESS = {}
exec(verdict.HARNESS.read_text(), HARNESS)  # the kernel's code, run here on a namespace


def solutions(path) -> dict:
    ns = dict(math=math, torch=torch, F=F, nn=nn, np=np, minbert=minbert)
    for c in read_notebook(path)["cells"]:
        if kind(c) == "exercise":
            exec(c["source"], ns)
    return ns


def checks(path) -> list:
    return [oracles.find_check(c["source"]) for c in read_notebook(path)["cells"]
            if kind(c) == "check"]


def run(name: str, fn: str, ns: dict, seed: int) -> tuple[str, str]:
    plan = oracles.PLANS[name](fn, seed)
    blob = base64.b64encode(save(plan.tensors)).decode()
    return oracles.verdict(plan, "ok", "", HARNESS["_mbh_run"](json.dumps({"cases": plan.cases}),
                                                                blob, ns))


@pytest.fixture(scope="module")
def namespaces():
    return {p.name: solutions(p) for p in NOTEBOOKS}


def test_every_course_check_is_scored_outside_the_kernel():
    for p in NOTEBOOKS:
        found = checks(p)
        assert found and all(found), f"{p.name}: a check cell calls no grader-side check"


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_the_solutions_pass_on_grader_drawn_inputs(namespaces, seed):
    for p in NOTEBOOKS:
        for name, fn in checks(p):
            assert run(name, fn, namespaces[p.name], seed * 7919 + 1) == ("pass", ""), name


def nudge(x):
    """A wrong answer close to the right one: the first tensor moved a little."""
    if isinstance(x, (tuple, list)) and x:
        return (nudge(x[0]), *x[1:])
    if isinstance(x, torch.Tensor):
        return x + (1e-3 * (1 + x.detach().abs().max()) if x.is_floating_point() else 1)
    return x


def wrong_version(name: str, fn):
    """A near miss of the solution `fn` for the check `name`."""
    if name == "check_round_robin":  # tasks in the wrong order
        return lambda model, loaders, opt, rounds: fn(model, dict(reversed(loaders.items())),
                                                      opt, rounds)
    if name in ("check_self_attention_module", "check_embeddings_module"):
        return type("Wrong", (fn,), {"forward": lambda self, *a: nudge(fn.forward(self, *a))})
    if name == "check_adamw_optimizer":
        def step(self, closure=None):
            fn.step(self, closure)
            for g in self.param_groups:
                for p in g["params"]:
                    p.data.add_(1e-6)
        return type("Wrong", (fn,), {"step": step})
    return lambda *a, **k: nudge(fn(*a, **k))


def test_every_check_fails_a_near_miss_and_a_stub(namespaces):
    for p in NOTEBOOKS:
        for name, fn in checks(p):
            ns = dict(namespaces[p.name])
            ns[fn] = wrong_version(name, ns[fn])
            outcome, reason = run(name, fn, ns, 5)
            assert outcome == "fail" and reason, (name, outcome, reason)

            def stub(*a, **k):
                raise NotImplementedError
            assert run(name, fn, {**ns, fn: stub}, 5) == ("error", "exercise not implemented")


def test_a_step_that_changes_its_inputs_in_place_fails(namespaces):
    ns = dict(namespaces["02_adamw.ipynb"])
    right = ns["my_adamw_step"]

    def in_place(p, g, m, v, t, **hyper):
        out = right(p, g, m, v, t, **hyper)
        m.mul_(0.5)
        return out
    outcome, reason = run("check_adamw_step", "my_adamw_step", {**ns, "my_adamw_step": in_place}, 1)
    assert outcome == "fail" and "in place" in reason


def test_seeds_are_per_student_and_check():
    key = oracles.grading_key(b"instructor copy")
    seeds = {seed_for(key, s, "01_attention.ipynb", c) for s in ("ada", "bob")
             for c in ("attn-check-attention", "attn-check-mask")}
    assert len(seeds) == 4 and seed_for(oracles.grading_key(b"other"), "ada", "x", "y") != \
        seed_for(key, "ada", "x", "y")


def blob(tensors: dict, metadata=None) -> str:
    return base64.b64encode(save(tensors, metadata=metadata)).decode()


@pytest.mark.parametrize("result, why", [
    ("A" * (verdict.RESULT_CAP + 4), "larger than the grader reads"),
    ("not base64 at all!", "not a readable array file"),
    (base64.b64encode(b"\xff" * 8 + b"{}").decode(), "not a readable array file"),
    (blob({"c0.out0": torch.ones(2, dtype=torch.int8)}), "not a readable array file"),
])
def test_a_result_is_read_with_limits(result, why):
    with pytest.raises(Broken, match=why):
        read_result(result)


def test_a_result_of_the_wrong_shape_or_none_fails():
    plan = oracles.PLANS["check_split_heads"]("f", 3)
    assert oracles.verdict(plan, "ok", "", None)[0] == "error"
    shaped = blob({"c0.out0": torch.zeros(1), "c1.out0": torch.zeros(1)}, {"c0": "ok", "c1": "ok"})
    outcome, reason = oracles.verdict(plan, "ok", "", shaped)
    assert outcome == "fail" and "has shape (1,)" in reason

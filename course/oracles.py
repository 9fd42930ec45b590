"""Which check cells the grader scores outside the kernel, and how.

PLANS maps a check function's name (what the instructor's check cell calls) to the plan that
draws its inputs and holds its oracle (oracles_*.py). `plan_notebook` swaps each such check
cell's source for the harness (verdict.harness_cell); `verdicts` scores those cells from the
arrays that came back. A check cell that calls none of PLANS is still scored in the kernel
(by whether it raised), with a warning saying so: the course's own notebooks have none
(tests/test_grading_verdicts.py).
"""
import ast
import builtins
import hashlib
import os
import re

from . import oracles_adamw as adamw
from . import oracles_attention as attention
from . import oracles_bert as bert
from . import oracles_tasks as tasks
from . import oracles_text as text
from .notebooks import kind
from .verdict import Broken, Wrong, harness_cell, read_result, seed_for

PLANS = {
    "check_attention": attention.attention, "check_padding_mask": attention.padding_mask,
    "check_split_heads": attention.split_heads, "check_merge_heads": attention.merge_heads,
    "check_bert_layer": attention.bert_layer,
    "check_self_attention_module": bert.self_attention_module,
    "check_bert_forward": bert.bert_forward,
    "check_embeddings_module": bert.embeddings_module,
    "check_adamw_step": adamw.adamw_step, "check_adamw_optimizer": adamw.adamw_optimizer,
    "check_sentiment_head": tasks.head("sentiment"),
    "check_paraphrase_head": tasks.head("paraphrase"),
    "check_similarity_head": tasks.head("similarity"),
    "check_round_robin": tasks.round_robin,
    "check_project_conflicting": tasks.project_conflicting,
    "check_mask_tokens": text.mask_tokens, "check_mlm_head": text.mlm_head,
    "check_mean_pool": text.mean_pool, "check_cosine_mse": text.cosine_mse,
}
KEY_VARIABLE = "MINBERT_GRADING_KEY"  # optional: more secret on top of the instructor copy


def find_check(source: str) -> tuple[str, str] | None:
    """(check name, the student's name it is given) of the cell's first call of a PLANS check."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                node.func.id in PLANS and node.args and isinstance(node.args[0], ast.Name):
            return node.func.id, node.args[0].id
    return None


def grading_key(inst_bytes: bytes) -> bytes:
    """The seeds' secret: the instructor notebook (solutions included: no student has it)."""
    return hashlib.sha256(inst_bytes + os.environ.get(KEY_VARIABLE, "").encode()).digest()


def plan_notebook(nb: dict, key: bytes, student: str, notebook: str) -> dict:
    """Replace every PLANS check cell's source by its harness; {cell id: plan}."""
    plans = {}
    for cell in nb["cells"]:
        found = find_check(cell["source"]) if kind(cell) == "check" else None
        if found:
            plan = PLANS[found[0]](found[1], seed_for(key, student, notebook, cell["id"]))
            cell["source"] = harness_cell(plan)
            plans[cell["id"]] = plan
    return plans


def verdict(plan, status: str, reason: str, result: str | None) -> tuple[str, str]:
    """(outcome, reason) of one check from its arrays; nbval's status counts only for the
    grader's own limits (a timeout, a notebook stopped before the check)."""
    if status in ("timeout", "not-run"):
        return status, reason
    try:
        plan.judge(read_result(result))
    except Wrong as e:
        return "fail", f"AssertionError: {e}"
    except Broken as e:
        why = f" ({reason})" if result is None and reason.startswith("the kernel") else ""
        return "error", f"{e}{why}"
    return "pass", ""


def exception_name(name: str) -> str:
    """A builtin exception's name as it is; any other name (the student's own class, which
    could spell anything) as `an exception`."""
    return name if isinstance(getattr(builtins, name, None), type) and \
        issubclass(getattr(builtins, name), BaseException) else "an exception"


def plain_reason(reason: str) -> str:
    """What the grade may say about a cell that raised in the kernel: the exception's name
    (and a syntax error's line), never its message, which the student's code wrote and which
    could carry what it read in the kernel (the drawn inputs of an earlier check)."""
    head = reason.split(":")[0].strip()
    if reason == "exercise not implemented" or not re.fullmatch(r"\w+", head or "-"):
        return reason  # the grader's own words (a timeout, a dead kernel)
    line = re.search(r"\(line \d+\)", reason) if head == "SyntaxError" else None
    return exception_name(head) + (f" {line.group(0)}" if line else "")

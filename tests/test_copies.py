"""Code a notebook shows that also lives in the package is marked, and must not drift.

As in transformers (`# Copied from ...` markers, checked by utils/check_copies.py), a notebook
cell marks such a copy with a line

    # Copied from minbert.optimizer.AdamW.step
    # Copied from minbert.heads.mean_pool with attention_mask->mask, last_hidden_state->h

either just above the copied `def` / `class` (then the copy is that definition, compared with the
whole object) or as the first line of a block such as a solution (then the copy runs to the end
of the block: `### END SOLUTION`, a line indented less than the marker, or the end of the cell,
and it is compared with the object's body).

What may differ: layout, comments, docstrings, quote style and line breaks (both sides are compared
as `ast.unparse` of their statements, docstrings dropped), and the renames the marker states
(`with A->B, C->D`: whole identifiers A of the package's code read as B in the notebook). Nothing
else: a changed operator, name, argument or statement is a drift and fails the test.
"""
from __future__ import annotations

import ast
import difflib
import importlib
import inspect
import json
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
MARKER = re.compile(r"^(?P<indent>[ \t]*)# Copied from (?P<target>minbert(?:\.\w+)+)"
                    r"(?: with (?P<renames>.+?))?[ \t]*$", re.M)
END_OF_BLOCK = re.compile(r"^[ \t]*### END ")
# The copies the course relies on: a marker may not silently disappear.
EXPECTED = {
    ("02_adamw.ipynb", "minbert.optimizer.AdamW.step"),
    ("01_attention.ipynb", "minbert.model.extended_attention_mask"),
    ("07_cosine.ipynb", "minbert.heads.mean_pool"),
}


@dataclass
class Copy:
    notebook: str
    cell: str
    target: str
    renames: dict
    code: str      # the copied lines, dedented

    def __str__(self):
        return f"{self.notebook}:{self.cell}: {self.target}"


def parse_renames(text: str | None) -> dict:
    """'A->B, C->D' -> {'A': 'B', 'C': 'D'}."""
    renames = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        old, sep, new = (s.strip() for s in part.partition("->"))
        assert sep and old.isidentifier() and new, f"a rename reads `A->B`, got {part!r}"
        renames[old] = new
    return renames


def copies_in(source: str, notebook="", cell="") -> list[Copy]:
    """Every marked copy in one cell's source."""
    out = []
    for m in MARKER.finditer(source):
        indent = len(m["indent"].expandtabs())
        lines = []
        for line in source[m.end():].split("\n")[1:]:
            if END_OF_BLOCK.match(line) or MARKER.match(line):
                break
            if line.strip() and len(line) - len(line.lstrip()) < indent:
                break
            lines.append(line)
        out.append(Copy(notebook, cell, m["target"], parse_renames(m["renames"]),
                        textwrap.dedent("\n".join(lines))))
    return out


def all_copies() -> list[Copy]:
    out = []
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        for c in json.loads(path.read_text())["cells"]:
            if c["cell_type"] == "code":
                src = "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
                out += copies_in(src, path.name, c["id"])
    return out


def resolve(target: str):
    """'minbert.optimizer.AdamW.step' -> the object (longest importable module, then attributes)."""
    parts = target.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for name in parts[i:]:
            obj = getattr(obj, name)
        return obj
    raise ModuleNotFoundError(target)


class _NoDocstrings(ast.NodeTransformer):
    def _strip(self, node):
        self.generic_visit(node)
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
        return node

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = visit_Module = _strip


def normalise(statements: list) -> str:
    module = _NoDocstrings().visit(ast.Module(body=list(statements), type_ignores=[]))
    return ast.unparse(module)


def compare(copy: Copy) -> str | None:
    """None if the copy equals its original (as the module docstring says), else a diff."""
    obj = inspect.unwrap(resolve(copy.target))
    original = ast.parse(textwrap.dedent(inspect.getsource(obj))).body[0]
    mine = ast.parse(copy.code).body
    assert mine, f"{copy}: the marker is followed by no code"
    if isinstance(mine[0], (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        want, got = normalise([original]), normalise(mine[:1])   # the whole definition
    else:
        want, got = normalise(original.body), normalise(mine)      # its body
    for old, new in copy.renames.items():
        want = re.sub(rf"\b{re.escape(old)}\b", new, want)
    if want == got:
        return None
    return "\n".join(difflib.unified_diff(want.splitlines(), got.splitlines(),
                                          f"{copy.target} (package)", f"{copy} (notebook)",
                                          lineterm=""))


COPIES = all_copies()


def test_the_expected_copies_are_marked():
    found = {(c.notebook, c.target) for c in COPIES}
    assert EXPECTED <= found, f"markers missing: {sorted(EXPECTED - found)}"


@pytest.mark.parametrize("copy", COPIES, ids=str)
def test_copy_matches_the_package(copy):
    diff = compare(copy)
    assert diff is None, (f"{copy} has drifted from the package; make the two the same "
                          f"again (or state a rename with `with A->B`):\n{diff}")


# --- the check itself can fail ---------------------------------------------------------
def _adamw_copy() -> Copy:
    (copy,) = [c for c in COPIES if c.target == "minbert.optimizer.AdamW.step"]
    return copy


def _edited(copy: Copy, old: str, new: str, renames=None) -> Copy:
    assert old in copy.code, f"{old!r} not in the copy: update the test"
    return Copy(copy.notebook, copy.cell, copy.target,
                copy.renames if renames is None else renames, copy.code.replace(old, new, 1))


@pytest.mark.parametrize("old,new", [
    ("m.mul_(b1).add_(g, alpha=1 - b1)", "m.mul_(b1).add_(g, alpha=1 - b2)"),     # a wrong beta
    ("p.mul_(1 - lr * group[\"weight_decay\"])", "pass"),                       # decay dropped
    ("if not state:", "if True:"),                                             # state reset
    ("\nreturn loss", "\nreturn None"),                                        # another result
], ids=["wrong beta", "no weight decay", "state reset", "return value"])
def test_a_drifted_copy_fails(old, new):
    assert compare(_edited(_adamw_copy(), old, new)) is not None


def test_layout_and_comments_may_differ():
    copy = _adamw_copy()
    assert compare(_edited(copy, "state[\"step\"] += 1", "state['step'] += 1  # t <- t + 1")) is None


def test_a_rename_must_be_stated():
    renamed = _edited(_adamw_copy(), "lr, (b1, b2), eps = ", "step_size, (b1, b2), eps = ")
    renamed.code = re.sub(r"\blr\b", "step_size", renamed.code)
    assert compare(renamed) is not None
    renamed.renames = {"lr": "step_size"}
    assert compare(renamed) is None


def test_marker_forms_and_extent():
    from minbert.model import extended_attention_mask
    src = textwrap.dedent('''\
        def outer(x):
            ### BEGIN SOLUTION
            # Copied from minbert.heads.mean_pool with attention_mask->m, last_hidden_state->h
            mask = m.unsqueeze(-1)
            ### END SOLUTION

        # Copied from minbert.model.extended_attention_mask
        ''') + inspect.getsource(extended_attention_mask) + "x = 2\n"
    body, whole = copies_in(src)
    assert body.renames == {"attention_mask": "m", "last_hidden_state": "h"}
    assert body.code.strip() == "mask = m.unsqueeze(-1)"
    assert whole.code.startswith("def extended_attention_mask") and "x = 2" in whole.code
    assert compare(whole) is None  # a def is compared whole; the statement after it is not part
    assert compare(_edited(whole, "(1.0 - mask)", "(mask - 1.0)")) is not None
    with pytest.raises(AssertionError, match="A->B"):
        parse_renames("lr=step_size")

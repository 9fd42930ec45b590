"""The layout docs/design.md writes down, enforced: which minbert module may import which,
that every module has a row there, file and function sizes, and that notebooks use only
public names. Each checker is also run on a planted violation, so it is shown to fail."""
import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "minbert"
COURSE = ROOT / "course"  # the instructor's tooling: its own top-level package, one row
DESIGN = ROOT / "docs" / "design.md"
MAX_LINES = 300         # every file, model.py included
MAX_FUNCTION = 40       # lines, docstring included; no exceptions
MAX_PARAMS = 7          # every parameter but self/cls: keyword-only, *args and **kwargs count


def allowed_imports() -> dict:
    """module -> set of minbert modules it may import, from the table in docs/design.md."""
    rows = re.findall(r"^\| ([\w.]+) \|([\w., ]*)\|", DESIGN.read_text(), re.M)
    return {m: {x.strip() for x in deps.split(",") if x.strip()} for m, deps in rows
            if m != "module"}


def unit(path: Path) -> str:
    """The design unit of a file: minbert/train.py -> train, course/engine.py -> course,
    but minbert/report/plan.py -> report.plan (each report module has its own row) and
    minbert/report/__init__.py -> report."""
    if COURSE in path.parents:
        return "course"
    rel = path.relative_to(PACKAGE).parts
    if len(rel) == 1:
        return rel[0][:-3]
    if rel[0] == "report":
        return "report" if rel[1] == "__init__.py" else f"report.{rel[1][:-3]}"
    return rel[0]


def _unit_of(name: str) -> str | None:
    """minbert.train.run -> train, minbert.report.plan -> report.plan, minbert -> __init__."""
    bits = name.split(".")
    if bits[0] != "minbert":
        return None
    if len(bits) == 1:
        return "__init__"
    if bits[1] == "report" and len(bits) > 2:
        return f"report.{bits[2]}"
    return bits[1]


def imported_units(source: str, path: Path) -> set:
    """The minbert units a module's source imports (relative or absolute, any depth)."""
    if COURSE in path.parents:  # relative imports stay inside course/: not minbert units
        here = ["course"]
    else:
        here = ["minbert", *path.relative_to(PACKAGE).parts[:-1]]  # the file's package
    out = set()
    for node in ast.walk(ast.parse(source)):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            # `from minbert import files` names a module; `from minbert.data import load` a name
            whole = node.module is None or prefix in ("minbert", "minbert.report")
            names = [f"{prefix}.{a.name}" for a in node.names] if whole else [prefix]
        out |= {u for u in map(_unit_of, names) if u}
    return out


def import_violations(path: Path, source: str, table: dict) -> list:
    me = unit(path)
    if me == "__init__":
        return []  # the package root re-exports the basics
    if me not in table:
        return [f"{path.name}: no row for {me!r} in docs/design.md"]
    allowed = table[me] | {me}
    if me == "report.provenance":
        allowed |= {"__init__", "__version__"}
    return [f"{path.relative_to(ROOT)} imports minbert.{u}, which docs/design.md does not allow "
            f"for {me}" for u in sorted(imported_units(source, path) - allowed)]


def modules():
    return sorted(PACKAGE.rglob("*.py")) + sorted(COURSE.rglob("*.py"))


def test_design_table_covers_every_module():
    table = allowed_imports()
    assert {"model", "train", "report.experiments", "plots", "report.results", "course"} <= set(table)
    units = {unit(p) for p in modules()} - {"__init__"}
    assert units <= set(table), f"modules without a row in docs/design.md: {units - set(table)}"
    assert set(table) <= units, f"rows for modules that do not exist: {set(table) - units}"


def test_import_direction():
    table = allowed_imports()
    bad = [v for p in modules() for v in import_violations(p, p.read_text(), table)]
    assert not bad, "\n".join(bad)


def test_the_issue_rules_hold_in_the_table():
    """The rules the layout exists for, so that loosening the table is caught too."""
    t = allowed_imports()
    report = {u for u in t if u.split(".")[0] == "report"}
    top = {"train", "plots", "course"} | report
    for core in ("model", "optimizer", "pcgrad", "losses", "metrics", "files", "config"):
        assert not t[core] & top, core
    # three layers: the taught modules (and the course tooling) never import the report
    for below in set(t) - report:
        assert not t[below] & report, f"{below} may import the report layer: {t[below] & report}"
    training = {"train", "heads", "pcgrad", "optimizer", "mlm", "mlm_head", "model", "predictions"}
    for reader in ("plots", "report.results", "report.significance"):
        assert not t[reader] & training, reader
    # the grader's oracles read the bundled checkpoint (pretrained), never the taught model code
    assert not t["course"] & (training | {"data"}), "course imports no model code"


def test_import_checker_fails_on_a_planted_violation():
    table = allowed_imports()
    fake = PACKAGE / "plots.py"
    assert import_violations(fake, "from .train import run\n", table)
    assert import_violations(fake, "import minbert.heads as h\n", table)
    assert import_violations(COURSE / "engine.py", "from minbert.model import BertModel\n", table)
    assert import_violations(COURSE / "engine.py", "from minbert import heads\n", table)
    assert not import_violations(COURSE / "engine.py", "from .grading import grade\n", table)
    assert not import_violations(fake, "from .metrics import METRIC\n", table)
    # a report module is its own unit: results may not train, nor read the rows' presets
    reader = PACKAGE / "report" / "results.py"
    assert import_violations(reader, "from ..train import run\n", table)
    assert import_violations(reader, "from .experiments import ROWS\n", table)
    assert import_violations(reader, "from minbert.report import plan\n", table)
    assert not import_violations(reader, "from ..metrics import METRIC\n", table)
    # and a taught module may not import the report layer, in any spelling
    for source in ("from .report.results import load_results\n", "from .report import plan\n",
                   "import minbert.report.experiments as E\n"):
        assert import_violations(PACKAGE / "train.py", source, table), source


def functions(source: str):
    return [node for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]


def long_functions(source: str) -> list:
    out = []
    for node in functions(source):
        n = node.end_lineno - node.lineno + 1
        if n > MAX_FUNCTION:
            out.append(f"{node.name} ({n} lines)")
    return out


def many_parameters(source: str) -> list:
    out = []
    for node in functions(source):
        a = node.args
        names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
        names += [x.arg for x in (a.vararg, a.kwarg) if x]
        n = len([x for x in names if x not in ("self", "cls")])
        if n > MAX_PARAMS:
            out.append(f"{node.name} ({n} parameters)")
    return out


def test_files_and_functions_read_in_one_sitting():
    too_long = []
    for p in modules():
        source = p.read_text()
        n = len(source.splitlines())
        if n > MAX_LINES:
            too_long.append(f"{p.relative_to(ROOT)}: {n} lines > {MAX_LINES}")
        too_long += [f"{p.relative_to(ROOT)}: {f}" for f in long_functions(source)]
    assert not too_long, "\n".join(too_long)
    assert long_functions("def f():\n" + "    x = 1\n" * 40)  # the checker can fail
    assert not long_functions("def f():\n" + "    x = 1\n" * 39)


def test_functions_take_few_parameters():
    bad = [f"{p.relative_to(ROOT)}: {f}" for p in modules() for f in many_parameters(p.read_text())]
    assert not bad, "\n".join(bad)


def test_parameter_checker_fails_on_a_planted_violation():
    assert many_parameters("def f(a, b, c, d, e, f, g, h): pass\n")
    assert many_parameters("def f(a, b, c, *args, d, e, f, **kw): pass\n")  # all kinds count
    assert not many_parameters("class C:\n    def f(self, a, b, c, d, e, f, g): pass\n")


# --- notebooks use public names only -------------------------------------------------
INTERNAL = {"add_fields", "from_args"}  # docs/design.md: command-line plumbing


def code_cells(path: Path):
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] == "code":
            src = "".join(cell["source"])
            # IPython magics and shell lines are not Python
            yield cell.get("id"), "\n".join("" if l.lstrip().startswith(("%", "!")) else l
                                            for l in src.splitlines())


def private_uses(source: str) -> list:
    """Names a notebook cell takes from minbert that are private or internal."""
    tree = ast.parse(source)
    aliases, out = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "minbert":
                    aliases.add(a.asname or "minbert")
                    out += [p for p in a.name.split(".") if p.startswith("_")]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "minbert":
            out += [p for p in node.module.split(".") if p.startswith("_")]
            for a in node.names:
                if a.name.startswith("_") or a.name in INTERNAL:
                    out.append(a.name)
                full = f"{node.module}.{a.name}"
                if full.count(".") >= 1 and not a.name[0].isupper():
                    aliases.add(a.asname or a.name)  # a module or function taken from minbert
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            root = node
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in aliases:
                if node.attr.startswith("_") and not node.attr.startswith("__") \
                        or node.attr in INTERNAL:
                    out.append(node.attr)
    return out


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")),
                         ids=lambda p: p.name)
def test_notebooks_use_public_names(path):
    bad = [(cid, n) for cid, src in code_cells(path) for n in private_uses(src)]
    assert not bad, f"{path.name} uses private or internal minbert names: {bad}"


def test_private_name_checker_fails_on_planted_uses():
    assert private_uses("from minbert.checks import _call\n") == ["_call"]
    assert private_uses("import minbert\nminbert.pcgrad._gram64(x)\n") == ["_gram64"]
    assert private_uses("from minbert import pcgrad\npcgrad._weights(g, o)\n") == ["_weights"]
    assert private_uses("from minbert.config import add_fields\n") == ["add_fields"]
    assert private_uses("from minbert import train\ntrain.run(c)\nx._y\n") == []

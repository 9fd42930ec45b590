"""What the grader reads in exercise code: review flags, fresh imports, clean reasons.

Three things, all read from the code as an AST (never as text, so a spelling trick such as
`__import__('sy' + 's')` is still a call of `__import__`):

- `flags`: review flags, for the instructor: the lines of an exercise cell that call a
  finished implementation where your solution of that cell does not (the package's own,
  `torch.ops.aten.*` and torch's other internals, transformers, sentence-transformers, a
  check's oracle such as `F.scaled_dot_product_attention` or `torch.optim.AdamW`), or that
  hide what they call (eval/exec, `__import__`, importlib, operator, getattr with a computed
  name, dunder attributes). The verdict is computed outside the kernel (verdict.py), so code
  that patches the kernel is no threat to the grade and ordinary code (assignments, loop
  variables, helper functions) is never flagged;
- `fresh_imports`: each check cell re-imports every name it uses that your non-exercise cells
  imported (check functions, torch, F), so rebinding `check_attention` or `F` in an exercise
  cell changes nothing;
- `clean_reason`: a reason is one line of at most REASON_CHARS, and never quotes a solution
  or hidden-check line of your copy.
"""
import ast
import re

from .notebooks import HIDDEN, SOLUTION, kind, secret_lines

# finished implementations an exercise may not call unless your solution of that cell does
LIBRARIES = {"transformers", "sentence_transformers", "huggingface_hub", "tokenizers"}
INTERNALS = ("torch.ops", "torch._C", "torch._VF", "torch._refs", "torch._decomp",
             "torch._prims", "torch._functorch", "torch.optim._functional")
ORACLES = {"scaled_dot_product_attention", "multi_head_attention_forward", "MultiheadAttention",
           "AdamW", "Adam", "adamw", "adam", "BertLayer", "BertModel", "BertSelfAttention",
           "BertEncoder", "TransformerEncoderLayer", "TransformerEncoder", "SentenceTransformer",
           "cosine_similarity", "eager_attention_forward", "BertLMPredictionHead", "Pooling",
           "CosineSimilarityLoss", "_scaled_dot_product_attention_math"}
# what hides the name of what a line calls
HIDERS = {"eval", "exec", "compile", "__import__", "globals", "vars", "locals", "__builtins__"}
HIDER_MODULES = {"importlib", "builtins", "operator", "ctypes", "pickle", "marshal", "runpy"}
DUNDER_OK = {"__init__", "__name__", "__doc__", "__len__", "__repr__", "__str__", "__eq__",
             "__hash__", "__iter__", "__next__", "__getitem__", "__contains__", "__class__",
             "__call__", "__setitem__", "__module__", "__qualname__"}
PACKAGE = "minbert"
# first line of every check cell: failing checks raise, whatever an exercise cell set
FORCE_RAISE = '__import__("os").environ["MINBERT_CHECKS"] = "raise"'

REASON_CHARS = 200


def parse(source: str):
    """The cell as Python (IPython magics become get_ipython() calls), or None."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager
        source = TransformerManager().transform_cell(source)
    except Exception:
        pass
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError):
        return None


def top_bound(tree, imports: bool = True) -> set:
    """Names a cell binds at module level (without imports: modules are shared objects)."""
    out = set()
    for node in tree.body if tree else []:
        if not imports and isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        for n in ast.walk(node):
            if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)):
                out.add(n.id)
            elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                out.add(n.name)
                break  # the body's names are local
            elif isinstance(n, ast.alias):
                out.add((n.asname or n.name).split(".")[0])
    return out


def dotted(node) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id] + parts[::-1])
    return None


def root_name(node) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Starred)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def references(tree) -> set:
    """Every name and dotted chain a cell mentions (Name, a.b.c, imported modules)."""
    out = set()
    for n in ast.walk(tree) if tree else []:
        if isinstance(n, ast.Attribute) and (d := dotted(n)):
            parts = d.split(".")
            out.update(".".join(parts[: i + 1]) for i in range(len(parts)))
        if isinstance(n, ast.Attribute):
            out.add(n.attr)
        elif isinstance(n, ast.Name):
            out.add(n.id)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            mod = getattr(n, "module", None) or ""
            out.update(mod and f"{mod}.{a.name}" or a.name for a in n.names)
            out.update(a.asname or a.name for a in n.names)
    return out


class Context:
    """What your notebook tells the guard: names the setup cells bind, names bound from the
    package, the import statement behind each, and your solution of each exercise."""

    def __init__(self, inst: dict):
        self.protected, self.package, self.imports, self.solution = set(), {PACKAGE}, {}, {}
        self.secrets = set()
        for cell in inst["cells"]:
            self.secrets |= secret_lines(cell["source"])
            if cell["cell_type"] != "code":
                continue
            tree = parse(cell["source"])
            if kind(cell) == "exercise":
                self.solution[cell["id"]] = (top_bound(tree), references(tree))
                continue
            self.protected |= top_bound(tree) | ({n.id for n in ast.walk(tree)
                                                  if isinstance(n, ast.Name)} if tree and
                                                 kind(cell) == "check" else set())
            for node in ast.walk(tree) if tree else []:
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    self._imports(node)

    def _imports(self, node):
        mod = getattr(node, "module", None) or ""
        for a in node.names:
            name, stmt = import_stmt(node, a)
            self.imports.setdefault(name, stmt)
            if (mod or a.name).split(".")[0] == PACKAGE:
                self.package.add(name)


def import_stmt(node, a) -> tuple[str, str]:
    """(the name bound, the statement binding it alone) for alias `a` of an import."""
    as_ = f" as {a.asname}" if a.asname else ""
    if isinstance(node, ast.ImportFrom):
        return a.asname or a.name, f"from {'.' * node.level}{node.module or ''} import {a.name}{as_}"
    return (a.asname or a.name).split(".")[0], f"import {a.name}{as_}"


def clean_reason(reason: str, secrets: set) -> str:
    """The first line, at most REASON_CHARS, withheld if it quotes your copy."""
    line = (reason or "").strip().splitlines()[0] if (reason or "").strip() else ""
    if any(s in reason for s in secrets) or any(m in reason for m in SOLUTION + HIDDEN):
        head = line.split(":")[0][:60]
        return f"{head}: (message withheld: it quotes the instructor's copy)"
    return line if len(line) <= REASON_CHARS else line[: REASON_CHARS - 1] + "…"


def fresh_imports(source: str, ctx: Context) -> str:
    """`source` with the imports of every name it uses that your other cells imported."""
    used = {n.id for n in ast.walk(parse(source) or ast.Module(body=[], type_ignores=[]))
            if isinstance(n, ast.Name)}
    stmts = [FORCE_RAISE] + sorted({ctx.imports[n] for n in used if n in ctx.imports})
    return "; ".join(stmts) + "  # added by the grader\n" + source


def flags(cid: str, source: str, ctx: Context) -> list[str]:
    """One review flag per line of exercise `cid` that calls a finished implementation (or
    hides what it calls): `exercise ID line N: what`. Names your solution of that cell uses
    are never flagged; nor is ordinary code (assignments, loops, helper functions)."""
    tree = parse(source)
    if tree is None:
        return []
    _, allowed = ctx.solution.get(cid, (set(), set()))
    out: dict = {}  # one message per line: the first found, outermost first
    for node, what in Walker(ctx, allowed).run(tree):
        out.setdefault(getattr(node, "lineno", 0), f"exercise {cid} line "
                                                   f"{getattr(node, 'lineno', 0)}: {what}")
    return [out[k] for k in sorted(out)]


class Walker(ast.NodeVisitor):
    """Finds the calls of finished code: the package, torch's internals (`torch.ops.aten...`),
    transformers and sentence-transformers, the checks' oracles; and computed names."""

    def __init__(self, ctx, allowed):
        self.ctx, self.allowed, self.found, self.local = ctx, allowed, [], set()

    def run(self, tree):
        """The cell's own names (assigned, parameters, defined) are never the package's."""
        for n in ast.walk(tree):
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                self.local.add(n.id)
            elif isinstance(n, ast.arg):
                self.local.add(n.arg)
            elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.local.add(n.name)
        self.visit(tree)
        return self.found

    def finished(self, node, name: str) -> None:
        top = name.split(".")[0]
        if name in self.allowed or top in self.local:
            return
        if top in self.ctx.package:
            self.found.append((node, f"uses `{name}` from the package (its finished code)"))
        elif top in LIBRARIES or name.startswith(INTERNALS):
            self.found.append((node, f"uses `{name}`, a finished implementation"))
        elif name.split(".")[-1] in ORACLES:
            self.found.append((node, f"uses `{name}`, a finished implementation (an oracle)"))

    def visit_Name(self, node):
        if node.id in HIDERS and node.id not in self.allowed:
            self.found.append((node, f"uses `{node.id}`: what it calls cannot be read"))
        else:
            self.finished(node, node.id)

    def visit_Attribute(self, node):
        d = dotted(node)
        if d:
            self.finished(node, d)
            if len(self.found) and self.found[-1][0] is node:
                return  # the outermost chain says it; its parts are not flagged again
        elif node.attr in ORACLES:
            self.finished(node, node.attr)
        if node.attr.startswith("__") and node.attr not in DUNDER_OK:
            self.found.append((node, f"uses `{node.attr}`: what it calls cannot be read"))
        self.generic_visit(node)

    def visit_Call(self, node):
        f = node.func
        if isinstance(f, ast.Name) and f.id == "getattr" and (
                len(node.args) < 2 or not isinstance(node.args[1], ast.Constant)):
            self.found.append((node, "calls getattr with a computed name"))
        self.generic_visit(node)

    def visit_Import(self, node):
        for a in node.names:
            self.module(node, a.name)

    def visit_ImportFrom(self, node):
        self.module(node, node.module or "")
        for a in node.names:
            self.finished(node, f"{node.module}.{a.name}" if node.module else a.name)

    def module(self, node, name: str):
        if name.split(".")[0] in HIDER_MODULES:
            self.found.append((node, f"imports `{name}`: what it calls cannot be read"))
        else:
            self.finished(node, name)


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def error_reason(ename: str, evalue: str, traceback: list) -> str:
    """One line for the grade sheet: the exception and its message (or its failing line)."""
    if ename == "NotImplementedError":
        return "exercise not implemented"
    evalue = (evalue or "").strip()
    line = evalue.splitlines()[0] if evalue else ""
    if ename == "SyntaxError":  # drop IPython's temporary file name
        line = re.sub(r"\(\S+, line (\d+)\)", r"(line \1)", line)
    if not line:  # bare `assert x == y`: show the failing line from the traceback
        arrows = [ln.strip() for ln in ANSI.sub("", "\n".join(traceback[-50:])).splitlines()
                  if ln.strip().startswith("---->")]
        line = "at " + re.sub(r"^---->\s*\d*\s*", "", arrows[-1]) if arrows else ""
    return f"{ename}: {line}" if line else ename

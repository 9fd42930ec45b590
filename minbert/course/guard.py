"""What the grader does about exercise code that runs in the kernel of the checks.

Three things, all read from the code as an AST (never as text, so a spelling trick such as
`__import__('sy' + 's')` is still a call of `__import__`):

- `flags`: the lines of an exercise cell that could bend a check: assigning to a module's
  attribute, to a subscript of a name it did not make, or to a name the checks or the setup
  cells use; reaching builtins, sys, gc, inspect, importlib, ctypes, IPython, the kernel or
  the history in any spelling (dunder attributes, eval/exec, getattr with a computed name);
  using the package's finished code or a check's oracle where your solution does not;
- `fresh_imports`: each check cell re-imports every name it uses that your non-exercise cells
  imported (check functions, torch, F), so rebinding `check_attention` or `F` in an exercise
  cell changes nothing;
- `clean_reason`: a reason is one line of at most REASON_CHARS, and never quotes a solution
  or hidden-check line of your copy.
"""
import ast

from .notebooks import HIDDEN, SOLUTION, kind, secret_lines

REACH = {"builtins", "sys", "gc", "inspect", "importlib", "ctypes", "IPython", "ipykernel",
         "jupyter_client", "zmq", "traitlets", "__main__", "types", "code", "codeop", "runpy",
         "marshal", "unittest", "pickle", "dill", "cloudpickle", "pdb", "tracemalloc",
         "threading", "_thread", "signal", "atexit", "site", "sysconfig"}
REACH_NAMES = {"get_ipython", "__import__", "eval", "exec", "compile", "globals", "locals",
               "vars", "setattr", "delattr", "breakpoint", "__builtins__", "__builtin__", "In",
               "Out", "_ih", "_oh", "_dh", "_i", "_ii", "_iii", "__loader__", "__spec__",
               "display", "exit", "quit"}
DUNDER_OK = {"__init__", "__name__", "__doc__", "__len__", "__repr__", "__str__", "__eq__",
             "__hash__", "__iter__", "__next__", "__getitem__", "__contains__"}
ORACLES = {"scaled_dot_product_attention", "multi_head_attention_forward", "MultiheadAttention",
           "AdamW", "Adam", "BertLayer", "BertModel", "BertSelfAttention", "BertEncoder",
           "TransformerEncoderLayer", "SentenceTransformer", "cosine_similarity",
           "_close", "_call", "_tensor"}
MUTATORS = {"update", "pop", "popitem", "setdefault", "clear", "append", "extend", "insert",
            "remove", "discard", "add", "sort", "reverse", "__setitem__", "__delitem__"}
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
    """One message per suspicious line of exercise `cid`: `exercise ID line N: what`."""
    tree = parse(source)
    if tree is None:
        return []
    bound, allowed = ctx.solution.get(cid, (set(), set()))
    mine = top_bound(tree, imports=False) - ctx.protected  # objects this cell makes itself
    out: dict = {}  # one message per line: the first found, outermost first
    for node, what in Walker(ctx, allowed, bound, mine).run(tree):
        out.setdefault(getattr(node, "lineno", 0), f"exercise {cid} line "
                                                   f"{getattr(node, 'lineno', 0)}: {what}")
    return [out[k] for k in sorted(out)]


class Walker(ast.NodeVisitor):
    """Finds the flagged nodes; tracks each function's locals for attribute assignments."""

    def __init__(self, ctx, allowed, bound, mine):
        self.ctx, self.allowed, self.bound, self.mine = ctx, allowed, bound, mine
        self.found, self.scopes = [], []

    def run(self, tree):
        self.visit(tree)
        return self.found

    def hit(self, node, what):
        self.found.append((node, what))

    def visit_FunctionDef(self, node):
        args = node.args
        names = {a.arg for a in args.args + args.posonlyargs + args.kwonlyargs}
        names |= {a.arg for a in (args.vararg, args.kwarg) if a}
        names |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name)
                  and isinstance(n.ctx, ast.Store)}
        self.check_rebind(node, node.name)
        self.scopes.append(names)
        self.generic_visit(node)
        self.scopes.pop()

    visit_AsyncFunctionDef = visit_FunctionDef
    visit_Lambda = lambda self, node: self.visit_FunctionDef(  # noqa: E731
        ast.FunctionDef(name="<lambda>", args=node.args, body=[node.body], decorator_list=[],
                        lineno=node.lineno))

    def visit_ClassDef(self, node):
        self.check_rebind(node, node.name)
        self.generic_visit(node)

    def check_rebind(self, node, name):
        if not self.scopes and name in self.ctx.protected and name not in self.bound:
            self.hit(node, f"rebinds `{name}`, which the checks or setup cells use")

    def visit_Name(self, node):
        if isinstance(node.ctx, ast.Store):
            self.check_rebind(node, node.id)
        if node.id in REACH_NAMES or (node.id.startswith("_i") and node.id[2:].isdigit()):
            self.hit(node, f"reaches `{node.id}`")
        elif node.id in self.ctx.package and node.id not in self.allowed | self.mine:
            self.hit(node, f"uses `{node.id}` from the package (its finished code or checks)")
        elif node.id in ORACLES and node.id not in self.allowed:
            self.hit(node, f"uses `{node.id}`, an oracle of the checks")

    def visit_Attribute(self, node):
        d = dotted(node)
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            self.check_store(node)
        if node.attr.startswith("__") and node.attr not in DUNDER_OK:
            self.hit(node, f"reaches `{node.attr}`")
        elif d and d.split(".")[0] in self.ctx.package and d not in self.allowed:
            self.hit(node, f"uses `{d}` from the package (its finished code or checks)")
        elif node.attr in ORACLES and node.attr not in self.allowed:
            self.hit(node, f"uses `{node.attr}`, an oracle of the checks")
        self.generic_visit(node)

    def visit_Subscript(self, node):
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            self.check_store(node)
        self.generic_visit(node)

    def check_store(self, node):
        root = root_name(node)
        local = any(root in s for s in self.scopes) or root in self.mine
        if not local:
            self.hit(node, f"assigns into `{dotted(node) or root or '?'}`, which it did not make "
                           "(a module attribute or a name the checks use)")

    def visit_Call(self, node):
        f = node.func
        if isinstance(f, ast.Name) and f.id == "getattr" and (
                len(node.args) < 2 or not isinstance(node.args[1], ast.Constant)
                or str(node.args[1].value).startswith("__")):
            self.hit(node, "calls getattr with a computed or dunder name")
        elif isinstance(f, ast.Attribute) and f.attr in MUTATORS:
            root = root_name(f.value)
            if root and not (any(root in s for s in self.scopes) or root in self.mine):
                self.hit(node, f"changes `{dotted(f.value) or root}` in place, which it did "
                               "not make")
        self.generic_visit(node)

    def visit_Global(self, node):
        self.hit(node, f"declares `global {', '.join(node.names)}`")

    visit_Nonlocal = visit_Global

    def rebind_import(self, node, a):
        name, stmt = import_stmt(node, a)
        if self.ctx.imports.get(name) != stmt:  # `import torch` again binds the same module
            self.check_rebind(node, name)

    def visit_Import(self, node):
        for a in node.names:
            self.check_module(node, a.name)
            self.rebind_import(node, a)
        self.generic_visit(node)

    def visit_ImportFrom(self, node):
        self.check_module(node, node.module or "")
        for a in node.names:
            self.rebind_import(node, a)
            if a.name in ORACLES and a.name not in self.allowed:
                self.hit(node, f"imports `{a.name}`, an oracle of the checks")

    def check_module(self, node, module):
        top = module.split(".")[0]
        if top in REACH:
            self.hit(node, f"imports `{module}`")
        elif top == PACKAGE and module not in self.allowed:
            self.hit(node, f"imports `{module}` (the package's finished code or checks)")

"""Your code, run by the package (docs/design.md, rule 2; notebooks 01 to 03).

An exercise's function (or class) that passes its visible check is saved, as source, with
`save(my_attention, "attention")`; from then on the package runs it where it would run a
stand-in (a library-backed version, never the written-out answer):

    attention        01's my_attention           model.attention, in every BertSelfAttention
    self_attention   01's MyBertSelfAttention    the self-attention module of every BertLayer
    embeddings       01's MyBertEmbeddings       BertModel's embeddings module
    adamw_step       02's my_adamw_step          optimizer.AdamW.step, one tensor at a time
    sentiment_head   03's sentiment_head         MultitaskBERT's SST loss (logits, loss)
    paraphrase_head  03's paraphrase_head        MultitaskBERT's Quora loss
    similarity_head  03's similarity_head        MultitaskBERT's STS loss (the mse head)

Saved answers live in one folder: $MINBERT_YOURS if set, else yours/ beside the minbert
package folder (in the hand-out: the student folder's yours/). One file a piece,
`<name>.py`: the notebooks' imports (math, torch, F, nn), the source of the notebook's own
functions and classes it calls (MyBertSelfAttention calls my_split_heads, my_attention and
my_merge_heads), its own source, and `ANSWER = <its name>`. `get(name)` returns the saved
function or class, or None; `summary()` prints one line saying which pieces are yours and
which are stand-ins.

In the repository (the instructor edition, whose package holds the written-out versions)
nothing is saved and `get` returns None: the release removes the block below that says so.
"""
from __future__ import annotations

import ast
import contextlib
import inspect
import linecache
import io
import textwrap
from dataclasses import dataclass
from pathlib import Path

from . import files
from .env import YOURS_ENV, chosen_folder

EDITION = "hand-out"
### BEGIN SOLUTION
EDITION = "instructor"  # the repository: its written-out versions run, nothing is saved
### END SOLUTION

# What a saved file may use besides its own imports: the notebooks' setup cells import these.
HEADER = "import math\n\nimport torch\nimport torch.nn.functional as F\nfrom torch import nn\n\n\n"
# A few SST-like sentences of different lengths (so the batch is padded) for the module check.
SENTENCES = ("a gripping , funny and touching film .", "flat .",
             "the plot is thin and the ending falls apart , but the cast is good company .")


@dataclass(frozen=True)
class Piece:
    notebook: str   # where the exercise is
    check: str      # the visible check it must pass (minbert.checks)
    stand_in: str   # what runs while none is saved
    args: tuple = ()  # the check's arguments after the learner's function


PIECES = {
    "attention": Piece("01", "check_attention", "torch's scaled_dot_product_attention"),
    "self_attention": Piece("01", "check_self_attention_module", "the package's module",
                            (SENTENCES,)),
    "embeddings": Piece("01", "check_embeddings_module", "transformers' BertEmbeddings",
                        (SENTENCES,)),
    "adamw_step": Piece("02", "check_adamw_step", "torch's adamw"),
    "sentiment_head": Piece("03", "check_sentiment_head", "torch's cross_entropy"),
    "paraphrase_head": Piece("03", "check_paraphrase_head",
                             "torch's binary_cross_entropy_with_logits"),
    "similarity_head": Piece("03", "check_similarity_head", "torch's mse_loss"),
}


def folder() -> Path:
    """$MINBERT_YOURS, else yours/ beside the minbert package folder."""
    return chosen_folder(None, YOURS_ENV, Path(__file__).resolve().parents[1] / "yours")[0]


def _piece(name: str) -> Piece:
    if name not in PIECES:
        raise ValueError(f"no piece {name!r}; the pieces are {', '.join(PIECES)}")
    return PIECES[name]


def _load(path: Path):
    """The function a saved file names (ANSWER), its source compiled under the file's name."""
    namespace = {"__name__": f"minbert.yours.{path.stem}", "__file__": str(path)}
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), namespace)
    return namespace["ANSWER"]


def _failure(piece: Piece, load) -> str | None:
    """None if load() gives a function that passes the piece's visible check, else why not.
    Quiet: the check's own verdict line is not printed."""
    from . import checks  # here, not above: checks loads the model, which imports this module
    check = inspect.unwrap(getattr(checks, piece.check))
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            check(load(), *piece.args)
        except Exception as e:  # a failed assert, or a saved file that does not run alone
            return str(e) or type(e).__name__
    return None


def _notebook_names(obj) -> list:
    """The notebook's own functions and classes that obj's code calls, and theirs, in the
    order first met (MyBertSelfAttention -> my_split_heads, my_attention, my_merge_heads)."""
    found: dict = {}

    def visit(o):
        funcs = [f for f in vars(o).values() if inspect.isfunction(f)] \
            if inspect.isclass(o) else [o]
        for f in funcs:
            codes = [f.__code__]
            while codes:  # the function's code and the code nested in it (comprehensions)
                code = codes.pop()
                codes += [c for c in code.co_consts if inspect.iscode(c)]
                for name in code.co_names:
                    dep = f.__globals__.get(name)
                    if (inspect.isfunction(dep) or inspect.isclass(dep)) and dep is not obj \
                            and dep.__module__ == obj.__module__ and name not in found:
                        found[name] = dep
                        visit(dep)
    visit(obj)
    return list(found.values())


def _class_source(cls) -> str:
    """inspect.getsource fails on a class defined in a notebook cell (Python < 3.13): find
    it instead in the cell its methods were compiled from."""
    method = next((f for f in vars(cls).values() if inspect.isfunction(f)), None)
    if method is None:
        raise OSError(f"{cls.__name__} defines no method")
    lines = linecache.getlines(method.__code__.co_filename)
    for node in ast.walk(ast.parse("".join(lines))):
        if isinstance(node, ast.ClassDef) and node.name == cls.__name__ \
                and node.lineno <= method.__code__.co_firstlineno <= node.end_lineno:
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            return "".join(lines[start - 1:node.end_lineno])
    raise OSError(f"class {cls.__name__} not found in {method.__code__.co_filename}")


def _one_source(obj) -> str:
    try:
        return textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError):
        if not inspect.isclass(obj):
            raise
        return textwrap.dedent(_class_source(obj))


def _source(fn) -> str:
    name = getattr(fn, "__name__", "")
    if not name.isidentifier():
        raise ValueError(f"{fn!r} has no name: save a function or class written in a cell")
    try:
        parts = [_one_source(o) for o in [*_notebook_names(fn), fn]]
    except (OSError, TypeError) as e:
        raise ValueError(f"the source of {name} cannot be read ({e})") from None
    return HEADER + "\n\n".join(parts) + f"\n\nANSWER = {name}\n"


def save(fn, name: str) -> None:
    """Save fn as your `name` if it passes the piece's visible check (and still passes when
    loaded back from its file, alone); print one line saying what happened. A failing fn
    saves nothing and raises nothing (an earlier saved version, if any, stays)."""
    piece = _piece(name)
    what = getattr(fn, "__name__", repr(fn))
    reason = _failure(piece, lambda: fn)
    if reason is None and EDITION == "instructor":
        print(f"{what} passes {piece.check}; the instructor edition saves nothing: "
              f"the package's written-out {name} runs")
        return
    path = folder() / f"{name}.py"
    if reason is None:
        try:
            with files.atomic_file(path) as tmp:
                tmp.write_text(_source(fn), encoding="utf-8")
                reason = _failure(piece, lambda: _load(tmp))
                if reason is not None:  # e.g. it uses a name defined elsewhere in the notebook
                    raise ValueError(f"saved alone it fails: {reason}")
        except (ValueError, OSError) as e:  # OSError: a read-only folder (set $MINBERT_YOURS)
            reason = str(e)
    if reason is not None:
        print(f"{what} not saved ({piece.check}: {reason}); the package keeps running "
              f"{'your saved version' if path.exists() else 'the stand-in, ' + piece.stand_in}")
        return
    print(f"{what} saved to {path}: the package runs it from now on")


_cache: dict = {}  # name -> ((path, mtime, size), function)


def get(name: str):
    """Your saved function for piece `name`, or None (none saved, or the instructor edition).
    Cheap to call often: the file is read again only when it changes."""
    _piece(name)
    if EDITION == "instructor":
        return None
    path = folder() / f"{name}.py"
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if name not in _cache or _cache[name][0] != key:
        _cache[name] = (key, _load(path))
    return _cache[name][1]


def summary() -> None:
    """Print one line: which pieces run your code, which run stand-ins."""
    if EDITION == "instructor":
        print("pieces: the instructor edition runs the package's written-out versions")
        return
    mine = [f"{n} ({p.notebook})" for n, p in PIECES.items() if get(n) is not None]
    stand_ins = [f"{n} ({p.stand_in})" for n, p in PIECES.items() if get(n) is None]
    print(f"pieces: yours: {', '.join(mine) or 'none yet'} | stand-ins: "
          f"{', '.join(stand_ins) or 'none'}")

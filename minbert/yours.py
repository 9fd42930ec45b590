"""Your code, run by the package (docs/design.md, rule 2; notebooks 01 and 02).

An exercise's function that passes its visible check is saved, as source, with
`save(my_attention, "attention")`; from then on the package runs it where it would run a
stand-in (a library-backed version, never the written-out answer):

    attention   01's my_attention   model.attention, in every BertSelfAttention
    adamw_step  02's my_adamw_step  optimizer.AdamW.step, one tensor at a time

Saved answers live in one folder: $MINBERT_YOURS if set, else yours/ beside the minbert
package folder (in the hand-out: the student folder's yours/). One file a piece,
`<name>.py`: the notebooks' imports (math, torch, F), the function's source, and
`ANSWER = <its name>`. `get(name)` returns the saved function or None; `summary()` prints
one line saying which pieces are yours and which are stand-ins.

In the repository (the instructor edition, whose package holds the written-out versions)
nothing is saved and `get` returns None: the release removes the block below that says so.
"""
from __future__ import annotations

import contextlib
import inspect
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
HEADER = "import math\n\nimport torch\nimport torch.nn.functional as F\n\n\n"


@dataclass(frozen=True)
class Piece:
    notebook: str   # where the exercise is
    check: str      # the visible check it must pass (minbert.checks)
    stand_in: str   # what runs while none is saved


PIECES = {
    "attention": Piece("01", "check_attention", "torch's scaled_dot_product_attention"),
    "adamw_step": Piece("02", "check_adamw_step", "torch's adamw"),
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
            check(load())
        except Exception as e:  # a failed assert, or a saved file that does not run alone
            return str(e) or type(e).__name__
    return None


def _source(fn) -> str:
    name = getattr(fn, "__name__", "")
    if not name.isidentifier():
        raise ValueError(f"{fn!r} has no name: save a function written with def")
    try:
        return f"{HEADER}{textwrap.dedent(inspect.getsource(fn))}\n\nANSWER = {name}\n"
    except (OSError, TypeError) as e:
        raise ValueError(f"the source of {name} cannot be read ({e})") from None


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
        except ValueError as e:
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
        line = "pieces: the instructor edition runs the package's written-out versions"
    else:
        line = "pieces: " + ", ".join(
            f"{name} = yours (notebook {p.notebook})" if get(name) is not None
            else f"{name} = stand-in ({p.stand_in})" for name, p in PIECES.items())
    print(line)

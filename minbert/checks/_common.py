"""What every check module shares: calling the learner's code, and comparing tensors.

A check calls the learner's function on fresh, seeded inputs and compares it with an
independent oracle (torch, transformers, sentence-transformers, numpy, a hand-computed
value; never minbert's own code, so a bug shared by the package and a solution cannot
hide). It raises AssertionError with a message meant for the learner; an exercise still
raising NotImplementedError fails with "exercise not done yet".

Every public check is wrapped by `verdict`, which prints one line naming the check and its
outcome (✓ passed / ✗ failed: reason). What a failure does next is minbert.env's switch:
in student mode (interactive, the default) the check returns after printing, so "Run All"
runs every later cell; with MINBERT_CHECKS=raise, or under MINBERT_CI=1 (nbval, the grader),
it re-raises, so the cell fails.
"""
from __future__ import annotations

import functools

import torch

from ..env import checks_raise

PASS, FAIL = "\u2713", "\u2717"  # ✓ ✗


def _label(check, args) -> str:
    """check_attention(my_attention): the check and the learner's function it was given."""
    fn = getattr(args[0], "__name__", None) if args else None
    return f"{check.__name__}({fn})" if fn else check.__name__


def verdict(check):
    """Print the check's verdict; on a failure re-raise only when checks_raise()."""
    @functools.wraps(check)
    def wrapper(*args, **kwargs):
        label = _label(check, args)
        try:
            result = check(*args, **kwargs)
        except Exception as e:  # a crash inside the check is a failed check too
            reason = str(e) if isinstance(e, AssertionError) else f"{type(e).__name__}: {e}"
            print(f"{FAIL} {label}: FAILED: {reason}", flush=True)
            if checks_raise():
                raise
            return None
        print(f"{PASS} {label}: passed", flush=True)
        return result
    return wrapper


def _call(fn, *args, _name=None, **kwargs):
    """Call the learner's function; turn any exception into a failed check."""
    name = _name or getattr(fn, "__name__", repr(fn))
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise AssertionError(f"{name}: exercise not done yet (it still raises "
                             f"NotImplementedError; replace it with your code)") from None
    except Exception as e:  # a crash is a failed check too, with the reason kept
        raise AssertionError(f"{name} raised {type(e).__name__}: {e}") from e


def _tensor(x, name, shape, dtype=None):
    """Assert that x is a finite tensor of this shape (and dtype); return it."""
    assert isinstance(x, torch.Tensor), f"{name} should be a torch.Tensor, got {type(x).__name__}"
    assert tuple(x.shape) == tuple(shape), f"{name} has shape {tuple(x.shape)}, expected {tuple(shape)}"
    if dtype is not None:
        assert x.dtype == dtype, f"{name} has dtype {x.dtype}, expected {dtype}"
    assert torch.isfinite(x).all(), f"{name} contains inf or nan"
    return x


def _close(got, want, name, atol, hint=""):
    """Assert max |got - want| <= atol, compared in float64."""
    diff = (got.detach().double() - want.detach().double()).abs().max().item()
    assert diff <= atol, (f"{name} differs from the reference by up to {diff:.3g} "
                          f"(tolerance {atol:g}).{' ' + hint if hint else ''}")


def _pair(out, what):
    """Assert that a function returned a 2-tuple, e.g. (logits, loss); return it."""
    assert isinstance(out, tuple) and len(out) == 2, \
        f"return a tuple {what}, got {type(out).__name__}"
    return out


def _generator(seed: int) -> torch.Generator:
    """A CPU generator with this seed: the inputs of a check never depend on global RNG."""
    return torch.Generator().manual_seed(seed)

"""What every check module shares: calling the learner's code, and comparing tensors.

A check calls the learner's function on fresh, seeded inputs and compares it with an
independent oracle (torch, transformers, sentence-transformers, numpy, a hand-computed
value; never minbert's own code, so a bug shared by the package and a solution cannot
hide). It raises AssertionError with a message meant for the learner, so nbval and the
grader see a failed cell; an exercise still raising NotImplementedError fails with
"exercise not done yet".
"""
from __future__ import annotations

import torch


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

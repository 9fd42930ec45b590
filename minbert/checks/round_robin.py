"""Check of notebook 04_round_robin: one epoch of round-robin multitask training.

fn(model, loaders, optimizer, rounds) runs on a mock model whose loss is w[task] * x, so
the gradient at every optimizer step names the task and the batch it came from, and on an
optimizer that records those gradients and changes nothing. The oracle is an independent
count of what round-robin must do: round r, task t -> gradient x_r on w[t], 0 elsewhere
(task order, batch order, one step per batch, gradients of that batch only).
"""
from __future__ import annotations

import torch

from ._common import _call, verdict

__all__ = ["check_round_robin"]

# loaders of different lengths (4, 3, 5 batches); 2 rounds use a prefix of each
BATCHES = {"sst": [1.0, 2.0, 3.0, 4.0], "quora": [10.0, 20.0, 30.0],
           "sts": [100.0, 200.0, 300.0, 400.0, 500.0]}


class MockModel(torch.nn.Module):
    """loss(task, batch) = w[task] * batch["x"]: its gradient names the task and the batch."""

    def __init__(self, tasks):
        super().__init__()
        self.w = torch.nn.ParameterDict({t: torch.nn.Parameter(torch.ones(())) for t in tasks})

    def loss(self, task, batch):
        return self.w[task] * batch["x"]


class CountingOptimizer:
    """Records, at every step(), the gradient of every parameter; never changes them."""

    def __init__(self, model):
        self.model, self.steps = model, []

    def zero_grad(self, set_to_none=True):
        self.model.zero_grad(set_to_none=set_to_none)

    def step(self):
        self.steps.append({t: 0.0 if p.grad is None else p.grad.item() for t, p in self.model.w.items()})


def expected_steps(batches, rounds):
    """The oracle: round r, task t -> a gradient equal to batch r's x on w[t], 0 elsewhere."""
    return [{u: (batches[t][r] if u == t else 0.0) for u in batches}
            for r in range(rounds) for t in batches]


@verdict
def check_round_robin(fn, batches=None, rounds=2):
    """fn(model, loaders, optimizer, rounds) -> {task: [loss of each batch, as floats]}.
    `batches`: {task: [x of each batch]} (default BATCHES), tasks in turn in this order."""
    batches = BATCHES if batches is None else batches
    loaders = {t: [{"x": torch.tensor(x)} for x in xs] for t, xs in batches.items()}
    model = MockModel(list(batches))
    optimizer = CountingOptimizer(model)
    losses = _call(fn, model, loaders, optimizer, rounds)
    want = expected_steps(batches, rounds)
    assert len(optimizer.steps) == len(want), (
        f"expected {len(want)} optimizer steps ({rounds} rounds x {len(batches)} tasks, one per batch), "
        f"got {len(optimizer.steps)}")
    for k, (got, exp) in enumerate(zip(optimizer.steps, want)):
        assert got == exp, (f"step {k + 1}: gradients {got}, expected {exp}. Are the tasks taken in "
                            "order, each loader iterated once, and the gradients zeroed before each batch?")
    assert isinstance(losses, dict) and list(losses) == list(batches), "return {task: [losses]} for every task"
    for t in batches:
        assert losses[t] == batches[t][:rounds] and all(type(v) is float for v in losses[t]), \
            f"losses[{t!r}] should be the {rounds} batch losses as floats {batches[t][:rounds]}, got {losses[t]}"

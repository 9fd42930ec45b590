"""AdamW as in the CS224N minbert reference (notebook 02_adamw).

Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization"; Kingma & Ba 2015.

Per parameter, at step t (t = 1, 2, ...):
    m <- b1 m + (1 - b1) g
    v <- b2 v + (1 - b2) g^2
    alpha = lr * sqrt(1 - b2^t) / (1 - b1^t)   if correct_bias else lr
    p <- p - alpha * m / (sqrt(v) + eps)
    p <- p - lr * weight_decay * p              (decoupled: applied after the Adam step)

This differs from torch.optim.AdamW in two places (02 shows both numerically):
torch adds eps to the bias-corrected sqrt(v_hat) (here eps meets the uncorrected
sqrt(v), an "epsilon-hat" of eps*sqrt(1-b2^t)), and torch decays the weights
*before* the Adam step, from the old p.
"""
import math

import torch
from torch.optim import Optimizer
from torch.optim.adamw import adamw

from . import yours


class AdamW(Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0,
                 correct_bias=True):
        if not lr >= 0.0:
            raise ValueError(f"Invalid learning rate: {lr} - should be >= 0.0")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter: {betas[0]} - should be in [0.0, 1.0)")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter: {betas[1]} - should be in [0.0, 1.0)")
        if not eps >= 0.0:
            raise ValueError(f"Invalid epsilon value: {eps} - should be >= 0.0")
        if not weight_decay >= 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay} - should be >= 0.0")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        correct_bias=correct_bias)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        """One step for every parameter with a gradient: yours (notebook 02's my_adamw_step,
        saved with minbert.yours.save) one tensor at a time where saved, else a stand-in,
        torch's adamw kernel given the step's lr and eps so that it takes this file's step."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        mine = yours.get("adamw_step")
        for group, p in ((g, p) for g in self.param_groups for p in g["params"]):
            if p.grad is not None:
                if p.grad.is_sparse:
                    raise RuntimeError("AdamW takes dense gradients only (torch.optim.SparseAdam "
                                       "takes sparse ones)")
                state = self.state[p]
                if not state:
                    state.update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
                state["step"] += 1
                if mine is not None:
                    hyper = {k: group[k] for k in ("lr", "betas", "eps", "weight_decay",
                                                   "correct_bias")}
                    new = mine(p, p.grad, state["exp_avg"], state["exp_avg_sq"], state["step"],
                               **hyper)
                    for old, value in zip((p, state["exp_avg"], state["exp_avg_sq"]), new):
                        old.copy_(value)
                else:
                    torch_step(p, state, group)
        return loss

    ### BEGIN SOLUTION
    @torch.no_grad()
    def step(self, closure=None):  # noqa: F811
        """The written-out step (notebook 02)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, (b1, b2), eps = group["lr"], group["betas"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if g.is_sparse:
                    raise RuntimeError("AdamW does not support sparse gradients; "
                                       "use torch.optim.SparseAdam instead")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                m, v = state["exp_avg"], state["exp_avg_sq"]
                state["step"] += 1
                t = state["step"]
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                alpha = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t) if group["correct_bias"] else lr
                p.addcdiv_(m, v.sqrt().add_(eps), value=-alpha)
                if group["weight_decay"] != 0.0:
                    p.mul_(1 - lr * group["weight_decay"])
        return loss
    ### END SOLUTION


def torch_step(p, state, group) -> None:
    """The stand-in for one tensor at step t = state["step"]: torch's adamw kernel, which
    computes p <- p - (L / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + E). With
    E = eps / sqrt(1 - b2^t) and L = lr (no bias correction: L = lr (1 - b1^t) / sqrt(1 -
    b2^t)) that is this file's p <- p - alpha m / (sqrt(v) + eps). Its weight decay comes
    before the step, from the old p; this file's after, so it is applied here, after."""
    t, (b1, b2) = state["step"], group["betas"]
    lr, bc1, bc2 = group["lr"], 1 - b1 ** t, 1 - b2 ** t
    adamw([p], [p.grad], [state["exp_avg"]], [state["exp_avg_sq"]], [],
          [torch.tensor(float(t - 1))], foreach=False, amsgrad=False, beta1=b1, beta2=b2,
          lr=lr if group["correct_bias"] else lr * bc1 / math.sqrt(bc2), weight_decay=0.0,
          eps=group["eps"] / math.sqrt(bc2), maximize=False)
    decay = lr * group["weight_decay"]
    if decay:
        p.mul_(1 - decay)


LR_DECAYS = ("constant", "linear")


def decay_lr(optimizer, decay: str, steps_done: int, total_steps: int):
    """decay "linear": every group's lr = its initial lr x (1 - steps_done / total_steps), down
    to 0 at the last step (Devlin et al. 2019's schedule, without warmup); "constant": as is.
    A function of the step count alone, so a resumed run decays as an unbroken one does
    ("initial_lr", torch's schedulers' key, is saved with the optimizer's state)."""
    if decay == "linear":
        for group in optimizer.param_groups:
            initial = group.setdefault("initial_lr", group["lr"])
            group["lr"] = initial * max(0.0, 1 - steps_done / total_steps)

"""The training loops' optimizers and learning-rate schedules: one fused kernel call per step.

torch.optim's ``fused=True`` AdamW, Adam and SGD run these same kernels, but every ``step()``
goes through hooks, per-step grouping of the tensors and dynamo guards: about 300 us, 7% of the
quick space's classifier step on a CPU core. And the first optimizer a process builds imports
``torch._dynamo`` (1.2 s of every trial actor's start). Here a step is one kernel call, and a
schedule is a list of per-step ``(lr, momentum)`` pairs computed up front. The values are bit
for bit those of torch.optim's fused optimizers under ``OneCycleLR`` and ``LambdaLR``
(``tests/netinv/test_optim.py`` runs both side by side).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor, nn

OPTIMIZER_KINDS = ("adamw", "adam", "sgd")
DEFAULT_MOMENTUM = 0.9  # AdamW's beta1 and SGD's momentum outside the one-cycle schedule

# torch's OneCycleLR defaults: start at peak / 25, end at start / 1e4; momentum (Adam's beta1)
# falls from 0.95 to 0.85 while the rate warms up and rises back while it anneals
ONE_CYCLE_DIV, ONE_CYCLE_FINAL_DIV = 25.0, 1e4
ONE_CYCLE_MOMENTUM = (0.95, 0.85)


class FusedOptimizer:
    """AdamW, Adam or SGD with Nesterov momentum over ``params``, one fused update per step.

    Args:
        params: The parameters to update; all on one device, in one dtype.
        kind: ``"adamw"`` (decoupled weight decay), ``"adam"`` (L2 penalty) or ``"sgd"``
            (Nesterov momentum, L2 penalty, no dampening).
        weight_decay: Decay per unit of learning rate (AdamW) or L2 factor, >= 0.
        beta2: Adam's second-moment decay, in [0, 1).
        eps: Adam's denominator floor, > 0.

    Parameters whose ``.grad`` is None at a step are skipped, as torch.optim does.
    """

    def __init__(self, params: Iterable[nn.Parameter], kind: str, *, weight_decay: float = 0.0,
                 beta2: float = 0.999, eps: float = 1e-8) -> None:
        if kind not in OPTIMIZER_KINDS:
            raise ValueError(f"optimizer kind {kind!r} is not one of {OPTIMIZER_KINDS}")
        self.params = list(params)
        if not self.params:
            raise ValueError("the optimizer got no parameters")
        placements = {(p.device, p.dtype) for p in self.params}
        if len(placements) > 1:
            raise ValueError(f"the fused optimizer needs every parameter on one device in one "
                             f"dtype, got {sorted(map(str, placements))}")
        self.kind, self.weight_decay, self.beta2, self.eps = kind, weight_decay, beta2, eps
        # Adam's moments and step counts (float32, as torch's fused Adam keeps them), or SGD's
        # momentum buffers: created at a parameter's first update
        self.state: dict[int, list[Tensor]] = {}

    def zero_grad(self) -> None:
        """Drop every parameter's gradient (the next backward allocates fresh ones)."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, lr: float, momentum: float) -> None:
        """Update every parameter that has a gradient.

        Args:
            lr: Learning rate of this step, > 0.
            momentum: Adam's beta1, or SGD's momentum, in [0, 1).
        """
        live = [p for p in self.params if p.grad is not None]
        if not live:
            return
        grads = [p.grad for p in live]
        first = [p for p in live if id(p) not in self.state]
        if self.kind == "sgd":
            for p in first:
                # zeros, not torch's empty: a parameter whose first gradient comes after the
                # first step then starts from buf = grad, as on a first step (torch errors)
                self.state[id(p)] = [torch.zeros_like(p.grad)]
            torch._fused_sgd_(live, grads, [self.state[id(p)][0] for p in live],
                              weight_decay=self.weight_decay, momentum=momentum, lr=lr,
                              dampening=0.0, nesterov=True, maximize=False,
                              is_first_step=len(first) == len(live),
                              grad_scale=None, found_inf=None)
            return
        for p in first:
            self.state[id(p)] = [torch.zeros_like(p, memory_format=torch.preserve_format),
                                 torch.zeros_like(p, memory_format=torch.preserve_format),
                                 torch.zeros((), dtype=torch.float32, device=p.device)]
        states = [self.state[id(p)] for p in live]
        steps = [s[2] for s in states]
        torch._foreach_add_(steps, 1)
        kernel = torch._fused_adamw_ if self.kind == "adamw" else torch._fused_adam_
        kernel(live, grads, [s[0] for s in states], [s[1] for s in states], [], steps,
               amsgrad=False, lr=lr, beta1=momentum, beta2=self.beta2,
               weight_decay=self.weight_decay, eps=self.eps, maximize=False,
               grad_scale=None, found_inf=None)


def one_cycle(peak_lr: float, total_steps: int, warmup: float) -> list[tuple[float, float]]:
    """torch's ``OneCycleLR`` (cosine, two phases, cycled momentum) as per-step pairs.

    Args:
        peak_lr: The rate at the end of the warm-up, > 0.
        total_steps: Steps of the schedule, >= 1.
        warmup: Share of the steps spent warming up (``pct_start``), in (0, 1].

    Returns:
        ``total_steps`` pairs ``(lr, momentum)``: the rate rises from ``peak_lr / 25`` to
        ``peak_lr``, then anneals to ``peak_lr / 2.5e5``; momentum does the opposite between
        0.95 and 0.85.
    """
    start = peak_lr / ONE_CYCLE_DIV
    high, low = ONE_CYCLE_MOMENTUM
    # (end step, start lr, end lr, start momentum, end momentum), as OneCycleLR's phases
    phases = [(float(warmup * total_steps) - 1, start, peak_lr, high, low),
              (total_steps - 1, peak_lr, start / ONE_CYCLE_FINAL_DIV, low, high)]
    rates = []
    for step in range(total_steps):
        begin = 0.0
        for i, (end, lr_from, lr_to, m_from, m_to) in enumerate(phases):
            if step <= end or i == len(phases) - 1:
                pct = (step - begin) / (end - begin)
                rates.append((_cosine(lr_from, lr_to, pct), _cosine(m_from, m_to, pct)))
                break
            begin = end
    return rates


def _cosine(start: float, end: float, pct: float) -> float:
    """OneCycleLR's cosine anneal from ``start`` (pct 0) to ``end`` (pct 1)."""
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def triangular(peak_lr: float, total_steps: int, warmup: float, momentum: float
               ) -> list[tuple[float, float]]:
    """Linear warm-up over ``round(warmup * total_steps)`` steps (at least 1) to ``peak_lr``,
    then linear decay to 0 at ``total_steps``; constant ``momentum``. Returns per-step pairs
    ``(lr, momentum)``."""
    warm = max(1, round(warmup * total_steps))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (total_steps - step) / max(1, total_steps - warm))
    # the rate is peak * factor, as LambdaLR computes it (the same floats)
    return [(peak_lr * factor(step), momentum) for step in range(total_steps)]

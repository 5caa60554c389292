"""netinv.optim: fused optimizers and schedules, bit for bit against torch.optim."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from netinv.optim import DEFAULT_MOMENTUM, FusedOptimizer, one_cycle, triangular

STEPS = 40


def _model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                          nn.Linear(8 * 6 * 6, 5))
    return model.to(memory_format=torch.channels_last)


def _train(model: nn.Module, update) -> list[torch.Tensor]:
    """STEPS steps on fixed random batches; ``update(step)`` zeroes, steps and schedules."""
    data = torch.Generator().manual_seed(1)
    for step in range(STEPS):
        x = torch.randn(16, 3, 8, 8, generator=data)
        y = torch.randint(0, 5, (16,), generator=data)
        loss = nn.functional.cross_entropy(model(x), y)
        update(step, loss)
    return [p.detach().clone() for p in model.parameters()]


def _torch_reference(kind: str, schedule: str, lr: float, weight_decay: float):
    """torch.optim's fused optimizer and scheduler, as the pipeline used them before."""
    model = _model()
    if kind == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True,
                              weight_decay=weight_decay, fused=True)
    else:
        cls = torch.optim.AdamW if kind == "adamw" else torch.optim.Adam
        opt = cls(model.parameters(), lr=lr, weight_decay=weight_decay, fused=True)
    if schedule == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=STEPS,
                                                    pct_start=0.15)
    else:
        warm = max(1, round(0.15 * STEPS))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (STEPS - s) / (STEPS - warm)))

    def update(step, loss):
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return _train(model, update)


@pytest.mark.parametrize("schedule", ["onecycle", "linear"])
@pytest.mark.parametrize("kind,weight_decay", [("adamw", 0.05), ("adam", 0.05), ("sgd", 5e-4)])
def test_matches_torch_optim_bit_for_bit(kind: str, weight_decay: float, schedule: str) -> None:
    lr = 0.05 if kind == "sgd" else 3e-3
    expected = _torch_reference(kind, schedule, lr, weight_decay)
    rates = (one_cycle(lr, STEPS, 0.15) if schedule == "onecycle"
             else triangular(lr, STEPS, 0.15, DEFAULT_MOMENTUM))
    model = _model()
    opt = FusedOptimizer(model.parameters(), kind, weight_decay=weight_decay)

    def update(step, loss):
        opt.zero_grad()
        loss.backward()
        opt.step(*rates[step])
    got = _train(model, update)
    assert all(torch.equal(a, b) for a, b in zip(got, expected))
    assert not torch.equal(got[0], next(_model().parameters()))  # it did train


def test_generator_adam_with_beta1_half_matches_torch() -> None:
    model, reference = _model(), _model()
    ref_opt = torch.optim.Adam(reference.parameters(), lr=3e-3, betas=(0.5, 0.999), fused=True)
    opt = FusedOptimizer(model.parameters(), "adam")

    def ref_update(step, loss):
        ref_opt.zero_grad(set_to_none=True)
        loss.backward()
        ref_opt.step()

    def update(step, loss):
        opt.zero_grad()
        loss.backward()
        opt.step(3e-3, 0.5)
    assert all(torch.equal(a, b) for a, b in zip(_train(model, update),
                                                 _train(reference, ref_update)))


@pytest.mark.parametrize("total_steps,warmup", [(23, 0.3), (1, 0.15), (2, 0.15), (8, 0.375)])
def test_one_cycle_equals_torch_schedule_and_momentum(total_steps: int, warmup: float) -> None:
    model = nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=total_steps,
                                                pct_start=warmup)
    expected = []
    for _ in range(total_steps):
        expected.append((opt.param_groups[0]["lr"], opt.param_groups[0]["betas"][0]))
        opt.step()
        sched.step()
    assert one_cycle(0.1, total_steps, warmup) == expected


def test_parameters_without_gradient_are_left_alone() -> None:
    used, unused = nn.Linear(3, 1), nn.Linear(3, 1)
    before = unused.weight.detach().clone()
    opt = FusedOptimizer([*used.parameters(), *unused.parameters()], "adamw", weight_decay=0.1)
    used(torch.ones(2, 3)).sum().backward()
    opt.step(0.1, 0.9)
    assert torch.equal(unused.weight, before)
    assert len(opt.state) == 2  # moments for the used layer's weight and bias only
    opt.zero_grad()
    assert all(p.grad is None for p in used.parameters())


@pytest.mark.parametrize("kind", ["sgd", "adamw"])
def test_a_parameter_whose_first_gradient_comes_late_starts_fresh(kind: str) -> None:
    """b gets no gradient at step 1, then gradient 1 at step 2: its update is a first step's
    (SGD: buf = grad, Nesterov step lr * (1 + momentum); Adam: lr * sign(grad) up to eps)."""
    a, b = nn.Parameter(torch.zeros(3)), nn.Parameter(torch.ones(3))
    opt = FusedOptimizer([a, b], kind)
    a.sum().backward()
    opt.step(0.1, 0.9)
    (a.sum() + b.sum()).backward()
    opt.step(0.1, 0.9)
    expected = 1 - 0.1 * (1 + 0.9) if kind == "sgd" else 1 - 0.1
    assert torch.allclose(b.detach(), torch.full((3,), expected), atol=1e-6)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="'lamb' is not one of"):
        FusedOptimizer(nn.Linear(2, 2).parameters(), "lamb")
    with pytest.raises(ValueError, match="no parameters"):
        FusedOptimizer([], "adam")
    mixed = [nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2, dtype=torch.float64))]
    with pytest.raises(ValueError, match="one device in one dtype"):
        FusedOptimizer(mixed, "adam")


def test_a_training_round_does_not_import_dynamo() -> None:
    """torch.optim imports torch._dynamo on a process's first optimizer (about a second of
    every trial actor's start); the training loops use none."""
    code = ("import sys, torch\n"
            "from netinv.models import Classifier\n"
            "from netinv.config import ClassifierConfig\n"
            "from netinv.pipeline import make_optimizer\n"
            "model = Classifier((1, 28, 28), 11, width=8)\n"
            "opt, rates = make_optimizer(model, ClassifierConfig(), 3)\n"
            "for lr, momentum in rates:\n"
            "    opt.zero_grad()\n"
            "    model(torch.randn(4, 1, 28, 28)).sum().backward()\n"
            "    opt.step(lr, momentum)\n"
            "print('torch._dynamo' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

"""The one training loop, shared by the fitness evaluation (:mod:`ctm.evaluation`) and full training
(:mod:`ctm.train`).

One step of :class:`TrainingLoop` is: batch ``i = step`` of the task's training stream
(``task.batch("train", i, batch_size, seed)``, a pure function of its arguments), the CTM loss over the T ticks
and its gradients (:func:`ctm.step.backward_step`, gradient norm clipped to ``grad_clip``), an AdamW step, a
learning-rate schedule step, and the projection of the decays θ back into [0, decay_clamp] (``CTM.project_``).
``(loss, gradient norm)`` pairs stay on the device until a flush reads them back (one device sync); a
non-finite one raises :class:`Diverged` naming its 1-based step.

The loop's state is plain: ``step`` (optimizer steps done, which is also the next batch index and the
schedule's position) and ``losses`` (one float per step). Callers own the optimizer and schedule
(:func:`make_optimizer`) and hook in after every step (``after_step``): the evaluation stops on a step or
wall-time budget, full training logs, measures and writes checkpoints there.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ctm.step import backward_step, read_back

Schedule = Callable[[int], float]  # learning-rate multiplier before optimizer step ``step`` (0-based)


class Diverged(RuntimeError):
    """A non-finite loss or gradient norm at training step ``step`` (1-based)."""

    def __init__(self, step: int, what: str, value: float):
        super().__init__(f"non-finite {what} ({value}) at training step {step}")
        self.step, self.what, self.value = step, what, value


def warmup_constant(warmup: int) -> Schedule:
    """Linear warm-up over ``warmup`` steps, then constant: factor(s) = min(1, (s + 1) / warmup)."""
    if warmup <= 0:
        return lambda step: 1.0
    return lambda step: min(1.0, (step + 1) / warmup)


def lr_factor(step: int, *, steps: int, warmup: int, min_ratio: float) -> float:
    """Learning-rate multiplier before optimizer step ``step`` (0-based): linear warm-up, then cosine decay to
    ``min_ratio`` at ``steps``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, steps - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


class WarmupCosine:
    """:func:`lr_factor` as an object: ``LambdaLR.state_dict`` saves its plain attributes."""

    def __init__(self, *, steps: int, warmup: int, min_ratio: float):
        self.steps, self.warmup, self.min_ratio = steps, warmup, min_ratio

    def __call__(self, step: int) -> float:
        return lr_factor(step, steps=self.steps, warmup=self.warmup, min_ratio=self.min_ratio)


def make_optimizer(params: Iterable[torch.Tensor], *, learning_rate: float, weight_decay: float,
                   schedule: Schedule, optimizer_state: dict[str, Any] | None = None, start_step: int = 0,
                   ) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW and its ``LambdaLR`` schedule, fresh or continuing.

    With ``optimizer_state`` (an AdamW ``state_dict``: moments, step counts, param groups with ``initial_lr``)
    the optimizer is restored and the schedule resumes at position ``start_step``: the learning rate of the
    next step is ``initial_lr · schedule(start_step)``, the same float an uninterrupted run computes there.
    """
    optimizer = torch.optim.AdamW(list(params), lr=learning_rate, weight_decay=weight_decay)
    if optimizer_state is None or start_step <= 0:
        if optimizer_state is not None:
            optimizer.load_state_dict(optimizer_state)
        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    optimizer.load_state_dict(optimizer_state)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule, last_epoch=start_step - 1)


@dataclass(kw_only=True)
class TrainingLoop:
    """Training of ``model`` on ``task`` from optimizer step ``step`` on (see the module docstring).

    ``forward`` is what computes the predictions (the model itself, or ``torch.compile(model)``); ``amp``
    runs it under bf16 autocast on CUDA.
    """

    model: nn.Module
    task: Any
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    params: list[torch.Tensor]
    seed: int
    batch_size: int
    grad_clip: float
    device: torch.device
    amp: bool = False
    forward: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None
    step: int = 0
    losses: list[float] = field(default_factory=list)

    def run(self, *, until: int | None, seconds: float | None = None, flush_every: int | None = 1,
            flush_at: Callable[[int], bool] | None = None, after_step: Callable[[int], None] | None = None) -> None:
        """Train until ``step == until`` or ``seconds`` of wall time have passed (``None``: no limit of that
        kind), then read back every pending loss.

        Losses are read back when ``flush_every`` of them are pending (``None``: never for that reason), or when
        ``flush_at(step)`` is true;
        ``after_step(step)`` runs after that read-back, so it sees ``losses[-1]`` of this step whenever it
        was flushed. Raises :class:`Diverged` at the first non-finite loss or gradient norm read back.
        """
        forward = self.forward or self.model
        project = getattr(self.model, "project_", None)
        pending: list[torch.Tensor] = []
        began = time.perf_counter()
        self.model.train()
        while (until is None or self.step < until) and (
                seconds is None or time.perf_counter() - began < seconds):
            x, y = self.task.batch("train", self.step, self.batch_size, self.seed)
            pending.append(backward_step(forward, self.task, x, y, optimizer=self.optimizer, params=self.params,
                                         grad_clip=self.grad_clip, device=self.device, amp=self.amp))
            self.optimizer.step()
            self.scheduler.step()
            if project is not None:
                project()
            self.step += 1
            if (flush_every is not None and len(pending) >= flush_every) or (
                    flush_at is not None and flush_at(self.step)):
                self.flush(pending)
            if after_step is not None:
                after_step(self.step)
        self.flush(pending)

    def flush(self, pending: list[torch.Tensor]) -> None:
        """Append the pending losses (the newest belongs to step ``self.step``); raise :class:`Diverged` at
        the first non-finite loss or gradient norm."""
        values = read_back(pending)
        for i, (loss, norm) in enumerate(values):
            if not (math.isfinite(loss) and math.isfinite(norm)):
                what, value = ("loss", loss) if not math.isfinite(loss) else ("gradient norm", norm)
                raise Diverged(self.step - len(values) + i + 1, what, value)
            self.losses.append(loss)


__all__ = ["Diverged", "Schedule", "TrainingLoop", "WarmupCosine", "lr_factor", "make_optimizer",
           "warmup_constant"]

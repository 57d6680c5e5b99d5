"""One training step of the CTM loss, shared by the fitness evaluation and full training."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable
from typing import Any

import torch


def autocast_context(device: torch.device, amp: bool) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA when ``amp``; nothing otherwise."""
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def backward_step(forward: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]], task: Any,
                  x: torch.Tensor, y: torch.Tensor, *, optimizer: torch.optim.Optimizer,
                  params: Iterable[torch.Tensor], grad_clip: float, device: torch.device, amp: bool) -> torch.Tensor:
    """Forward pass (autocast), the task's loss over ticks, backward and gradient clipping.

    The optimizer step is the caller's. Returns ``[loss, gradient norm]`` still on the device: reading it back
    would wait for a GPU, so callers collect several and read them with :func:`read_back`.
    """
    x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
    with autocast_context(device, amp):
        predictions, certainties = forward(x)
    loss = task.loss(predictions.float(), certainties.float(), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(params, grad_clip if grad_clip > 0 else math.inf)
    return torch.stack([loss.detach().float(), norm.detach().float()])


def read_back(pending: list[torch.Tensor]) -> list[tuple[float, float]]:
    """The collected ``[loss, gradient norm]`` pairs as floats (one device sync); empties ``pending``."""
    if not pending:
        return []
    values = [(float(a), float(b)) for a, b in torch.stack(pending).cpu().tolist()]
    pending.clear()
    return values

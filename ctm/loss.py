"""Certainty and the losses over ticks.

- certainty c_t = 1 − H(softmax y_t) / log C, averaged over the output positions;
- the CTM loss: per sample, t1 = argmin_t L_t (best tick) and t2 = argmax_t c_t (most certain tick),
  loss = mean over the batch of (L_t1 + L_t2) / 2 (no compute penalty);
- per-tick cross-entropy over positions, and the maze auto-curriculum mask (loss up to the first wrong step
  plus 5 more steps).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F


def split_logits(predictions: Tensor, positions: int, classes: int) -> Tensor:
    """[B, positions·classes, T] → [B, positions, classes, T] (float32)."""
    b, _, t = predictions.shape
    return predictions.float().reshape(b, positions, classes, t)


def normalised_entropy(logits: Tensor) -> Tensor:
    """logits [B, positions, C, T] → H(softmax) / log C per position and tick, [B, positions, T]."""
    logp = F.log_softmax(logits, dim=2)
    return -(logp.exp() * logp).sum(2) / math.log(logits.shape[2])


def certainties_from(predictions: Tensor, positions: int, classes: int) -> Tensor:
    """[B, out, T] → [B, 2, T] holding (normalised entropy 1 − c_t, certainty c_t), averaged over positions."""
    normalised = normalised_entropy(split_logits(predictions, positions, classes)).mean(1)
    return torch.stack([normalised, 1.0 - normalised], dim=1)


def per_tick_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """logits [B, P, C, T], targets [B, P] (long) → per-position losses [B, P, T]."""
    t = logits.shape[-1]
    return F.cross_entropy(logits.transpose(1, 2), targets.unsqueeze(-1).expand(-1, -1, t), reduction="none")


def tick_selection_loss(per_tick: Tensor, certainty: Tensor) -> Tensor:
    """per_tick [B, T] losses L_t, certainty [B, T] c_t → mean_b (L_{argmin L} + L_{argmax c}) / 2."""
    best = per_tick.argmin(dim=1, keepdim=True)
    sure = certainty.argmax(dim=1, keepdim=True)
    return 0.5 * (per_tick.gather(1, best) + per_tick.gather(1, sure)).mean()


def curriculum_mask(logits: Tensor, targets: Tensor, extra: int = 5) -> Tensor:
    """Auto-curriculum mask [B, P, T]: steps 0 .. (first wrongly predicted step + ``extra``), per tick.

    With no wrong step the whole route counts. "Predict one more than you can": the prefix the model already
    gets right, the first wrong step, and ``extra`` more steps after it.
    """
    wrong = logits.argmax(dim=2) != targets.unsqueeze(-1)  # [B, P, T]
    steps = targets.shape[1]
    index = torch.arange(steps, device=logits.device).view(1, steps, 1)
    first_wrong = torch.where(wrong, index, steps).amin(dim=1, keepdim=True)  # [B, 1, T]
    return index <= first_wrong + extra

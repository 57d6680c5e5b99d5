"""Evaluation figures from per-sample scores: adaptive-compute exit, calibration (ECE), behaviour vector, MACs.

- Exit: each sample stops at its first tick with certainty c_t >= threshold (else the last tick);
  ``exit_accuracy`` is the per-step accuracy there and ``exit_tick_mean`` the mean exit tick (1-based).
- ECE: expected calibration error over ``ECE_BINS`` equal-width confidence bins.
- Behaviour: the probe batch's mean accuracy and certainty per tick, linearly interpolated at
  ``BEHAVIOUR_POINTS`` evenly spaced relative ticks (0 = first tick, 1 = last), so its length is
  2·BEHAVIOUR_POINTS whatever T is.
- MACs: counted by ``torch.utils.flop_counter`` on one forward of one sample (MACs = FLOPs / 2). The counter
  sees matrix products, convolutions and attention; it does not see the elementwise synchronisation products,
  so :func:`measure_macs` adds T·(|S_out| + |S_action|) to it; the sum equals
  ``genome.cost.estimate(...).macs_per_forward`` exactly (tested).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from ctm.model import CTM
from ctm.result import BEHAVIOUR_POINTS

ECE_BINS = 10


def exit_metrics(per_tick: Tensor, certainty: Tensor, threshold: float) -> tuple[float, float]:
    """(exit_accuracy, exit_tick_mean) for per_tick [N, T] accuracies and certainty [N, T]."""
    ticks = per_tick.shape[1]
    passed = certainty >= threshold
    first = torch.where(passed.any(1), passed.float().argmax(1), torch.full_like(passed[:, 0], ticks - 1,
                                                                                  dtype=torch.long))
    accuracy = per_tick.gather(1, first.unsqueeze(1)).mean()
    return float(accuracy), float((first + 1).float().mean())


def expected_calibration_error(confidence: Tensor, correct: Tensor, bins: int = ECE_BINS) -> float:
    """Σ_bins (n_bin / n) · |accuracy_bin − mean confidence_bin|."""
    if confidence.numel() == 0:
        return float("nan")
    conf = confidence.double().clamp(0, 1)
    index = (conf * bins).long().clamp(max=bins - 1)
    conf_sum = torch.zeros(bins, dtype=torch.float64).index_add_(0, index, conf)
    right_sum = torch.zeros(bins, dtype=torch.float64).index_add_(0, index, correct.double())
    return float((conf_sum - right_sum).abs().sum() / conf.numel())


def resample(curve: list[float], points: int = BEHAVIOUR_POINTS) -> list[float]:
    """Linear interpolation of a per-tick curve at ``points`` evenly spaced relative ticks."""
    values = np.asarray(curve, dtype=np.float64)
    if len(values) == 1:
        return [float(values[0])] * points
    where = np.linspace(0.0, len(values) - 1, points)
    return [float(v) for v in np.interp(where, np.arange(len(values)), values)]


def behaviour_vector(per_tick_accuracy: list[float], per_tick_certainty: list[float]) -> list[float]:
    return resample(per_tick_accuracy) + resample(per_tick_certainty)


@torch.no_grad()
def counted_macs(model: nn.Module, sample: Tensor) -> int:
    """Multiply-accumulates the flop counter sees in one forward of ``sample`` (a batch of one)."""
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            model(sample)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops()) // 2


def measure_macs(model: CTM, sample: Tensor) -> int:
    """MACs per forward per sample as ``genome.cost`` defines them: the flop counter's count plus one per
    synchronisation pair per tick (elementwise, so invisible to the counter)."""
    pairs = model.sync_out.size + (model.sync_action.size if model.sync_action is not None else 0)
    return counted_macs(model, sample) + model.steps * model.ticks * pairs


@torch.no_grad()
def closed_loop_success(model: CTM, task: Any, *, samples: int, seed: int, device: torch.device | str,
                        batch_size: int) -> float | None:
    """For a task the CTM acts in (it has ``closed_loop``, e.g. ``pomaze``): the share of ``samples`` validation
    episodes (drawn with ``seed``) in which the model, acting on its own answers, succeeds; ``None`` for other
    tasks. Leaves the model in the mode it found it and the RNGs untouched (episodes come from ``seed``)."""
    run = getattr(task, "closed_loop", None)
    if not callable(run):
        return None
    was_training = model.training
    model.eval()
    try:
        return float(run(model, samples=samples, seed=seed, device=device, batch_size=batch_size))
    finally:
        model.train(was_training)

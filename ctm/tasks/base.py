"""The task interface, the classification base most tasks share, and checked task parameters.

A task object gives
- ``shape``: a ``genome.cost.TaskShape`` (backbone kind and token count, output positions × classes);
- ``batch(split, index, batch_size, seed) -> (inputs, targets)``: CPU tensors, a pure function of its
  arguments (split is ``"train"``, ``"val"`` or ``"probe"``; data generated on the fly, offline);
- ``loss(predictions, certainties, targets) -> scalar tensor``: the loss over ticks;
- ``score(predictions, certainties, targets) -> Scores``: per-sample accuracies and calibration pairs;
- optionally ``check_genome(genome)``: raise :class:`TaskMismatch` when a genome cannot do this task.

Predictions are [B, positions·classes, T]; certainties [B, 2, T] (index 1 is c_t).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ctm.loss import per_tick_cross_entropy, split_logits, tick_selection_loss
from genome.cost import TaskShape

SPLITS = ("train", "val", "probe")


class TaskError(ValueError):
    """A bad task name or parameter; the message names the field, the value and what is allowed."""


class TaskMismatch(ValueError):
    """A genome that cannot do a task (e.g. fewer ticks than CTC needs); evaluation reports it as an error."""


@dataclass
class Scores:
    """Per-sample results on one batch (all CPU float tensors).

    per_tick [B, T]: per-step accuracy at each tick; answer [B]: per-step accuracy of the task's answer (the
    most certain tick, or the CTC decoding over all ticks); sequence [B]: 1 where the whole answer is right;
    confidence [K], correct [K]: (confidence, right or wrong) pairs for the expected calibration error.
    """

    per_tick: Tensor
    answer: Tensor
    sequence: Tensor
    confidence: Tensor
    correct: Tensor


def rng_for(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of one batch: independent streams per (seed, split, batch index)."""
    if split not in SPLITS:
        raise TaskError(f"split = {split!r}: allowed is one of {list(SPLITS)}")
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, SPLITS.index(split),
                                                         int(index)]))


class Task:
    """Base of all tasks; subclasses set ``name`` and ``shape`` and implement ``batch``, ``loss``, ``score``."""

    name: str = "task"
    shape: TaskShape

    def batch(self, split: str, index: int, batch_size: int, seed: int) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def loss(self, predictions: Tensor, certainties: Tensor, targets: Tensor) -> Tensor:
        raise NotImplementedError

    def score(self, predictions: Tensor, certainties: Tensor, targets: Tensor) -> Scores:
        raise NotImplementedError

    def check_genome(self, genome: Any) -> None:
        """Raise :class:`TaskMismatch` if ``genome`` cannot do this task (default: every genome can)."""


class ClassificationTask(Task):
    """Targets [B, P] of class indices, one per output position.

    Loss: per tick, cross-entropy averaged over positions, then the CTM tick selection (min-loss tick and
    most-certain tick). Answer: the prediction at each sample's most certain tick. Calibration: class
    probabilities averaged over ticks, one (max probability, correct) pair per position.
    """

    def per_tick_losses(self, logits: Tensor, targets: Tensor) -> Tensor:
        """[B, P, C, T] logits → [B, T] losses (override for masked losses, e.g. the maze curriculum)."""
        return per_tick_cross_entropy(logits, targets).mean(1)

    def loss(self, predictions: Tensor, certainties: Tensor, targets: Tensor) -> Tensor:
        logits = split_logits(predictions, self.shape.out_positions, self.shape.out_classes)
        return tick_selection_loss(self.per_tick_losses(logits, targets), certainties[:, 1].float())

    @torch.no_grad()
    def score(self, predictions: Tensor, certainties: Tensor, targets: Tensor) -> Scores:
        logits = split_logits(predictions, self.shape.out_positions, self.shape.out_classes)
        right = (logits.argmax(2) == targets.unsqueeze(-1)).float()  # [B, P, T]
        per_tick = right.mean(1)
        sure = certainties[:, 1].float().argmax(1)  # [B]
        at_sure = right.gather(2, sure.view(-1, 1, 1).expand(-1, right.shape[1], 1)).squeeze(2)  # [B, P]
        mean_probs = torch.softmax(logits, dim=2).mean(-1)  # [B, P, C]
        confidence, chosen = mean_probs.max(2)
        return Scores(per_tick=per_tick.cpu(), answer=at_sure.mean(1).cpu(),
                      sequence=at_sure.min(1).values.cpu(), confidence=confidence.flatten().cpu(),
                      correct=(chosen == targets).float().flatten().cpu())


@dataclass(frozen=True)
class Param:
    """One task parameter: default, type and bounds (``choices`` for strings)."""

    default: Any
    kind: type = int
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None
    required: bool = False

    def allowed(self) -> str:
        if self.choices is not None:
            return f"one of {list(self.choices)}"
        lo = "" if self.low is None else f" >= {self.low:g}"
        hi = "" if self.high is None else f" <= {self.high:g}"
        joiner = " and" if lo and hi else ""
        return f"{'an integer' if self.kind is int else 'a ' + self.kind.__name__}{lo}{joiner}{hi}"


def take_params(task: str, params: dict[str, Any], schema: dict[str, Param]) -> dict[str, Any]:
    """Check ``params`` against ``schema``; fill defaults; raise :class:`TaskError` naming the field."""
    unknown = sorted(set(params) - set(schema))
    if unknown:
        raise TaskError(f"task {task!r}: params.{unknown[0]} = {params[unknown[0]]!r} is not a parameter; "
                        f"allowed are {sorted(schema)}")
    out: dict[str, Any] = {}
    for key, p in schema.items():
        if key not in params:
            if p.required:
                raise TaskError(f"task {task!r}: params.{key} is required: {p.allowed()}")
            out[key] = p.default
            continue
        value = params[key]
        ok = isinstance(value, p.kind) and not (p.kind is not bool and isinstance(value, bool))
        if p.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if ok and p.choices is not None:
            ok = value in p.choices
        if ok and p.low is not None:
            ok = value >= p.low
        if ok and p.high is not None:
            ok = value <= p.high
        if not ok:
            raise TaskError(f"task {task!r}: params.{key} = {value!r}: allowed is {p.allowed()}")
        out[key] = value
    return out

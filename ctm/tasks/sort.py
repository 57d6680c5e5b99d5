"""Sorting: N reals from N(0, 1); the target is their argsort (ascending), emitted one index per tick.

The CTM's output at tick t is a distribution over N + 1 classes (the N indices and a CTC blank = N); the
sequence over ticks is trained with CTC (no tick selection), so a genome needs at least N ticks. The answer is
the greedy CTC decoding over all ticks (argmax per tick, merge repeats, drop blanks); the per-tick accuracy is
that decoding over ticks 1..t (how much of the order the model has emitted, correctly, by tick t).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from ctm.tasks.base import Param, Scores, Task, TaskMismatch, rng_for, take_params
from genome.cost import BackboneSpec, TaskShape

SCHEMA = {"length": Param(30, int, low=2, high=1024)}


class SortTask(Task):
    name = "sort"

    def __init__(self, length: int = 30):
        self.length = length
        self.blank = length
        self.shape = TaskShape(name="sort", backbone=BackboneSpec(kind="scalar", n_tokens=length),
                               out_positions=1, out_classes=length + 1)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> SortTask:
        return cls(**take_params("sort", params, SCHEMA))

    def check_genome(self, genome: Any) -> None:
        if genome.ticks < self.length:
            raise TaskMismatch(f"ticks = {genome.ticks}: allowed is at least the sort length {self.length} "
                               "(CTC emits at most one index per tick)")

    def batch(self, split: str, index: int, batch_size: int, seed: int) -> tuple[Tensor, Tensor]:
        values = rng_for(seed, split, index).standard_normal((batch_size, self.length)).astype(np.float32)
        return torch.from_numpy(values), torch.from_numpy(np.argsort(values, axis=1, kind="stable")).long()

    def loss(self, predictions: Tensor, certainties: Tensor, targets: Tensor) -> Tensor:
        b, _, t = predictions.shape
        logp = F.log_softmax(predictions.float(), dim=1).permute(2, 0, 1)  # [T, B, C]
        lengths_in = torch.full((b,), t, dtype=torch.long)
        lengths_out = torch.full((b,), self.length, dtype=torch.long)
        return F.ctc_loss(logp, targets, lengths_in, lengths_out, blank=self.blank, reduction="mean")

    def decode(self, predictions: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """Greedy CTC decoding prefix by prefix: (correct emissions so far [B, T], emissions so far [B, T])."""
        path = predictions.argmax(1)  # [B, T]
        previous = torch.cat([torch.full_like(path[:, :1], self.blank), path[:, :-1]], dim=1)
        emit = (path != self.blank) & (path != previous)
        emitted = emit.long().cumsum(1)
        position = (emitted - 1).clamp(0, self.length - 1)
        right = emit & (emitted <= self.length) & (targets.gather(1, position) == path)
        return right.long().cumsum(1), emitted

    @torch.no_grad()
    def score(self, predictions: Tensor, certainties: Tensor, targets: Tensor) -> Scores:
        predictions = predictions.float()
        right, emitted = self.decode(predictions, targets)
        per_tick = right.float() / self.length
        sequence = ((right[:, -1] == self.length) & (emitted[:, -1] == self.length)).float()
        path_logp = F.log_softmax(predictions, dim=1).max(1).values.sum(1)  # log-prob of the greedy path
        return Scores(per_tick=per_tick.cpu(), answer=per_tick[:, -1].cpu(), sequence=sequence.cpu(),
                      confidence=path_logp.exp().cpu(), correct=sequence.cpu())

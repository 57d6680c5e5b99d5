"""2-D mazes: predict the first R moves of the shortest route from start to goal (5 classes: up, down, left,
right, wait). Mazes are generated procedurally (``ctm.tasks.mazegen``), augmented by the eight rotations and
flips with remapped moves. Loss: the CTM tick selection over the auto-curriculum cross-entropy (per tick, only
steps up to the first wrongly predicted one plus 5 count). Fitness: per-step accuracy over all R moves at the
most certain tick; ``sequence`` is the whole route right.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from ctm.loss import curriculum_mask, per_tick_cross_entropy
from ctm.tasks import mazegen
from ctm.tasks.base import ClassificationTask, Param, TaskError, rng_for, take_params
from genome.cost import BackboneSpec, TaskShape

CURRICULUM_EXTRA = 5
SCHEMA = {
    "size": Param(15, int, low=5, high=255),
    "route_length": Param(100, int, low=1, high=10_000),
    "conv_layers": Param(2, int, low=1, high=8),
    "stride": Param(1, int, low=1, high=8),
    "augment": Param(True, bool),
}


class MazeTask(ClassificationTask):
    name = "maze"

    def __init__(self, *, size: int = 15, route_length: int = 100, conv_layers: int = 2, stride: int = 1,
                 augment: bool = True):
        if size % 2 == 0:
            raise TaskError(f"task 'maze': params.size = {size}: allowed is an odd integer >= 5 (image pixels)")
        self.size, self.route_length, self.augment = size, route_length, augment
        side = size
        for i in range(conv_layers):
            s = stride if i == 0 else 1
            side = (side - 1) // s + 1
        backbone = BackboneSpec(kind="conv", n_tokens=side * side, in_channels=3, height=size, width=size,
                                conv_layers=conv_layers, stride=stride)
        self.shape = TaskShape(name="maze", backbone=backbone, out_positions=route_length,
                               out_classes=len(mazegen.MOVES))

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> MazeTask:
        return cls(**take_params("maze", params, SCHEMA))

    def batch(self, split: str, index: int, batch_size: int, seed: int) -> tuple[Tensor, Tensor]:
        rng = rng_for(seed, split, index)
        images = np.empty((batch_size, 3, self.size, self.size), dtype=np.float32)
        moves = np.empty((batch_size, self.route_length), dtype=np.int64)
        for b in range(batch_size):
            images[b], moves[b] = mazegen.sample(self.size, self.route_length, rng, self.augment)
        return torch.from_numpy(images), torch.from_numpy(moves)

    def per_tick_losses(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Cross-entropy over the curriculum steps only, averaged over those steps: [B, T]."""
        mask = curriculum_mask(logits, targets, CURRICULUM_EXTRA).float()
        losses = per_tick_cross_entropy(logits, targets)
        return (losses * mask).sum(1) / mask.sum(1)

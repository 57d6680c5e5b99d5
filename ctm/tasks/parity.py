"""Cumulative parity: x ∈ {−1, +1}^L; target k = (number of −1 among x_1..x_k) mod 2, for every k.

Inputs are token ids [B, L] (1 where x = −1, 0 where x = +1) for an embedding backbone with 1-D positions (the
genome's ``positional_embedding``: the paper's rotational embedding by default); outputs are L positions × 2
classes. Every sample is fresh random data from the batch's generator.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ctm.tasks.base import ClassificationTask, Param, rng_for, take_params
from genome.cost import BackboneSpec, TaskShape

SCHEMA = {"length": Param(64, int, low=1, high=4096)}


class ParityTask(ClassificationTask):
    name = "parity"

    def __init__(self, length: int = 64):
        self.length = length
        self.shape = TaskShape(name="parity", backbone=BackboneSpec(kind="embedding", n_tokens=length, vocab=2),
                               out_positions=length, out_classes=2)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> ParityTask:
        return cls(**take_params("parity", params, SCHEMA))

    def batch(self, split: str, index: int, batch_size: int, seed: int) -> tuple[Tensor, Tensor]:
        rng = rng_for(seed, split, index)
        minus = rng.integers(0, 2, size=(batch_size, self.length))
        targets = minus.cumsum(axis=1) % 2
        return torch.from_numpy(minus).long(), torch.from_numpy(targets).long()

"""Classification from a user's ``.npz`` file: ``inputs`` and integer ``labels`` (optionally ``inputs_val`` and
``labels_val``; otherwise a fixed ``val_fraction`` of the rows is held out, chosen by ``split_seed``).

- tabular inputs [N, F]: every feature is a token (``scalar`` backbone, 1-D positions);
- image inputs [N, H, W] (one channel) or [N, C, H, W] (``channels_last: true`` for [N, H, W, C]): ``conv``
  backbone; ``stride: 0`` picks the smallest power of two that leaves at most 256 tokens.
Inputs are standardised with the training rows' statistics (per feature, or per channel for images).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ctm.tasks.base import ClassificationTask, Param, TaskError, rng_for, take_params
from genome.cost import BackboneSpec, TaskShape

MAX_AUTO_TOKENS = 256
SCHEMA = {
    "path": Param(None, str, required=True),
    "kind": Param("auto", str, choices=("auto", "tabular", "image")),
    "val_fraction": Param(0.2, float, low=0.0, high=0.9),
    "split_seed": Param(0, int, low=0),
    "channels_last": Param(False, bool),
    "conv_layers": Param(2, int, low=1, high=8),
    "stride": Param(0, int, low=0, high=16),
    "classes": Param(0, int, low=0),
}


def _conv_side(side: int, stride: int, layers: int) -> int:
    for i in range(layers):
        side = (side - 1) // (stride if i == 0 else 1) + 1
    return side


class ArrayTask(ClassificationTask):
    name = "array"

    def __init__(self, *, path: str, kind: str = "auto", val_fraction: float = 0.2, split_seed: int = 0,
                 channels_last: bool = False, conv_layers: int = 2, stride: int = 0, classes: int = 0):
        x, y, x_val, y_val = self._load(path)
        if channels_last and x.ndim == 4:
            x, x_val = (None if a is None else np.moveaxis(a, -1, 1) for a in (x, x_val))
        if kind == "auto":
            kind = "tabular" if x.ndim == 2 else "image"
        if (kind == "tabular" and x.ndim != 2) or (kind == "image" and x.ndim not in (3, 4)):
            raise TaskError(f"task 'array': params.kind = {kind!r} does not fit inputs of shape {x.shape}: "
                            "allowed is tabular for [N, F], image for [N, H, W] or [N, C, H, W]")
        if x_val is None:
            order = np.random.default_rng(split_seed).permutation(len(x))
            n_val = round(val_fraction * len(x))
            if n_val < 1 or n_val >= len(x):
                raise TaskError(f"task 'array': params.val_fraction = {val_fraction} leaves {n_val} of {len(x)} "
                                "rows for validation: allowed is a fraction leaving at least one row on each side")
            x, y, x_val, y_val = x[order[n_val:]], y[order[n_val:]], x[order[:n_val]], y[order[:n_val]]
        if kind == "image" and x.ndim == 3:
            x, x_val = x[:, None], x_val[:, None]
        n_classes = classes or int(max(y.max(), y_val.max())) + 1
        if n_classes < 2 or y.min() < 0 or max(y.max(), y_val.max()) >= n_classes:
            raise TaskError(f"task 'array': labels span [{min(y.min(), y_val.min())}, {max(y.max(), y_val.max())}] "
                            f"with params.classes = {classes}: allowed are labels in [0, classes) and classes >= 2")
        axes = (0,) if kind == "tabular" else (0, 2, 3)
        mean = x.mean(axis=axes, keepdims=True)
        std = x.std(axis=axes, keepdims=True) + 1e-6
        self.train_x = torch.from_numpy(((x - mean) / std).astype(np.float32))
        self.val_x = torch.from_numpy(((x_val - mean) / std).astype(np.float32))
        self.train_y = torch.from_numpy(y.astype(np.int64)).unsqueeze(1)
        self.val_y = torch.from_numpy(y_val.astype(np.int64)).unsqueeze(1)
        if kind == "tabular":
            backbone = BackboneSpec(kind="scalar", n_tokens=x.shape[1])
        else:
            _, channels, height, width = x.shape
            if stride == 0:
                stride = 1
                while _conv_side(height, stride, conv_layers) * _conv_side(width, stride, conv_layers) \
                        > MAX_AUTO_TOKENS:
                    stride *= 2
            tokens = _conv_side(height, stride, conv_layers) * _conv_side(width, stride, conv_layers)
            backbone = BackboneSpec(kind="conv", n_tokens=tokens, in_channels=channels, height=height,
                                    width=width, conv_layers=conv_layers, stride=stride)
        self.shape = TaskShape(name="array", backbone=backbone, out_positions=1, out_classes=n_classes)

    @staticmethod
    def _load(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        if not os.path.isfile(path):
            raise TaskError(f"task 'array': params.path = {path!r} is not a file: allowed is an .npz file")
        with np.load(path, allow_pickle=False) as data:
            keys = set(data.files)
            if not {"inputs", "labels"} <= keys:
                raise TaskError(f"task 'array': params.path = {path!r} holds arrays {sorted(keys)}: allowed is "
                                "an .npz with 'inputs' and 'labels' (optionally 'inputs_val', 'labels_val')")
            x, y = data["inputs"].astype(np.float32), data["labels"]
            has_val = {"inputs_val", "labels_val"} <= keys
            x_val = data["inputs_val"].astype(np.float32) if has_val else None
            y_val = data["labels_val"] if has_val else None
        if not np.issubdtype(y.dtype, np.integer) or y.ndim != 1 or len(y) != len(x):
            raise TaskError(f"task 'array': labels of dtype {y.dtype} and shape {y.shape} for {len(x)} inputs: "
                            "allowed is one integer label per input")
        return x, y, x_val, y_val

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> ArrayTask:
        return cls(**take_params("array", params, SCHEMA))

    def batch(self, split: str, index: int, batch_size: int, seed: int) -> tuple[Tensor, Tensor]:
        """Train: random rows (from the batch's generator). Val/probe: block ``index`` of the held-out rows."""
        if split == "train":
            n = len(self.train_y)
            rows = torch.from_numpy(rng_for(seed, split, index).choice(n, size=batch_size,
                                                                       replace=batch_size > n))
            return self.train_x[rows], self.train_y[rows]
        rng_for(seed, split, index)  # validates the split name
        start = index * batch_size
        return self.val_x[start:start + batch_size], self.val_y[start:start + batch_size]

"""Per-axis index maps from a parent tensor to a child tensor, and the one routine that applies them.

Every inherited tensor is described axis by axis: along axis ``a`` the child's index ``j`` takes the parent's
index ``src[j]`` (or is new when ``src[j] = -1``). An element of the child tensor is *inherited* when every axis
maps it into the parent; otherwise it is *new* and gets either the child's own initial value (``fill="init"``)
or zero (``fill="zero"``, used where a zero makes the new entry invisible to the function, e.g. the NLM weights
of padded memory slots or the projection columns of new synchronisation pairs). A new element is zero only when
every axis that makes it new says ``"zero"``: a new neuron's whole NLM is freshly initialised even along a padded
memory axis.

Two more things a map can say, both for Net2Net-style widening by replication (Chen et al., 2016):
- ``scale``: a factor per child index on the copied value (the 1/√k on the attention query rows);
- ``split``: this is an *input* axis whose replicated indices carry equal values, so their weights must sum to
  the parent's weight. Each copy gets a random positive share (drawn per element from the tensor's own
  generator, summing exactly to one per group): the function is unchanged while the copies' gradients differ,
  which breaks the symmetry that would otherwise keep replicas identical through training.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

Fill = Literal["init", "zero"]


@dataclass(frozen=True)
class AxisMap:
    """Where each child index along one axis takes its value from (``-1``: nowhere, the entry is new)."""

    src: np.ndarray
    fill: Fill = "init"
    scale: np.ndarray | None = None
    split: bool = False

    @property
    def size(self) -> int:
        return len(self.src)

    @property
    def is_identity(self) -> bool:
        return self.scale is None and bool(np.array_equal(self.src, np.arange(self.size)))

    def but(self, **changes: object) -> AxisMap:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def identity(n: int) -> AxisMap:
    return AxisMap(np.arange(n, dtype=np.int64))


def overlap(n_parent: int, n_child: int, fill: Fill = "init") -> AxisMap:
    """The first min(n_parent, n_child) indices copied; the rest (when widening) new."""
    src = np.arange(n_child, dtype=np.int64)
    src[src >= n_parent] = -1
    return AxisMap(src, fill=fill)


def recent(m_parent: int, m_child: int, fill: Fill) -> AxisMap:
    """A FIFO axis whose newest entry is last (the memory axis of A): align the newest ends, so truncation keeps
    the most recent ``m_child`` entries and padding adds new entries on the oldest side (the front)."""
    src = np.arange(m_child, dtype=np.int64) + (m_parent - m_child)
    src[src < 0] = -1
    return AxisMap(src, fill=fill)


def replicate(n_parent: int, n_child: int) -> AxisMap:
    """Round-robin replication for ``n_child = k · n_parent``: index j copies parent index j mod n_parent, so every
    parent index appears exactly k times (which is what keeps a LayerNorm over this axis unchanged)."""
    if n_child % n_parent:
        raise ValueError(f"replication needs a multiple: {n_child} is not a multiple of {n_parent}")
    return AxisMap(np.arange(n_child, dtype=np.int64) % n_parent)


def replicate_heads(n_parent: int, n_child: int, heads: int) -> AxisMap:
    """Replication that respects attention heads: child head h (width k · n_parent/heads) holds k copies of each
    dimension of parent head h, in order."""
    k = n_child // n_parent
    if n_child != k * n_parent or n_parent % heads:
        raise ValueError(f"head-wise replication needs n_child = k·n_parent and heads | n_parent: "
                         f"{n_parent} → {n_child}, heads = {heads}")
    width_p, width_c = n_parent // heads, n_child // heads
    j = np.arange(n_child, dtype=np.int64)
    return AxisMap((j // width_c) * width_p + (j % width_c) % width_p)


def halves(inner: AxisMap, n_parent_half: int) -> AxisMap:
    """The axis of a layer feeding a GLU: [value half | gate half], each half mapped by ``inner``."""
    gate = np.where(inner.src >= 0, inner.src + n_parent_half, -1)
    scale = None if inner.scale is None else np.concatenate([inner.scale, inner.scale])
    return AxisMap(np.concatenate([inner.src, gate]), fill=inner.fill, scale=scale, split=inner.split)


def concat(parts: list[tuple[AxisMap, int]]) -> AxisMap:
    """Blocks laid end to end (e.g. the synapse input [o | z]); each part is (map, offset of its block in the
    parent). Fill and split must agree across parts only where they matter; the first part's fill is used."""
    srcs, scales = [], []
    for m, offset in parts:
        srcs.append(np.where(m.src >= 0, m.src + offset, -1))
        scales.append(m.scale if m.scale is not None else np.ones(m.size))
    any_scale = any(m.scale is not None for m, _ in parts)
    return AxisMap(np.concatenate(srcs), fill=parts[0][0].fill, scale=np.concatenate(scales) if any_scale else None,
                   split=any(m.split for m, _ in parts))


def all_new(n: int, fill: Fill) -> AxisMap:
    return AxisMap(np.full(n, -1, dtype=np.int64), fill=fill)


def _view(vector: Tensor, axis: int, ndim: int) -> Tensor:
    shape = [1] * ndim
    shape[axis] = -1
    return vector.view(shape)


def _split_shares(shape: tuple[int, ...], axis: int, src: Tensor, n_parent: int, generator: torch.Generator
                  ) -> Tensor:
    """Random positive shares along ``axis`` that sum to one over every group of indices with the same source."""
    u = torch.rand(shape, generator=generator, dtype=torch.float64) + 0.5
    sums_shape = list(shape)
    sums_shape[axis] = n_parent
    sums = torch.zeros(sums_shape, dtype=torch.float64).index_add_(axis, src, u)
    return u / sums.index_select(axis, src)


def apply_maps(parent: Tensor, child: Tensor, maps: list[AxisMap], *, generator: torch.Generator
               ) -> tuple[Tensor, int]:
    """The child's tensor: parent values where every axis maps, the child's init or zero elsewhere.

    Returns (tensor, number of inherited elements). Raises ``ValueError`` when the maps do not fit the shapes.
    """
    if not (len(maps) == child.dim() == parent.dim()):
        raise ValueError(f"{len(maps)} axis maps for a child of shape {tuple(child.shape)} and a parent of shape "
                         f"{tuple(parent.shape)}")
    ndim = child.dim()
    values = parent.detach().to("cpu")
    inherited = torch.ones((1,) * ndim, dtype=torch.bool)
    zero_ok = torch.ones((1,) * ndim, dtype=torch.bool)
    for axis, m in enumerate(maps):
        if m.size != child.shape[axis] or (m.src.size and m.src.max() >= parent.shape[axis]):
            raise ValueError(f"axis {axis}: a map of {m.size} indices into {parent.shape[axis]} does not fit a child "
                             f"of shape {tuple(child.shape)} and a parent of shape {tuple(parent.shape)}")
        valid = torch.from_numpy(m.src >= 0)
        values = values.index_select(axis, torch.from_numpy(np.maximum(m.src, 0)))
        inherited = inherited & _view(valid, axis, ndim)
        zero_ok = zero_ok & _view(valid | (m.fill == "zero"), axis, ndim)
    values = values.to(child.dtype)
    if values.is_floating_point():
        factor = None
        for axis, m in enumerate(maps):
            if m.scale is not None:
                f = _view(torch.from_numpy(np.asarray(m.scale, dtype=np.float64)), axis, ndim)
                factor = f if factor is None else factor * f
            if m.split and len(set(m.src[m.src >= 0].tolist())) < int((m.src >= 0).sum()):
                src = torch.from_numpy(np.maximum(m.src, 0))
                share = _split_shares(tuple(child.shape), axis, src, parent.shape[axis], generator)
                factor = share if factor is None else factor * share
        if factor is not None:
            values = (values.double() * factor).to(child.dtype)
    inherited = inherited.expand(child.shape)
    new_value = torch.where(zero_ok.expand(child.shape), torch.zeros_like(child), child.detach().cpu())
    return torch.where(inherited, values, new_value).contiguous(), int(inherited.sum())


def generator_for(seed: int, name: str) -> torch.Generator:
    """A generator of its own for one tensor, from (seed, tensor name): the result never depends on the order in
    which tensors are mapped, nor on the caller's global RNG."""
    import hashlib

    digest = hashlib.sha256(f"ctm.inherit:{seed}:{name}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") % (2**63))


def sqrt_inverse(k: int, n: int) -> np.ndarray:
    """``n`` copies of 1/√k (the attention query scale after widening the head width k times)."""
    return np.full(n, 1.0 / math.sqrt(k))

"""Fitted scikit-learn tree ensembles as flat arrays, evaluated for all trees at once.

scikit-learn predicts a ``HistGradientBoostingRegressor`` tree by tree in Python (≈3 ms for a few rows of a
300-tree model), which made a simulated campaign spend most of its time in the surrogate. :class:`FlatEnsemble`
copies the fitted trees into padded arrays [trees, nodes] and walks every tree in lock step, one numpy step per
level: the same splits (``x <= threshold`` goes left; trees of ``ExtraTreesRegressor`` compare float32 inputs,
as scikit-learn does), the same leaves, the same sum — equal to scikit-learn's ``predict`` (checked in the
tests) in a fraction of the time. Inputs must be finite (the bench's features always are).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class FlatEnsemble:
    feature: np.ndarray  # [T, N] int
    threshold: np.ndarray  # [T, N] float64
    left: np.ndarray  # [T, N] int (self at leaves)
    right: np.ndarray  # [T, N] int (self at leaves)
    value: np.ndarray  # [T, N] float64
    depth: int
    baseline: float
    mean: bool  # True: the trees' mean (forests); False: baseline + their sum (boosting)
    float32: bool  # compare float32 inputs (scikit-learn's DecisionTree casts X to float32)

    @classmethod
    def of(cls, model: Any) -> FlatEnsemble:
        """From a fitted ``HistGradientBoostingRegressor`` or ``ExtraTreesRegressor``/``RandomForestRegressor``."""
        if hasattr(model, "_predictors"):
            trees = [_hist_tree(p[0].nodes) for p in model._predictors]
            baseline = float(np.ravel(model._baseline_prediction)[0])
            return cls._stack(trees, baseline=baseline, mean=False, float32=False)
        if hasattr(model, "estimators_"):
            trees = [_cart_tree(e.tree_) for e in model.estimators_]
            return cls._stack(trees, baseline=0.0, mean=True, float32=True)
        raise TypeError(f"{type(model).__name__}: allowed is a fitted scikit-learn tree ensemble")

    @classmethod
    def _stack(cls, trees: list[tuple[np.ndarray, ...]], *, baseline: float, mean: bool, float32: bool
               ) -> FlatEnsemble:
        width = max(len(t[0]) for t in trees)
        out = []
        for k in range(4):
            arr = np.zeros((len(trees), width), dtype=np.int64 if k != 1 else np.float64)
            for i, t in enumerate(trees):
                arr[i, :len(t[k])] = t[k]
            out.append(arr)
        value = np.zeros((len(trees), width))
        for i, t in enumerate(trees):
            value[i, :len(t[4])] = t[4]
        depth = max(int(t[5]) for t in trees)
        return cls(out[0], out[1], out[2], out[3], value, depth, baseline, mean, float32)

    def leaves(self, x: np.ndarray) -> np.ndarray:
        """[T, n]: the leaf of every tree for every row of ``x`` [n, d]."""
        x = np.asarray(x, dtype=np.float64)
        if self.float32:
            x = x.astype(np.float32).astype(np.float64)
        n_trees, width = self.feature.shape
        base = (np.arange(n_trees) * width)[:, None]  # flat index of each tree's root
        rows = (np.arange(x.shape[0]) * x.shape[1])[None, :]
        feature, threshold = self.feature.ravel(), self.threshold.ravel()
        left, right = (self.left + base).ravel(), (self.right + base).ravel()  # children as flat indices
        xs = x.ravel()
        node = np.repeat(base, x.shape[0], axis=1)  # [T, n] flat node indices
        for _ in range(self.depth):
            go_left = xs.take(rows + feature.take(node)) <= threshold.take(node)
            node = np.where(go_left, left.take(node), right.take(node))
        return node - base

    def per_tree(self, x: np.ndarray) -> np.ndarray:
        """[T, n]: each tree's prediction."""
        return self.value[np.arange(self.feature.shape[0])[:, None], self.leaves(x)]

    def predict(self, x: np.ndarray) -> np.ndarray:
        trees = self.per_tree(x)
        return trees.mean(0) if self.mean else self.baseline + trees.sum(0)


def _depth(left: np.ndarray, right: np.ndarray) -> int:
    depth, frontier = 0, [0]
    while True:
        nxt = [c for n in frontier for c in (left[n], right[n]) if c != n]
        if not nxt:
            return depth
        depth, frontier = depth + 1, nxt


def _hist_tree(nodes: np.ndarray) -> tuple[np.ndarray, ...]:
    if np.any(nodes["is_categorical"]):
        raise TypeError("categorical splits are not supported by FlatEnsemble")
    n = np.arange(len(nodes))
    leaf = nodes["is_leaf"].astype(bool)
    left = np.where(leaf, n, nodes["left"]).astype(np.int64)
    right = np.where(leaf, n, nodes["right"]).astype(np.int64)
    return (nodes["feature_idx"].astype(np.int64), nodes["num_threshold"].astype(np.float64), left, right,
            nodes["value"].astype(np.float64), _depth(left, right))


def _cart_tree(tree: Any) -> tuple[np.ndarray, ...]:
    n = np.arange(tree.node_count)
    leaf = tree.children_left == -1
    left = np.where(leaf, n, tree.children_left).astype(np.int64)
    right = np.where(leaf, n, tree.children_right).astype(np.int64)
    feature = np.where(leaf, 0, tree.feature).astype(np.int64)
    return (feature, tree.threshold.astype(np.float64), left, right, tree.value[:, 0, 0].astype(np.float64),
            _depth(left, right))


@dataclass(frozen=True)
class StackedEnsembles:
    """Several fitted ensembles walked as one (one pass over the levels for every model): ``predict(x)`` gives
    each model's prediction by name, ``per_tree(x)`` each model's trees' predictions."""

    names: tuple[str, ...]
    bounds: tuple[tuple[int, int], ...]
    parts: tuple[FlatEnsemble, ...]
    joint: FlatEnsemble

    @classmethod
    def of(cls, models: dict[str, Any]) -> StackedEnsembles:
        parts = tuple(FlatEnsemble.of(m) for m in models.values())
        if len({p.float32 for p in parts}) > 1:
            raise TypeError("stack boosting and forest models apart: they compare inputs at different precisions")
        width = max(p.feature.shape[1] for p in parts)

        def pad(a: np.ndarray) -> np.ndarray:
            out = np.zeros((a.shape[0], width), dtype=a.dtype)
            out[:, :a.shape[1]] = a
            return out
        joint = FlatEnsemble(*(np.concatenate([pad(getattr(p, f)) for p in parts])
                               for f in ("feature", "threshold", "left", "right", "value")),
                             depth=max(p.depth for p in parts), baseline=0.0, mean=False, float32=parts[0].float32)
        bounds, start = [], 0
        for p in parts:
            bounds.append((start, start + p.feature.shape[0]))
            start += p.feature.shape[0]
        return cls(tuple(models), tuple(bounds), parts, joint)

    def per_tree(self, x: np.ndarray) -> dict[str, np.ndarray]:
        trees = self.joint.per_tree(x)
        return {name: trees[a:b] for name, (a, b) in zip(self.names, self.bounds, strict=True)}

    def predict(self, x: np.ndarray, per_tree: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Each model's prediction (from ``per_tree``, this method's per-tree output for ``x``, when given)."""
        out = {}
        for (name, trees), part in zip((per_tree or self.per_tree(x)).items(), self.parts, strict=True):
            out[name] = trees.mean(0) if part.mean else part.baseline + trees.sum(0)
        return out

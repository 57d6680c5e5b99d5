"""Choice of the neuron pairs (i_k, j_k) whose decayed inner products form a synchronisation vector S.

Pairs are chosen once, when the model is built, from a seed (never from a global RNG), and no unordered pair
{i, j} appears twice. Strategies (``sync_select`` gene; n = n_sync_out or n_sync_action):

- ``first-last`` ("dense"): the upper triangle, diagonal included, of the first n neurons (output) or of the
  last n neurons (action): n(n+1)/2 pairs.
- ``random`` ("semi-dense"): n distinct random "left" neurons L and n distinct random "right" neurons R; the
  pairs are (L[a], R[b]) for a <= b: n(n+1)/2 pairs. Neurons drawn in both L and R are placed at the same
  position in both, which is what guarantees that no unordered pair repeats (a neuron c at L[p] = R[p] makes
  the self-pair at a = b = p, and for two such neurons x, y only one of {x, y} as (L[a], R[b]) with a <= b
  exists).
- ``random-pairing`` ("sparse"): n explicit pairs; the first ``n_self`` are self-pairs (i, i) of distinct
  neurons, the rest are distinct pairs i < j drawn without replacement.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

Pairs = tuple[np.ndarray, np.ndarray]

_ENUMERATE_LIMIT = 2_000_000  # enumerate all i < j pairs below this many; rejection-sample above it


def triangle(neurons_left: ArrayLike, neurons_right: ArrayLike) -> Pairs:
    """The pairs (L[a], R[b]) for a <= b of a triangle strategy over n left and n right neurons."""
    left, right = np.asarray(neurons_left, dtype=np.int64), np.asarray(neurons_right, dtype=np.int64)
    a, b = np.triu_indices(len(left))
    return left[a], right[b]


def triangle_lists(left: np.ndarray, right: np.ndarray, n: int) -> Pairs:
    """(L, R) of a triangle strategy from its flat pair buffers (the diagonal entries (a, a) hold L[a], R[a]):
    the inverse of :func:`triangle`."""
    a, b = np.triu_indices(n)
    if len(left) != len(a):
        raise ValueError(f"{len(left)} pairs do not form the triangle of n = {n} neurons ({len(a)} pairs)")
    diagonal = np.flatnonzero(a == b)
    return left[diagonal].astype(np.int64), right[diagonal].astype(np.int64)


def aligned_right(left: ArrayLike, right: ArrayLike) -> np.ndarray:
    """Reorder ``right`` so that each neuron also in ``left`` sits at its index in ``left`` (the others keep
    their order): what makes a triangle over (L, R) free of repeated unordered pairs."""
    position_in_left = {int(v): p for p, v in enumerate(np.asarray(left))}
    out = np.full(len(right), -1, dtype=np.int64)
    rest = []
    for v in np.asarray(right):
        p = position_in_left.get(int(v))
        if p is None:
            rest.append(int(v))
        else:
            out[p] = int(v)
    out[out < 0] = np.asarray(rest, dtype=np.int64)
    return out


def _distinct_offdiagonal(rng: np.random.Generator, d: int, n: int) -> Pairs:
    """``n`` distinct pairs i < j among d neurons, uniformly without replacement, in random order."""
    total = d * (d - 1) // 2
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if total <= _ENUMERATE_LIMIT or 2 * n > total:
        i, j = np.triu_indices(d, k=1)
        pick = rng.permutation(total)[:n]
        return i[pick].astype(np.int64), j[pick].astype(np.int64)
    chosen: dict[tuple[int, int], None] = {}
    while len(chosen) < n:
        draw = rng.integers(0, d, size=(2 * (n - len(chosen)) + 8, 2))
        for x, y in draw:
            if x != y:
                chosen.setdefault((int(min(x, y)), int(max(x, y))), None)
                if len(chosen) == n:
                    break
    arr = np.asarray(list(chosen), dtype=np.int64)
    return arr[:, 0], arr[:, 1]


def select_pairs(strategy: str, d_model: int, n: int, *, role: str, n_self: int = 0,
                 rng: np.random.Generator) -> Pairs:
    """Pairs (left indices, right indices) for one synchronisation (``role`` is ``"out"`` or ``"action"``)."""
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if strategy == "first-last":
        neurons = np.arange(n) if role == "out" else np.arange(d_model - n, d_model)
        return triangle(neurons, neurons)
    if strategy == "random":
        left = rng.permutation(d_model)[:n]
        right = aligned_right(left, rng.permutation(d_model)[:n])
        return triangle(left, right)
    if strategy == "random-pairing":
        n_self = min(n_self, n)
        self_neurons = rng.permutation(d_model)[:n_self].astype(np.int64)
        i, j = _distinct_offdiagonal(rng, d_model, n - n_self)
        return np.concatenate([self_neurons, i]), np.concatenate([self_neurons, j])
    raise ValueError(f"sync_select = {strategy!r}: allowed is one of ['first-last', 'random', 'random-pairing']")


def pair_count(strategy: str, n: int) -> int:
    """Length of S for ``n`` neurons or pairs (mirrors ``genome.cost.sync_size``)."""
    return n if strategy == "random-pairing" else n * (n + 1) // 2

"""Which synchronisation pairs a child keeps from its parent.

Pairs are buffers chosen at build time from the seed, so a child built with its own seed would share no pair
with its parent. Rule (our design): with the same ``sync_select`` strategy, the child *takes the parent's pairs
first*, then fills up with its own fresh ones, and keeps the strategy's invariants (no unordered pair twice):

- ``random`` ("semi-dense", the upper triangle over n left neurons L and n right neurons R): the child keeps
  the parent's positions (L_p[a], R_p[a]) in order, as long as both neurons exist in the child, up to its own n;
  new positions take neurons from the child's own draw that are in neither kept list (aligned among themselves
  as ``ctm.pairs`` does). The triangle over the kept positions is exactly the parent's triangle over them, so
  every parent pair among kept positions is kept.
- ``random-pairing`` ("sparse"): the parent's self-pairs (i, i) first, then its other pairs, each group in the
  parent's order and only where both neurons exist in the child, up to the child's counts; the rest are the
  child's own pairs not already present.
- ``first-last`` ("dense") pairs are fixed by n and D: the child uses its own.
- A different strategy: the child uses its own pairs.

Then every child pair slot is matched to a parent slot by neuron identity: first pairs of neurons the parent
has at the same index, then (for neurons made by replication, see ``ctm.inherit.rules``) through the neuron map;
each parent slot is used once. A matched slot keeps the parent's decay θ and its projection column.
"""

from __future__ import annotations

import numpy as np

from ctm.pairs import Pairs, aligned_right, triangle, triangle_lists


def _stream(first: np.ndarray, d: int, rng: np.random.Generator) -> list[int]:
    """``first`` (the child's own draw), then every other neuron in a seeded random order."""
    seen = dict.fromkeys(int(v) for v in first)
    for v in rng.permutation(d):
        seen.setdefault(int(v), None)
    return list(seen)


def keep_random(parent: Pairs, own: Pairs, *, n_parent: int, n_child: int, d_child: int,
                rng: np.random.Generator) -> Pairs:
    """The child's ``random`` pairs, keeping the parent's positions first (see the module docstring)."""
    lp, rp = triangle_lists(*parent, n_parent)
    lo, ro = triangle_lists(*own, n_child)
    kept = [(int(x), int(y)) for x, y in zip(lp, rp, strict=True) if x < d_child and y < d_child][:n_child]
    stream_left, stream_right = _stream(lo, d_child, rng), _stream(ro, d_child, rng)
    while True:
        used = {x for x, _ in kept} | {y for _, y in kept}
        need = n_child - len(kept)
        new_left = [v for v in stream_left if v not in used][:need]
        new_right = [v for v in stream_right if v not in used][:need]
        if len(new_left) == need:  # both streams hold every neuron, so both lists are complete together
            break
        kept.pop()  # too few free neurons for the new positions: give up the last kept position
    left = [x for x, _ in kept] + new_left
    right = [y for _, y in kept] + [int(v) for v in aligned_right(new_left, new_right)]
    return triangle(left, right)


def keep_random_pairing(parent: Pairs, own: Pairs, *, n_child: int, d_child: int) -> Pairs:
    """The child's ``random-pairing`` pairs: the parent's self-pairs, then its other pairs, then its own."""
    pl, pr = parent
    ol, orr = own
    n_self = int(np.sum(ol == orr))
    parent_self = [int(i) for i, j in zip(pl, pr, strict=True) if i == j and i < d_child]
    parent_other = [(int(i), int(j)) for i, j in zip(pl, pr, strict=True) if i != j and max(i, j) < d_child]
    self_kept = parent_self[:n_self]
    self_new = [int(i) for i, j in zip(ol, orr, strict=True) if i == j and int(i) not in set(self_kept)]
    selves = self_kept + self_new[:n_self - len(self_kept)]
    other_kept = parent_other[:n_child - n_self]
    present = {(min(i, j), max(i, j)) for i, j in other_kept}
    other_new = [(int(i), int(j)) for i, j in zip(ol, orr, strict=True)
                 if i != j and (min(i, j), max(i, j)) not in present]
    others = other_kept + other_new[:n_child - n_self - len(other_kept)]
    left = np.asarray(selves + [i for i, _ in others], dtype=np.int64)
    right = np.asarray(selves + [j for _, j in others], dtype=np.int64)
    return left, right


def match_slots(child: Pairs, parent: Pairs, neuron_src: np.ndarray) -> np.ndarray:
    """For every child pair slot, the parent slot whose pair it computes, or -1 (a new pair).

    ``neuron_src[j]`` is the parent neuron whose values child neuron j starts from (-1: a new neuron). A parent
    slot is used at most once; pairs of neurons at their own index are matched before replicated ones.
    """
    where = {(min(int(i), int(j)), max(int(i), int(j))): s for s, (i, j) in enumerate(zip(*parent, strict=True))}
    src = np.full(len(child[0]), -1, dtype=np.int64)
    used: set[int] = set()
    for same_index in (True, False):
        for s, (i, j) in enumerate(zip(*child, strict=True)):
            if src[s] >= 0:
                continue
            gi, gj = int(neuron_src[i]), int(neuron_src[j])
            if gi < 0 or gj < 0 or (same_index and (gi != i or gj != j)):
                continue
            slot = where.get((min(gi, gj), max(gi, gj)))
            if slot is not None and slot not in used:
                src[s] = slot
                used.add(slot)
    return src


def child_pairs(strategy_parent: str, strategy_child: str, parent: Pairs | None, own: Pairs, *,
                n_parent: int, n_child: int, d_child: int, rng: np.random.Generator) -> tuple[Pairs, str]:
    """The child's pair buffers and a note on how they were chosen."""
    if parent is None or len(parent[0]) == 0:
        return own, "own pairs (the parent has none)"
    if strategy_parent != strategy_child:
        return own, f"own pairs (strategy {strategy_parent} → {strategy_child})"
    if strategy_child == "random":
        return keep_random(parent, own, n_parent=n_parent, n_child=n_child, d_child=d_child, rng=rng), \
            "parent's pairs first"
    if strategy_child == "random-pairing":
        return keep_random_pairing(parent, own, n_child=n_child, d_child=d_child), "parent's pairs first"
    return own, "own pairs (first-last is fixed by n and D)"


def assert_distinct(pairs: Pairs) -> None:
    """Raise ``ValueError`` if an unordered pair repeats (a check for tests and small models)."""
    keys = {(min(int(i), int(j)), max(int(i), int(j))) for i, j in zip(*pairs, strict=True)}
    if len(keys) != len(pairs[0]):
        raise ValueError(f"{len(pairs[0]) - len(keys)} repeated pairs")

"""The building blocks of weight inheritance: axis maps and the choice of synchronisation pairs kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ctm.inherit.axes import (
    AxisMap,
    apply_maps,
    concat,
    generator_for,
    halves,
    overlap,
    recent,
    replicate,
    replicate_heads,
)
from ctm.inherit.pairs import (
    assert_distinct,
    keep_random,
    keep_random_pairing,
    match_slots,
    triangle_lists,
)
from ctm.pairs import select_pairs


def test_recent_keeps_the_newest_end_of_a_fifo_axis() -> None:
    assert recent(5, 3, "init").src.tolist() == [2, 3, 4]  # truncation: the 3 most recent (last) entries
    assert recent(3, 5, "zero").src.tolist() == [-1, -1, 0, 1, 2]  # padding on the oldest side
    assert recent(4, 4, "init").is_identity


def test_overlap_halves_and_concat() -> None:
    assert overlap(3, 5).src.tolist() == [0, 1, 2, -1, -1] and overlap(5, 3).src.tolist() == [0, 1, 2]
    assert halves(overlap(2, 3), 2).src.tolist() == [0, 1, -1, 2, 3, -1]  # [value | gate] of a GLU layer
    assert concat([(overlap(2, 3), 0), (overlap(4, 2), 2)]).src.tolist() == [0, 1, -1, 2, 3]


def test_replication_uses_every_parent_index_equally_and_keeps_heads() -> None:
    assert replicate(3, 6).src.tolist() == [0, 1, 2, 0, 1, 2]
    with pytest.raises(ValueError, match="multiple"):
        replicate(3, 7)
    # 2 heads of width 2 → 2 heads of width 4: head 0 holds parent dims 0, 1 twice, head 1 holds 2, 3 twice
    assert replicate_heads(4, 8, 2).src.tolist() == [0, 1, 0, 1, 2, 3, 2, 3]


def test_apply_maps_fills_new_entries_with_init_or_zero() -> None:
    parent = torch.arange(6.0).reshape(2, 3) + 1
    child = torch.full((3, 4), -7.0)
    rows, cols = overlap(2, 3), recent(3, 4, "zero")
    out, count = apply_maps(parent, child, [rows, cols], generator=generator_for(0, "x"))
    assert count == 6
    torch.testing.assert_close(out[:2, 1:], parent)
    assert out[:2, 0].tolist() == [0.0, 0.0]  # padded memory slot of a kept row: zero
    assert out[2].tolist() == [-7.0] * 4  # a new row keeps the child's init even on the padded slot


def test_split_shares_sum_to_the_parent_weight_and_differ_between_copies() -> None:
    parent = torch.randn(5, 3)
    child = torch.zeros(5, 6)
    split = AxisMap(replicate(3, 6).src, split=True)
    out, count = apply_maps(parent, child, [overlap(5, 5), split], generator=generator_for(1, "w"))
    assert count == 30
    torch.testing.assert_close(out[:, :3] + out[:, 3:], parent)
    assert not torch.allclose(out[:, :3], out[:, 3:])
    again, _ = apply_maps(parent, child, [overlap(5, 5), split], generator=generator_for(1, "w"))
    assert torch.equal(out, again)  # the shares come from (seed, name) only


def test_apply_maps_rejects_maps_that_do_not_fit() -> None:
    for bad in (overlap(3, 4), AxisMap(np.array([0, 1, 3]))):  # wrong child size; an index past the parent
        with pytest.raises(ValueError, match="does not fit"):
            apply_maps(torch.zeros(2, 3), torch.zeros(2, 3), [overlap(2, 2), bad], generator=generator_for(0, "x"))


def _pairs(strategy: str, d: int, n: int, seed: int, n_self: int = 0) -> tuple[np.ndarray, np.ndarray]:
    return select_pairs(strategy, d, n, role="out", n_self=n_self, rng=np.random.default_rng(seed))


def _keys(pairs: tuple[np.ndarray, np.ndarray]) -> set[tuple[int, int]]:
    return {(min(int(i), int(j)), max(int(i), int(j))) for i, j in zip(*pairs, strict=True)}


@pytest.mark.parametrize("seed", range(12))
def test_random_strategy_keeps_the_parents_triangle(seed: int) -> None:
    rng = np.random.default_rng(seed)
    d_p = int(rng.integers(6, 20))
    d_c = int(rng.integers(6, 20))
    n_p, n_c = int(rng.integers(1, d_p + 1)), int(rng.integers(1, d_c + 1))
    parent, own = _pairs("random", d_p, n_p, seed), _pairs("random", d_c, n_c, seed + 100)
    child = keep_random(parent, own, n_parent=n_p, n_child=n_c, d_child=d_c, rng=np.random.default_rng(seed))
    assert len(child[0]) == n_c * (n_c + 1) // 2 and max(child[0].max(), child[1].max()) < d_c
    assert_distinct(child)
    left, right = triangle_lists(*child, n_c)
    shared = set(left.tolist()) & set(right.tolist())
    assert all(left.tolist().index(v) == right.tolist().index(v) for v in shared)  # the alignment invariant
    lp, rp = triangle_lists(*parent, n_p)
    valid = [(a, b) for a, b in zip(lp.tolist(), rp.tolist(), strict=True) if a < d_c and b < d_c][:n_c]
    kept = 0
    while kept < len(valid) and (left[kept], right[kept]) == valid[kept]:
        kept += 1
    if d_c - 2 * len(valid) >= n_c - len(valid):  # enough free neurons for the new positions: all are kept
        assert kept == len(valid)
    tri_a, tri_b = np.triu_indices(kept)
    kept_parent_pairs = {(min(lp_, rp_), max(lp_, rp_)) for lp_, rp_ in
                         zip(left[tri_a].tolist(), right[tri_b].tolist(), strict=True)}
    assert kept_parent_pairs <= _keys(parent) and kept_parent_pairs <= _keys(child)


def test_random_strategy_growing_keeps_every_parent_pair() -> None:
    parent, own = _pairs("random", 32, 6, 0), _pairs("random", 32, 10, 1)
    child = keep_random(parent, own, n_parent=6, n_child=10, d_child=32, rng=np.random.default_rng(0))
    assert _keys(parent) < _keys(child) and len(child[0]) == 55
    assert_distinct(child)


@pytest.mark.parametrize("seed", range(8))
def test_random_pairing_keeps_self_pairs_then_other_pairs(seed: int) -> None:
    parent = _pairs("random-pairing", 12, 9, seed, n_self=3)
    own = _pairs("random-pairing", 15, 11, seed + 50, n_self=2)
    child = keep_random_pairing(parent, own, n_child=11, d_child=15)
    assert len(child[0]) == 11 and (child[0][:2] == child[1][:2]).all() and (child[0][2:] != child[1][2:]).all()
    assert_distinct(child)
    assert child[0][:2].tolist() == parent[0][:2].tolist()  # the parent's first self-pairs
    assert _keys((parent[0][3:], parent[1][3:])) <= _keys(child)  # every other parent pair
    shrunk = keep_random_pairing(parent, _pairs("random-pairing", 8, 4, seed, n_self=1), n_child=4, d_child=8)
    assert len(shrunk[0]) == 4 and max(shrunk[0].max(), shrunk[1].max()) < 8
    assert_distinct(shrunk)


def test_match_slots_by_neuron_identity_then_through_replication() -> None:
    parent = (np.array([0, 1, 0]), np.array([0, 2, 2]))
    child = (np.array([2, 4, 0, 1, 5]), np.array([0, 4, 0, 2, 5]))
    same = match_slots(child, parent, np.array([0, 1, 2, -1, -1, -1]))
    assert same.tolist() == [2, -1, 0, 1, -1]
    replicated = match_slots(child, parent, np.array([0, 1, 2, 0, 1, 2]))
    assert replicated.tolist() == [2, -1, 0, 1, -1]  # (4, 4) ~ (1, 1) is no parent pair; (5, 5) ~ (2, 2) neither
    twice = match_slots((np.array([3, 0]), np.array([3, 0])), (np.array([0]), np.array([0])), np.array([0, 1, 2, 0]))
    assert twice.tolist() == [-1, 0]  # the same-index pair wins; a parent slot is used once

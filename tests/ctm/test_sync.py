"""Synchronisation: the recursion equals the closed form over the full history; pair selection rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ctm_testutil import tiny

from ctm import build_model
from ctm.pairs import select_pairs
from ctm.sync import initial_theta
from genome.cost import BackboneSpec, TaskShape

SHAPE = TaskShape(name="t", backbone=BackboneSpec(kind="scalar", n_tokens=4), out_positions=2, out_classes=3)


def closed_form(z: torch.Tensor, left: torch.Tensor, right: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """S_t = Σ_{τ≤t} r^{t−τ} z_i(τ) z_j(τ) / sqrt(Σ_{τ≤t} r^{t−τ}) for every t, from z [T, B, D]: [T, B, P]."""
    prods = (z[..., left] * z[..., right]).double()
    r = r.double()
    out = []
    for t in range(z.shape[0]):
        powers = r.unsqueeze(0) ** torch.arange(t, -1, -1, dtype=torch.float64).unsqueeze(-1)  # [t+1, P]
        out.append((powers.unsqueeze(1) * prods[: t + 1]).sum(0) / powers.sum(0).sqrt())
    return torch.stack(out)


@pytest.mark.parametrize("select", ["first-last", "random", "random-pairing"])
@pytest.mark.parametrize("decay_init", ["random", "spread"])
def test_recursive_sync_equals_closed_form(select: str, decay_init: str) -> None:
    genome = tiny(ticks=7, sync_select=select, decay_init=decay_init, decay_init_max=2.0,
                  n_self_pairs=2 if select == "random-pairing" else 0)
    model = build_model(genome, SHAPE, seed=3).eval()
    x = torch.randn(3, 4)
    with torch.no_grad():
        _, _, trace = model(x, track=True)
        z0 = model.start_state.expand(3, -1).unsqueeze(0)
        history = torch.cat([z0, trace.post])  # z_0 .. z_T
        out, act = model.sync_out, model.sync_action
        expected_out = closed_form(history, out.left, out.right, out.rates())[1:]  # S_out(t) uses z_0..z_t
        expected_act = closed_form(history, act.left, act.right, act.rates())[:-1]  # S_action(t): z_0..z_{t-1}
    assert not torch.allclose(out.rates(), torch.ones_like(out.rates()))
    torch.testing.assert_close(trace.sync_out.double(), expected_out, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(trace.sync_action.double(), expected_act, rtol=1e-5, atol=1e-6)


def test_outputs_are_a_linear_read_of_sync_out() -> None:
    model = build_model(tiny(), SHAPE).eval()
    with torch.no_grad():
        predictions, _, trace = model(torch.randn(2, 4), track=True)
        expected = model.output(trace.sync_out).permute(1, 2, 0)
    torch.testing.assert_close(predictions, expected)


def _unordered(left: np.ndarray, right: np.ndarray) -> set[tuple[int, int]]:
    return {(min(a, b), max(a, b)) for a, b in zip(left.tolist(), right.tolist(), strict=True)}


@pytest.mark.parametrize("d,n", [(6, 6), (10, 4), (16, 16), (40, 9)])
def test_random_selection_has_no_duplicate_pairs(d: int, n: int) -> None:
    for seed in range(20):
        left, right = select_pairs("random", d, n, role="out", rng=np.random.default_rng(seed))
        assert len(left) == n * (n + 1) // 2
        assert len(_unordered(left, right)) == len(left)
        assert len(set(left.tolist())) == n and len(set(right.tolist())) == n


@pytest.mark.parametrize("d,n,n_self", [(5, 14, 4), (12, 30, 3), (300, 50, 10), (3000, 200, 0)])
def test_random_pairing_distinct_pairs_and_self_pairs_first(d: int, n: int, n_self: int) -> None:
    left, right = select_pairs("random-pairing", d, n, role="out", n_self=n_self,
                               rng=np.random.default_rng(1))
    assert len(left) == n and len(_unordered(left, right)) == n
    assert (left[:n_self] == right[:n_self]).all() and len(set(left[:n_self].tolist())) == n_self
    assert (left[n_self:] != right[n_self:]).all()
    assert left.min() >= 0 and max(left.max(), right.max()) < d


def test_first_last_selection() -> None:
    left, right = select_pairs("first-last", 10, 3, role="out", rng=np.random.default_rng(0))
    assert _unordered(left, right) == {(i, j) for i in range(3) for j in range(i, 3)}
    left, right = select_pairs("first-last", 10, 2, role="action", rng=np.random.default_rng(0))
    assert _unordered(left, right) == {(8, 8), (8, 9), (9, 9)}


@pytest.mark.parametrize("select", ["random", "random-pairing"])
def test_pairs_are_deterministic_from_the_seed(select: str) -> None:
    genome = tiny(sync_select=select, d_model=40, n_sync_out=8)
    a, b, c = (build_model(genome, SHAPE, seed=s) for s in (5, 5, 6))
    assert torch.equal(a.sync_out.left, b.sync_out.left) and torch.equal(a.sync_out.right, b.sync_out.right)
    assert not (torch.equal(a.sync_out.left, c.sync_out.left) and torch.equal(a.sync_out.right,
                                                                              c.sync_out.right))
    assert "sync_out.left" in a.state_dict() and "sync_action.right" in a.state_dict()


def test_initial_theta_schedules() -> None:
    rng = np.random.default_rng(0)
    assert (initial_theta("zeros", 5, 4.0, rng) == 0).all()
    spread = initial_theta("spread", 5, 4.0, rng)
    np.testing.assert_allclose(np.exp(-spread), np.linspace(np.exp(-4.0), 1.0, 5))
    random_theta = initial_theta("random", 1000, 4.0, rng)
    assert random_theta.min() >= 0 and random_theta.max() <= 4.0 and random_theta.std() > 0.5
    with pytest.raises(ValueError, match="decay_init"):
        initial_theta("bogus", 5, 4.0, rng)

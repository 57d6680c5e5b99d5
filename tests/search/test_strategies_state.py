"""Save/restore through JSON gives identical next asks, for every strategy, with proposals in flight."""

from __future__ import annotations

import json

import numpy as np
import pytest

from search.descriptors import make_descriptors
from search.records import Proposal
from search.strategies import STRATEGY_NAMES, Strategy, make_strategy
from tests.search import landscapes as L

SPACE = L.space()
DESCRIPTORS = make_descriptors(L.DESCRIPTORS, space=SPACE)
SMALL: dict[str, dict[str, object]] = {
    "map_elites": {"initial_samples": 8},
    "surrogate_elites": {"initial_samples": 8, "candidates": 16, "refit_every": 8},
    "cvt_map_elites": {"initial_samples": 8, "cells": 32, "cvt_samples": 1000},
    "novelty": {"population_size": 8, "threshold_window": 5, "k": 4},
    "nslc": {"population_size": 8, "threshold_window": 5, "k": 4},
    "dns": {"population_size": 8},
    "regularized_evolution": {"population_size": 8, "sample_size": 3},
    "optuna_tpe": {"n_startup_trials": 5},
    "optuna_nsga2": {"population_size": 6},
    "evotorch_cmaes": {"popsize": 6},
    "evotorch_ga": {"popsize": 6},
}


def _make(name: str, seed: int = 3) -> Strategy:
    return make_strategy(name, space=SPACE, seed=seed, descriptors=DESCRIPTORS, settings=SMALL.get(name, {}))


def _step(strategies: list[Strategy], pending: list[Proposal], landscape: L.Landscape, rng: np.random.Generator,
          workers: int = 4) -> list[list[dict]]:
    """One campaign step on several strategies in lock-step: ask for free slots, tell one random result."""
    asked = [[p.to_dict() for p in s.ask(workers - len(pending))] for s in strategies]
    pending += [Proposal.from_dict(p) for p in asked[0]]
    if pending:
        result = landscape.evaluate(pending.pop(int(rng.integers(len(pending)))).genome)
        for s in strategies:
            s.tell(result)
    return asked


def _roundtrip(state: dict) -> dict:
    return json.loads(json.dumps(state, allow_nan=False))


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_restore_gives_identical_next_asks(name: str) -> None:
    original = _make(name)
    landscape = L.Landscape(SPACE, fail_above=0.85)  # some failures in the log too
    rng = np.random.default_rng(7)
    pending: list[Proposal] = []
    for _ in range(30):
        _step([original], pending, landscape, rng)
    pending += original.ask(4 - len(pending))  # (a generation-based strategy may just have drained)
    assert original.in_flight, "the saved state must hold proposals in flight"
    state = _roundtrip(original.state_dict())
    restored = _make(name)
    restored.load_state_dict(state)
    assert restored.in_flight == original.in_flight
    assert restored.metrics() == original.metrics()
    assert _roundtrip(restored.state_dict()) == state
    for _ in range(12):  # identical asks, and identical after further identical tells
        a, b = _step([original, restored], pending, landscape, rng)
        assert a == b
    assert restored.metrics() == original.metrics()
    assert restored.elite_hashes() == original.elite_hashes()
    assert _roundtrip(restored.state_dict()) == _roundtrip(original.state_dict())


@pytest.mark.parametrize("name", ["map_elites", "novelty", "optuna_tpe", "evotorch_ga"])
def test_restore_of_a_fresh_strategy_and_of_a_used_one(name: str) -> None:
    fresh = _make(name)
    state = _roundtrip(fresh.state_dict())
    used = _make(name)
    landscape, rng, pending = L.Landscape(SPACE), np.random.default_rng(0), []
    for _ in range(10):
        _step([used], pending, landscape, rng)
    used.load_state_dict(state)  # loading replaces everything the instance held
    assert not used.in_flight and used.evaluations == 0
    assert [p.to_dict() for p in used.ask(3)] == [p.to_dict() for p in fresh.ask(3)]


def test_a_state_from_other_settings_or_seed_is_refused() -> None:
    state = _make("map_elites").state_dict()
    with pytest.raises(ValueError, match="seed"):
        _make("map_elites", seed=4).load_state_dict(state)
    other = make_strategy("map_elites", space=SPACE, seed=3, descriptors=DESCRIPTORS, settings={})
    with pytest.raises(ValueError, match="settings"):
        other.load_state_dict(state)
    with pytest.raises(ValueError, match="strategy"):
        _make("random").load_state_dict(state)


def test_same_seed_same_asks_and_different_seed_different_asks() -> None:
    for name in STRATEGY_NAMES:
        a, b, c = _make(name, 5), _make(name, 5), _make(name, 6)
        ha, hb, hc = ([p.genome_hash for p in s.ask(4)] for s in (a, b, c))
        assert ha == hb, name
        assert ha != hc, name

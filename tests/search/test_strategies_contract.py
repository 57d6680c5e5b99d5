"""The ask/tell contract for every strategy: budget, no duplicates, out-of-order tells, failures, exhaustion."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctm.result import EvalResult
from genome import GenomeSpace
from search.descriptors import make_descriptors
from search.strategies import STRATEGY_NAMES, Strategy, UnknownProposalError, make_strategy
from tests.search import landscapes as L

SPACE = L.space()
DESCRIPTORS = make_descriptors(L.DESCRIPTORS, space=SPACE)
FAST: dict[str, dict[str, object]] = {
    "cvt_map_elites": {"cells": 32, "cvt_samples": 1000, "initial_samples": 10},
    "map_elites": {"initial_samples": 10},
    "novelty": {"population_size": 10, "threshold_window": 10},
    "nslc": {"population_size": 10, "threshold_window": 10},
    "dns": {"population_size": 10},
    "regularized_evolution": {"population_size": 10, "sample_size": 3},
    "optuna_nsga2": {"population_size": 8},
    "evotorch_cmaes": {"popsize": 8},
    "evotorch_ga": {"popsize": 8},
}
METRIC_KEYS = {"qd_score", "coverage", "archive_size", "novelty_archive_size", "novelty_threshold",
               "evaluations", "failures", "in_flight", "best_fitness"}


def _make(name: str, seed: int = 0, space: GenomeSpace = SPACE, descriptors: list | None = None,
          **settings: object) -> Strategy:
    return make_strategy(name, space=space, seed=seed, descriptors=DESCRIPTORS if descriptors is None else
                         descriptors, settings={**FAST.get(name, {}), **settings})


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_budget_no_duplicates_and_failures(name: str) -> None:
    strategy = _make(name)
    landscape = L.Landscape(SPACE, fail_above=0.8)
    history: list[dict[str, float]] = []
    proposals = L.run(strategy, landscape.evaluate, budget=48, workers=4, seed=1,
                      on_tell=lambda s: history.append(s.metrics()))
    hashes = [p.genome_hash for p in proposals]
    assert len(hashes) == 48 == len(set(hashes)), "every proposal is a new genome, and the budget is kept"
    assert strategy.evaluations == 48 and not strategy.in_flight
    m = strategy.metrics()
    assert set(m) >= METRIC_KEYS and all(isinstance(v, float) and math.isfinite(v) for v in m.values())
    assert [h["evaluations"] for h in history] == list(range(1, 49))  # metrics after every tell
    failed = {r.hash for r in strategy.evaluated() if not r.ok}
    assert failed and m["failures"] == len(failed) == m["failures.kind.oom"]
    assert not failed & set(strategy.elite_hashes()), "failures never become elites"
    assert sum(v for k, v in m.items() if k.startswith("failures.cell.")) == len(failed)
    for p in proposals:
        assert p.operator and all(parent in {q.genome_hash for q in proposals} for parent in p.parents)
        assert SPACE.contains(p.genome)


def test_out_of_order_tells_and_asks_while_in_flight() -> None:
    strategy = _make("map_elites")
    landscape = L.Landscape(SPACE)
    first = strategy.ask(8)
    for p in reversed(first[4:]):  # the newest first
        strategy.tell(landscape.evaluate(p.genome))
    more = strategy.ask(6)  # asked while 4 of the first batch are still in flight
    assert set(strategy.in_flight) == {p.genome_hash for p in first[:4] + more}
    for p in [more[2], first[0], more[0], first[3], *more[3:], first[1], more[1], first[2]]:
        strategy.tell(landscape.evaluate(p.genome))
    assert strategy.evaluations == 14 and not strategy.in_flight


def test_unknown_and_repeated_tells_are_refused() -> None:
    strategy = _make("random")
    landscape = L.Landscape(SPACE)
    (p,) = strategy.ask(1)
    with pytest.raises(UnknownProposalError, match="no proposal with this genome hash"):
        strategy.tell(EvalResult(genome_hash="0123456789abcdef", fitness=1.0))
    strategy.tell(landscape.evaluate(p.genome))
    with pytest.raises(UnknownProposalError, match="already told"):
        strategy.tell(landscape.evaluate(p.genome))
    assert strategy.cell_of("0123456789abcdef") is None
    with pytest.raises(ValueError, match="non-negative integer"):
        strategy.ask(-1)
    assert strategy.ask(0) == []


def test_invalid_results_and_missing_descriptors_are_counted_not_archived() -> None:
    strategy = _make("map_elites")
    a, b, c = strategy.ask(3)
    strategy.tell(EvalResult(genome_hash=a.genome_hash, fitness=float("nan"), metrics={"b0": 0.5, "b1": 0.5}))
    strategy.tell(EvalResult(genome_hash=b.genome_hash, fitness=0.5, metrics={"b0": 0.5}))  # no b1
    strategy.tell(EvalResult(genome_hash=c.genome_hash, fitness=0.7, metrics={"b0": 0.95, "b1": 0.05}))
    m = strategy.metrics()
    assert m["failures.kind.invalid"] == 1 and m["descriptor_errors"] == 1
    assert strategy.elite_hashes() == [c.genome_hash] and strategy.cell_of(c.genome_hash) == "9_0"
    assert strategy.cell_of(b.genome_hash) is None


def test_repeated_failures_of_a_region_show_in_the_metrics() -> None:
    genes = make_descriptors([{"name": "ticks", "bins": 5}, {"name": "memory_length", "bins": 5}], space=SPACE)
    strategy = make_strategy("map_elites", space=SPACE, seed=0, descriptors=genes, settings={})
    landscape = L.Landscape(SPACE, fail_above=0.6)  # ticks above ~60 fail
    L.run(strategy, landscape.evaluate, budget=120, seed=0)
    cells = {k.removeprefix("failures.cell."): v for k, v in strategy.metrics().items()
             if k.startswith("failures.cell.")}
    assert cells and all(int(cell.split("_")[0]) >= 2 for cell in cells), cells  # the high-ticks bins only
    assert sum(cells.values()) == strategy.metrics()["failures"] > 5
    for rec in strategy.evaluated():
        if not rec.ok:  # gene descriptors place failures in their own cell
            assert strategy.cell_of(rec.hash) == rec.region


@pytest.mark.parametrize("name", ["random", "map_elites", "regularized_evolution", "novelty", "optuna_tpe",
                                  "evotorch_ga"])
def test_a_small_space_is_exhausted_clearly(name: str) -> None:
    fixed = {g: (d["choices"][0] if "choices" in d else d["min"]) for g, d in SPACE.to_config().items()}
    tiny = GenomeSpace.from_config({**fixed, "ticks": {"min": 1, "max": 3}, "memory_length": {"min": 1, "max": 2}})
    assert tiny.evolvable == ("ticks", "memory_length")
    strategy = make_strategy(name, space=tiny, seed=0, descriptors=make_descriptors(["ticks"], space=tiny),
                             settings={"max_resample": 5} | ({"popsize": 4} if "evotorch" in name else {}))
    landscape = L.Landscape(tiny)
    seen: set[str] = set()
    for _ in range(20):
        batch = strategy.ask(4)
        seen |= {p.genome_hash for p in batch}
        for p in batch:
            strategy.tell(landscape.evaluate(p.genome))
        if not batch:
            break
    assert len(seen) <= 6 and strategy.evaluations == len(seen)
    assert strategy.exhausted and strategy.ask(3) == []
    if name != "evotorch_ga":  # a converged GA may stop before visiting all six
        assert len(seen) == 6


def test_genomes_fixed_entirely_are_refused() -> None:
    fixed = GenomeSpace.from_config({g: (d["choices"][0] if "choices" in d else d["min"])
                                     for g, d in SPACE.to_config().items()})
    with pytest.raises(ValueError, match="genome_space"):
        make_strategy("random", space=fixed, seed=0, descriptors=[], settings={})


def test_generation_based_strategies_wait_instead_of_duplicating() -> None:
    strategy = _make("evotorch_cmaes")
    batch = strategy.ask(100)
    assert 0 < len(batch) <= 8 and strategy.waiting and not strategy.exhausted
    assert strategy.ask(3) == []
    landscape = L.Landscape(SPACE)
    for p in batch:
        strategy.tell(landscape.evaluate(p.genome))
    assert not strategy.waiting and len(strategy.ask(3)) == 3
    assert np.isfinite(strategy.metrics()["generations"])


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(["map_elites", "nslc", "dns", "regularized_evolution", "optuna_tpe", "evotorch_ga"]),
       ops=st.lists(st.tuples(st.sampled_from(["ask", "tell", "save"]), st.integers(0, 5)), max_size=40))
def test_any_interleaving_of_asks_tells_and_restores_keeps_the_contract(name: str, ops: list) -> None:
    strategy, twin = _make(name, seed=2), _make(name, seed=2)
    landscape = L.Landscape(SPACE, fail_above=0.9)
    asked: list[str] = []
    pending: list = []
    for op, k in ops:
        if op == "ask":
            a, b = strategy.ask(k), twin.ask(k)
            assert [p.to_dict() for p in a] == [p.to_dict() for p in b]
            asked += [p.genome_hash for p in a]
            pending += a
        elif op == "tell" and pending:
            result = landscape.evaluate(pending.pop(k % len(pending)).genome)
            strategy.tell(result)
            twin.tell(result)
        elif op == "save":  # the twin continues from a JSON copy of the state
            twin = _make(name, seed=2)
            twin.load_state_dict(json.loads(json.dumps(strategy.state_dict())))
        assert len(asked) == len(set(asked))
        assert set(strategy.in_flight) == {p.genome_hash for p in pending} == set(twin.in_flight)
        assert strategy.evaluations + len(pending) == len(asked)
    assert strategy.metrics() == twin.metrics()


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_a_strategy_adopts_a_genome_it_did_not_propose(name: str) -> None:
    """``adopt`` (a transfer from another task of an open-ended campaign): in flight, told like a proposal, kept
    in the archive and the saved state; the strategy goes on asking new genomes; adopting a taken genome fails."""
    from search.records import Proposal

    strategy = _make(name)
    landscape = L.Landscape(SPACE)
    L.run(strategy, landscape.evaluate, budget=12, workers=3, seed=2)
    stranger = next(g for g in (SPACE.sample(np.random.default_rng(s)) for s in range(100))
                    if strategy.record(g.hash) is None)
    proposal = Proposal(genome=stranger, operator="transfer from t02-length8")
    strategy.adopt(proposal)
    assert stranger.hash in strategy.in_flight
    with pytest.raises(UnknownProposalError, match="already evaluated or in flight"):
        strategy.adopt(proposal)
    strategy.tell(landscape.evaluate(stranger))
    record = strategy.record(stranger.hash)
    assert record is not None and record.proposal.operator == "transfer from t02-length8"
    with pytest.raises(UnknownProposalError):
        strategy.adopt(proposal)
    again = _make(name)
    again.load_state_dict(json.loads(json.dumps(strategy.state_dict())))
    assert again.record(stranger.hash) is not None
    more = L.run(strategy, landscape.evaluate, budget=6, workers=2, seed=3)
    assert more and stranger.hash not in {p.genome_hash for p in more}


BOUNDED = [n for n in STRATEGY_NAMES if getattr(type(_make(n)), "BOUNDED_HISTORY", False)]
CAPPED = {"novelty": {"archive_max": 15}, "nslc": {"archive_max": 15}}  # bounded by a setting


def test_the_strategies_that_breed_from_an_archive_or_population_bound_their_history() -> None:
    assert {"map_elites", "cvt_map_elites", "random", "regularized_evolution", "dns"} <= set(BOUNDED)
    assert not {"surrogate_elites", "novelty", "optuna_tpe"} & set(BOUNDED)  # their state grows by nature
    assert not _make("optuna_tpe").compact_history()
    assert not _make("novelty").compact_history()  # an unbounded novelty archive reads every told genome
    assert all(_make(name, **cap).compact_history() for name, cap in CAPPED.items())


@pytest.mark.parametrize("name", [*BOUNDED, *CAPPED])
def test_a_compact_history_asks_the_same_genomes_in_bounded_memory(name: str, monkeypatch) -> None:
    """compact_history lets go of the records of told genomes it no longer reads: the asks, the metrics and the
    duplicate check are those of the full history; the records kept are bounded by the archive or population."""
    import search.strategies.history as history

    monkeypatch.setattr(history, "SWEEP_MIN", 40)
    cap = CAPPED.get(name, {})
    full, compact = _make(name, **cap), _make(name, **cap)
    assert compact.compact_history()
    landscape = L.Landscape(SPACE, fail_above=0.85)
    kept: list[tuple[int, int]] = []  # (records kept, records it needs: retained and the best) after each tell
    runs = [L.run(s, landscape.evaluate, budget=400, workers=4, seed=2, on_tell=lambda s: kept.append(
        (len(s._records), len(s._retained()) + 1)) if s is compact else None) for s in (full, compact)]
    assert [p.genome_hash for p in runs[0]] == [p.genome_hash for p in runs[1]]
    assert _comparable(full.metrics(), name) == _comparable(compact.metrics(), name) and compact.evaluations == 400
    needed = 0
    for records, retained in kept:  # a sweep whenever the records double: at most twice what was ever needed
        needed = max(needed, retained)
        assert records <= max(40, 2 * needed)
    assert kept[-1][0] < 200
    assert all(compact.told(p.genome_hash) and compact._taken(p.genome_hash) for p in runs[1])
    assert [r.hash for r in compact.evaluated()] == [h for h in (r.hash for r in full.evaluated())
                                                     if compact.record(h) is not None]
    with pytest.raises(ValueError, match="compact history"):
        compact.state_dict()
    again = _make(name, **cap)  # restored from a snapshot and the journal's log, as a campaign resumes
    again.compact_history()
    again.load_state_dict(compact.state_dict(with_log=False),
                          log=[again.log_entry(r.proposal, landscape.evaluate(r.proposal.genome), r.values)
                               for r in full.evaluated()])
    assert again.metrics() == compact.metrics() and again.ask(5) == compact.ask(5)


def _comparable(metrics: dict[str, float], name: str) -> dict[str, float]:
    """A capped novelty search's population turns over within a few results, so a failed child's parent may be let
    go before the failure is told: it then counts in ``failures.cell.unknown``, not near its parent's cell (the
    counts by failure kind, and everything else, are those of the full history)."""
    if name not in CAPPED:
        return metrics
    return {k: v for k, v in metrics.items() if not k.startswith("failures.cell.")}


@pytest.mark.parametrize("name", [n for n in BOUNDED if getattr(type(_make(n)), "FULL_SNAPSHOT", False)])
def test_a_compact_state_and_the_log_after_it_restore_the_strategy_exactly(name: str, monkeypatch) -> None:
    """A campaign resumes from the strategy's whole state at a point of the journal (O(records kept)) and the
    results told after it: the strategy then asks and measures as one restored from the whole told log."""
    import search.strategies.history as history

    monkeypatch.setattr(history, "SWEEP_MIN", 30)
    from search.descriptors import describe_result

    landscape = L.Landscape(SPACE, fail_above=0.85)
    told: list[str] = []
    entries: list = []  # the told log, as a campaign's journal holds it
    cut: tuple[dict, list[str], int] | None = None
    again, proposals = _make(name), []
    again.compact_history()
    rng = np.random.default_rng(10_003)
    pending: list = []
    while len(told) < 300:
        if len(pending) < 4:
            new = again.ask(4 - len(pending))
            pending += new
            proposals += new
        done = pending.pop(int(rng.integers(len(pending))))
        result = landscape.evaluate(done.genome)
        again.tell(result)
        told.append(done.genome_hash)
        entries.append(again.log_entry(done, result, describe_result(again.descriptors, done.genome, result)[0]))
        if len(told) == 170:
            cut = (json.loads(json.dumps(again.compact_state())), list(told), len(entries))
    assert cut is not None and len(again._records) < 300
    state = json.loads(json.dumps(again.state_dict(with_log=False)))
    restored = _make(name)
    restored.compact_history()
    restored.load_state_dict(state, start=cut[0], told=cut[1], log=entries[cut[2]:])
    assert restored.metrics() == again.metrics()
    assert restored.ask(6) == again.ask(6)

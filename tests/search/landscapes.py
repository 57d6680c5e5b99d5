"""Synthetic landscapes over the genome's codec vector, and an asynchronous harness, for strategy tests.

No CTM is trained: a genome's fitness and behaviour are cheap functions of ``x = VectorCodec.encode(genome)``.

- Behaviour / descriptors ``b0``, ``b1``: the means of two disjoint groups of five numeric coordinates.
  Uniform sampling concentrates them near 0.5 (a mean of five uniforms has std ≈ 0.13), so reaching the
  edges of the [0, 1]² behaviour space takes directed search: that is what QD and novelty search add.
- Fitness (deceptive): a broad local optimum of height 0.6 around x = 0.25 and a narrow global optimum of
  height 1 around x = 0.85; hill-climbing finds the broad one, random sampling hardly finds either.
- Optional failures: genomes whose ``ticks`` coordinate is above ``fail_above`` fail with kind "oom".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ctm.result import EvalResult
from genome import Genome, GenomeSpace, VectorCodec
from search.archive import grid_coverage
from search.records import Proposal

SPACE_CONFIG: dict[str, Any] = {"heads": 1, "sync_select": {"choices": ["random"]},
                                "d_model": {"min": 256, "max": 1024}, "n_self_pairs": 0}
GROUP_A = ("ticks", "nlm_hidden", "d_input", "n_sync_out", "dropout")
GROUP_B = ("memory_length", "d_model", "synapse_depth", "n_sync_action", "dropout_nlm")
DESCRIPTORS = [
    {"name": "tests.search.landscapes:b0", "range": [0, 1], "bins": 10, "label": "b0 (mean of group A)"},
    {"name": "tests.search.landscapes:b1", "range": [0, 1], "bins": 10, "label": "b1 (mean of group B)"},
]


def space() -> GenomeSpace:
    """A 14-gene space whose constraints rarely bind (one head, random sync, d_model ≥ 256)."""
    return GenomeSpace.from_config(SPACE_CONFIG)


def b0(genome: Genome, result: EvalResult) -> float:
    return result.metrics["b0"]


def b1(genome: Genome, result: EvalResult) -> float:
    return result.metrics["b1"]


def not_a_function(genome: Genome, result: EvalResult) -> float:
    raise AssertionError("never called")


NOT_CALLABLE = 3


class Landscape:
    """Fitness and behaviour of a genome as cheap functions of its codec vector."""

    def __init__(self, strategy_space: GenomeSpace | None = None, *, fail_above: float | None = None):
        self.codec = VectorCodec(space())  # coordinates of the full test space, whatever a strategy searches
        self.index_a = [self.codec.names.index(n) for n in GROUP_A]
        self.index_b = [self.codec.names.index(n) for n in GROUP_B]
        self.fail_above = fail_above
        self.behaviours: list[list[float]] = []
        self.calls = 0

    def fitness(self, x: np.ndarray) -> float:
        broad = 0.6 * math.exp(-float(np.mean((x - 0.25) ** 2)) / 0.05)
        narrow = 1.0 * math.exp(-float(np.mean((x - 0.85) ** 2)) / 0.01)
        return max(broad, narrow)

    def behaviour(self, x: np.ndarray) -> list[float]:
        return [float(np.mean(x[self.index_a])), float(np.mean(x[self.index_b]))]

    def evaluate(self, genome: Genome) -> EvalResult:
        self.calls += 1
        x = self.codec.encode(genome)
        if self.fail_above is not None and x[self.codec.names.index("ticks")] > self.fail_above:
            return EvalResult.failed(genome.hash, "oom", "synthetic out-of-memory")
        b = self.behaviour(x)
        self.behaviours.append(b)
        metrics = {"b0": b[0], "b1": b[1], "param_count": 10.0 ** (3 + 4 * b[0]),
                   "macs_per_forward": 10.0 ** (5 + 5 * b[1]), "ece": float(x[-1]) * 0.5,
                   "exit_tick_mean": genome.ticks * 0.5}
        return EvalResult(genome_hash=genome.hash, fitness=self.fitness(x), metrics=metrics, behaviour=b)

    def behaviour_coverage(self, bins: int = 10) -> float:
        """Fraction of a bins×bins grid over [0, 1]² visited by any evaluated genome."""
        return grid_coverage(self.behaviours, [(0.0, 1.0)] * 2, [bins, bins])


def run(strategy: Any, evaluate: Callable[[Genome], EvalResult], *, budget: int, workers: int = 4,
        seed: int = 0, on_tell: Callable[[Any], None] | None = None) -> list[Proposal]:
    """Drive ``strategy`` like an asynchronous campaign: keep up to ``workers`` evaluations in flight, finish
    a random one of them each step (so tells come out of order), ask for more when workers are free, stop
    after ``budget`` evaluations. Returns every proposal, in ask order."""
    rng = np.random.default_rng(10_000 + seed)
    pending: list[Proposal] = []
    proposals: list[Proposal] = []
    told = 0
    while told < budget:
        free = min(workers - len(pending), budget - len(proposals))
        if free > 0:
            new = strategy.ask(free)
            assert len(new) <= free
            pending += new
            proposals += new
        if not pending:
            break
        done = pending.pop(int(rng.integers(len(pending))))
        strategy.tell(evaluate(done.genome))
        told += 1
        if on_tell is not None:
            on_tell(strategy)
    return proposals

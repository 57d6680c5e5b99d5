"""Baselines in the same harness: random search and regularised (aging) evolution."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any, ClassVar

from ctm.result import EvalResult
from search.records import Proposal
from search.strategies.base import Strategy
from search.strategies.evaluated import Evaluated
from search.strategies.settings import MUTATION_SETTINGS, Setting, check_at_most


def _fitness(rec: Evaluated) -> float:
    assert rec.fitness is not None
    return rec.fitness


class RandomSearch(Strategy):
    """Uniform random genomes from the space (each gene uniform on its scale, then repaired)."""

    NAME = "random"
    BOUNDED_HISTORY = FULL_SNAPSHOT = True

    def _propose(self) -> Proposal | None:
        return self._sample()


class RegularizedEvolution(Strategy):
    """Regularised (aging) evolution, Real et al. 2019 ("Regularized evolution for image classifier
    architecture search"), in its asynchronous steady-state form.

    - The first ``population_size`` (P) proposals are random samples.
    - Then each proposal is a mutant of the tournament winner: S members (``sample_size``) drawn uniformly
      from the population, the fittest one is the parent.
    - Each successful result joins the population (in tell order, i.e. as it becomes known); when the
      population holds more than P members the *oldest* is dropped, whatever its fitness.
    - Failed evaluations never join the population.
    """

    NAME = "regularized_evolution"
    BOUNDED_HISTORY = FULL_SNAPSHOT = True
    SETTINGS: ClassVar[dict[str, Setting]] = {
        "population_size": Setting(kind=int, default=20, low=2, high=100_000, doc="P: population size"),
        "sample_size": Setting(kind=int, default=5, low=1, high=100_000, doc="S: tournament size"),
        **MUTATION_SETTINGS,
        "crossover_rate": Setting(kind=float, default=0.0, low=0.0, high=1.0,
                                  doc="probability of a crossover of the two best of the tournament "
                                  "(0 in the original)"),
        "variation": Setting(kind=str, default="genetic", choices=("iso_line", "genetic"),
                             doc="genetic (the original: mutation of the winner) or iso_line"),
    }

    def _check_settings(self, s: dict[str, Any], field: str) -> None:
        check_at_most(s, field, "sample_size", "population_size")

    def _init_state(self) -> None:
        super()._init_state()
        self.population: deque[Evaluated] = deque()

    def _retained(self) -> set[str]:
        return super()._retained() | {rec.hash for rec in self.population}

    def _compact_extra(self) -> dict[str, Any]:
        return {"population": [rec.hash for rec in self.population]}

    def _load_compact_extra(self, extra: Mapping[str, Any]) -> None:
        self.population = deque(self._records[h] for h in extra["population"])

    def _on_record(self, rec: Evaluated, result: EvalResult | None) -> None:
        if rec.ok:
            self.population.append(rec)
            if len(self.population) > self.settings["population_size"]:
                self.population.popleft()

    def _propose(self) -> Proposal | None:
        s = self.settings
        if self._asked < s["population_size"] or not self.population:
            return self._sample()
        pool = list(self.population)

        def make() -> Proposal:
            picks = self.rng.choice(len(pool), size=min(s["sample_size"], len(pool)), replace=False)
            ranked = sorted((pool[int(i)] for i in picks), key=_fitness, reverse=True)
            return self._breed(ranked)

        return self._fresh(make)

    def _extra_metrics(self) -> dict[str, float]:
        return {"population_size": float(len(self.population))}

"""Dominated novelty search (Bahlous-Boldi, Faldor et al. 2025), asynchronous, on pyribs' ``DNSArchive``.

A population of fixed capacity N. Each member's competition score is its mean distance in behaviour space
to its k nearest *fitter* members (+∞ when none is fitter): a solution survives by being either good or
far from anything better. Each successful result is offered to the archive on its own (``add_single``: the
population plus the newcomer, the N best by that score survive), so no batch is needed; pyribs' scheduler is
not used because it assumes synchronous batches. Parents are drawn uniformly from the population, children
made by the ``variation`` setting (see :meth:`Strategy._breed`). Failed evaluations never enter the population.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ctm.result import EvalResult
from search.records import Proposal
from search.strategies.base import Strategy
from search.strategies.evaluated import Evaluated, behaviour_vector
from search.strategies.novelty import BEHAVIOUR_SETTING
from search.strategies.settings import MUTATION_SETTINGS, Setting, StrategyConfigError


class DominatedNoveltySearch(Strategy):
    """Dominated novelty search: quality and diversity without a grid."""

    NAME = "dns"
    BOUNDED_HISTORY = True  # it breeds from the population; it keeps a hash per birth (tens of bytes)
    SETTINGS: ClassVar[dict[str, Setting]] = {
        "population_size": Setting(kind=int, default=32, low=2, high=100_000, doc="N: population capacity"),
        "k": Setting(kind=int, default=3, low=1, high=10_000, doc="k fitter neighbours in the score"),
        "initial_samples": Setting(kind=int, default=None, nullable=True, low=1, high=1_000_000,
                                   doc="random genomes proposed first (null: population_size)"),
        "behaviour": BEHAVIOUR_SETTING,
        **MUTATION_SETTINGS,
    }

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        if self.settings["behaviour"] == "descriptors" and not self.descriptors:
            raise StrategyConfigError(f"{self.field}.settings.behaviour", "descriptors",
                                      "'result', or 'descriptors' with a non-empty `descriptors` list")

    def _init_state(self) -> None:
        super()._init_state()
        self.dns: Any = None  # made at the first behaviour vector (its length fixes measure_dim)
        self._births: list[str] = []  # birth number → genome hash
        self._behaviour_missing = 0

    def _on_record(self, rec: Evaluated, result: EvalResult | None) -> None:
        if not rec.ok:
            return
        b = behaviour_vector(rec, source=self.settings["behaviour"], descriptors=self.descriptors,
                             dim=self.dns.measure_dim if self.dns is not None else None)
        if b is None:
            self._behaviour_missing += 1
            return
        if self.dns is None:
            from ribs.archives import DNSArchive  # here: pyribs imports slowly

            self.dns = DNSArchive(solution_dim=self.codec.dim, measure_dim=len(b),
                                  capacity=self.settings["population_size"], k_neighbors=self.settings["k"],
                                  qd_score_offset=self.settings["qd_offset"], seed=self.seed,
                                  extra_fields={"birth": ((), np.int64)})
        self.dns.add_single(self.codec.encode(rec.proposal.genome), rec.fitness, b, birth=len(self._births))
        self._births.append(rec.hash)

    def _retained(self) -> set[str]:
        return super()._retained() | set(self.population())

    def population(self) -> list[str]:
        """Hashes of the current population, in birth order."""
        if self.dns is None or len(self.dns) == 0:
            return []
        return [self._births[int(i)] for i in sorted(self.dns.data("birth").tolist())]

    def _propose(self) -> Proposal | None:
        s = self.settings
        members = [self._records[h] for h in self.population()]
        if self._asked < (s["initial_samples"] or s["population_size"]) or not members:
            return self._sample()

        def make() -> Proposal:
            picks = self.rng.integers(len(members), size=2)
            parents = [members[int(i)] for i in picks]
            return self._breed(parents, crossover_ok=picks[0] != picks[1])

        return self._fresh(make)

    def _extra_metrics(self) -> dict[str, float]:
        return {"population_size": float(len(self.dns) if self.dns is not None else 0),
                "behaviour_missing": float(self._behaviour_missing)}

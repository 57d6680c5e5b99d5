"""Novelty search (Lehman & Stanley 2011) and novelty search with local competition (Lehman & Stanley 2011b).

Asynchronous steady-state form. Each successful result has a behaviour vector b (``result.behaviour``, or
the descriptor values normalised to [0, 1] with ``behaviour: descriptors``).

- Novelty ρ(b) = mean distance to the k nearest behaviour vectors among the population plus the novelty
  archive (each genome counted once, itself excluded).
- Archive admission: b joins the novelty archive when ρ(b) > ρ_min. ρ_min adapts to the admission rate:
  after every ``threshold_window`` results, if more than ``admit_high`` were admitted ρ_min is multiplied by
  ``threshold_raise`` (the paper: +20 %), if none was admitted by ``threshold_lower`` (the paper: −5 %).
  With ``initial_threshold: null`` every result of the first window is admitted and ρ_min starts at the
  median novelty of that window.
- Population: the newest result joins; above ``population_size`` the least novel member (re-scored against
  the current population and archive) is dropped.
- Parents: tournament selection on novelty (``novelty``) or on Pareto rank of (novelty, local competition)
  (``nslc``), where local competition = how many of the k nearest neighbours have a lower fitness. With
  ``nslc`` the dropped member is the least novel one of the last Pareto front.

pyribs' ``ProximityArchive`` is not used: it measures novelty against the archive only (not population plus
archive) and only decays its threshold, while Lehman & Stanley's threshold also rises with the admission rate.

Memory grows with every evaluation (the novelty archive and every told record: about 1.1 KB per evaluation;
docs/search.md, "Memory at scale") unless ``archive_max`` bounds the archive: when it is full, its oldest
member leaves (first in, first out; bounded archives as studied by Gomes, Mariano & Christensen 2015). The
strategy then reads only the population and the archive, so in a campaign without rungs or repeats it keeps
only their records (:meth:`~search.strategies.history.History.compact_history`) and a hash per other genome.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from ctm.result import EvalResult
from search.records import Proposal
from search.strategies.base import Strategy
from search.strategies.evaluated import Evaluated, behaviour_vector
from search.strategies.settings import MUTATION_SETTINGS, Setting, StrategyConfigError, check_at_most

BEHAVIOUR_SETTING = Setting(kind=str, default="result", choices=("result", "descriptors"),
                            doc="behaviour vector: the result's behaviour, or the normalised descriptors")


class NoveltySearch(Strategy):
    """Novelty search; ``local_competition`` (class attribute) turns it into NSLC."""

    NAME = "novelty"
    LOCAL_COMPETITION: ClassVar[bool] = False
    SETTINGS: ClassVar[dict[str, Setting]] = {
        "population_size": Setting(kind=int, default=24, low=2, high=100_000, doc="population size"),
        "k": Setting(kind=int, default=10, low=1, high=10_000, doc="k nearest neighbours in novelty"),
        "initial_samples": Setting(kind=int, default=None, nullable=True, low=1, high=1_000_000,
                                   doc="random genomes proposed first (null: population_size)"),
        "tournament_size": Setting(kind=int, default=3, low=1, high=100_000, doc="tournament size"),
        "initial_threshold": Setting(kind=float, default=None, nullable=True, low=0.0, low_open=True,
                                     doc="initial ρ_min (null: median novelty of the first window)"),
        "threshold_window": Setting(kind=int, default=20, low=1, high=1_000_000,
                                    doc="results between two threshold adaptations"),
        "admit_high": Setting(kind=int, default=4, low=0, high=1_000_000,
                              doc="more admissions than this in a window raise ρ_min"),
        "threshold_raise": Setting(kind=float, default=1.2, low=1.0, high=10.0, low_open=True,
                                   doc="factor raising ρ_min"),
        "threshold_lower": Setting(kind=float, default=0.95, low=0.0, high=1.0, low_open=True, high_open=True,
                                   doc="factor lowering ρ_min after a window without admissions"),
        "threshold_min": Setting(kind=float, default=1e-6, low=0.0, doc="floor of ρ_min"),
        "archive_max": Setting(kind=int, default=None, nullable=True, low=1, high=10_000_000,
                               doc="novelty archive size cap, the oldest leaving first (null: unbounded)"),
        "behaviour": BEHAVIOUR_SETTING,
        **MUTATION_SETTINGS,
        "crossover_rate": Setting(kind=float, default=0.1, low=0.0, high=1.0,
                                  doc="probability that a child is a crossover of two tournament winners"),
    }

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        if self.settings["behaviour"] == "descriptors" and not self.descriptors:
            raise StrategyConfigError(f"{self.field}.settings.behaviour", "descriptors",
                                      "'result', or 'descriptors' with a non-empty `descriptors` list")

    def _check_settings(self, s: dict[str, Any], field: str) -> None:
        check_at_most(s, field, "tournament_size", "population_size")

    def _init_state(self) -> None:
        super()._init_state()
        self.population: list[str] = []
        self.novelty_archive: list[str] = []
        self.threshold: float | None = self.settings["initial_threshold"]
        self._behaviours: dict[str, np.ndarray] = {}
        self._window: list[float] = []  # novelty of each result in the current window
        self._window_admitted = 0
        self._behaviour_missing = 0
        self._scores: tuple[int, dict[str, tuple[float, float]]] | None = None
        self._version = 0

    def _bounded(self) -> bool:
        """Only with ``archive_max``: then what it reads (population and archive) is bounded."""
        return self.settings["archive_max"] is not None

    def _retained(self) -> set[str]:
        return super()._retained() | set(self.population) | set(self.novelty_archive)

    # -- behaviour and novelty ---------------------------------------------------------------------------
    def _pool(self) -> list[str]:
        """Population plus novelty archive, each genome once (population order, then archive order)."""
        seen = dict.fromkeys(self.population)
        seen.update(dict.fromkeys(self.novelty_archive))
        return list(seen)

    def _novelty_of(self, b: np.ndarray, pool: list[str]) -> float:
        if not pool:
            return math.inf
        dist = np.linalg.norm(np.stack([self._behaviours[h] for h in pool]) - b, axis=1)
        k = min(self.settings["k"], len(dist))
        return float(np.mean(np.partition(dist, k - 1)[:k]))

    def _member_scores(self) -> dict[str, tuple[float, float]]:
        """(novelty, local competition) of every population member, against the rest of the pool."""
        if self._scores is not None and self._scores[0] == self._version:
            return self._scores[1]
        pool = self._pool()  # the population first, then the rest of the archive
        b = np.stack([self._behaviours[h] for h in pool])
        n_pop = len(self.population)
        dist = np.linalg.norm(b[:n_pop, None, :] - b[None, :, :], axis=2)
        dist[np.arange(n_pop), np.arange(n_pop)] = np.inf
        fitness = np.array([self._records[h].fitness for h in pool], dtype=np.float64)
        k = min(self.settings["k"], len(pool) - 1)
        if k == 0:
            out = {h: (math.inf, 0.0) for h in pool[:n_pop]}
        else:
            near = np.argsort(dist, axis=1, kind="stable")[:, :k]
            novelty = np.take_along_axis(dist, near, axis=1).mean(axis=1)
            local = (fitness[near] < fitness[:n_pop, None]).sum(axis=1)
            out = {h: (float(novelty[i]), float(local[i])) for i, h in enumerate(pool[:n_pop])}
        self._scores = (self._version, out)
        return out

    # -- updates ------------------------------------------------------------------------------------------
    def _on_record(self, rec: Evaluated, result: EvalResult | None) -> None:
        if not rec.ok:
            return
        known = next(iter(self._behaviours.values()), None)
        b = behaviour_vector(rec, source=self.settings["behaviour"], descriptors=self.descriptors,
                             dim=len(known) if known is not None else None)
        if b is None:
            self._behaviour_missing += 1
            return
        s = self.settings
        novelty = self._novelty_of(b, self._pool())
        self._behaviours[rec.hash] = b
        admit = self.threshold is None or novelty > self.threshold
        if admit:
            self.novelty_archive.append(rec.hash)
            self._window_admitted += 1
            cap = s["archive_max"]
            if cap is not None and len(self.novelty_archive) > cap:
                oldest = self.novelty_archive.pop(0)
                if oldest not in self.population:
                    del self._behaviours[oldest]
        self._window.append(novelty)
        if len(self._window) >= s["threshold_window"]:
            self._adapt_threshold()
        self.population.append(rec.hash)
        self._version += 1
        if len(self.population) > s["population_size"]:
            worst = self._worst_member()
            self.population.remove(worst)
            if worst not in self.novelty_archive:
                del self._behaviours[worst]  # no longer a neighbour of anyone
            self._version += 1

    def _adapt_threshold(self) -> None:
        s = self.settings
        if self.threshold is None:
            finite = [v for v in self._window if math.isfinite(v)]
            self.threshold = max(float(np.median(finite)) if finite else 0.0, s["threshold_min"])
        elif self._window_admitted > s["admit_high"]:
            self.threshold *= s["threshold_raise"]
        elif self._window_admitted == 0:
            self.threshold = max(self.threshold * s["threshold_lower"], s["threshold_min"])
        self._window, self._window_admitted = [], 0

    def _worst_member(self) -> str:
        scores = self._member_scores()
        if not self.LOCAL_COMPETITION:
            return min(self.population, key=lambda h: scores[h][0])
        ranks = pareto_ranks([scores[h] for h in self.population])
        last = max(ranks)
        return min((h for h, r in zip(self.population, ranks, strict=True) if r == last),
                   key=lambda h: scores[h][0])

    # -- proposals ----------------------------------------------------------------------------------------
    def _propose(self) -> Proposal | None:
        s = self.settings
        initial = s["initial_samples"] or s["population_size"]
        if self._asked < initial or len(self.population) < 2:
            return self._sample()
        scores = self._member_scores()
        pool = [self._records[h] for h in self.population]
        if self.LOCAL_COMPETITION:
            ranks = dict(zip(self.population, pareto_ranks([scores[h] for h in self.population]), strict=True))

            def key(r: Evaluated) -> tuple[float, float]:
                return (-ranks[r.hash], scores[r.hash][0])
        else:
            def key(r: Evaluated) -> tuple[float, float]:
                return (scores[r.hash][0], 0.0)

        def make() -> Proposal:
            a = self._tournament(pool, key, s["tournament_size"])
            b = self._tournament(pool, key, s["tournament_size"])
            return self._breed([a, b], crossover_ok=a.hash != b.hash)

        return self._fresh(make)

    # -- metrics and state --------------------------------------------------------------------------------
    def _extra_metrics(self) -> dict[str, float]:
        out = {"novelty_archive_size": float(len(self.novelty_archive)),
               "novelty_threshold": float(self.threshold or 0.0), "population_size": float(len(self.population)),
               "behaviour_missing": float(self._behaviour_missing)}
        if len(self.population) >= 2:
            out["population_novelty_mean"] = float(np.mean([v[0] for v in self._member_scores().values()]))
        return out

    def _load_extra(self, extra: Mapping[str, Any]) -> None:
        replayed = self._extra_state()
        if extra and any(extra[k] != replayed[k] for k in replayed):
            raise RuntimeError(f"{self.NAME}: replaying the saved evaluations did not rebuild the saved "
                               "population and novelty archive (the state was edited or written by another "
                               "version)")

    def _extra_state(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "novelty_archive": list(self.novelty_archive),
                "population": list(self.population)}

    def novelty_archive_hashes(self) -> list[str]:
        return list(self.novelty_archive)


class NoveltySearchLocalCompetition(NoveltySearch):
    """Novelty search with local competition (NSLC): quality and diversity by Pareto rank."""

    NAME = "nslc"
    LOCAL_COMPETITION = True


def pareto_ranks(points: list[tuple[float, float]]) -> list[int]:
    """Non-dominated sorting (maximising both coordinates): 0 for the first front, 1 for the next, ..."""
    p = np.asarray(points, dtype=np.float64).reshape(len(points), 2)
    # dominated[i, j]: j dominates i (at least as good in both, better in one)
    dominated = np.all(p[None, :, :] >= p[:, None, :], axis=2) & np.any(p[None, :, :] > p[:, None, :], axis=2)
    ranks = np.full(len(points), -1)
    remaining = np.ones(len(points), dtype=bool)
    rank = 0
    while remaining.any():
        front = remaining & ~np.any(dominated & remaining[None, :], axis=1)
        ranks[front] = rank
        remaining &= ~front
        rank += 1
    return ranks.tolist()

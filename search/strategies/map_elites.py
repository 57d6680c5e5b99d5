"""MAP-Elites (Mouret & Clune 2015) and CVT-MAP-Elites (Vassiliades et al. 2018), asynchronous.

The archive is a :class:`search.archive.QDArchive`: a grid (one cell per combination of descriptor bins) or a
CVT (``cells`` centroids from k-means over the normalised descriptor box, for many descriptors). Schedulers
and emitters of QD libraries assume synchronous batches (``ask()`` a batch, ``tell()`` the whole batch back in
order), which this contract does not have, so each result is inserted on its own as soon as it is told.
Solutions are ``VectorCodec.encode(genome)`` vectors; elites are kept by genome hash. Failed evaluations never
enter the archive.

Proposals: the first ``initial_samples`` are random genomes; after that each is a child of two elites drawn
uniformly from the archive, made by the ``variation`` setting: ``iso_line`` (the default; Vassiliades & Mouret
2018: Gaussian plus directional variation of the two elites' codec vectors, tuned by ``iso_sigma`` and
``line_sigma``) or ``genetic`` (a uniform crossover of the two elites with probability ``crossover_rate``,
else a mutation of one with ``mutation_rate`` and ``mutation_sigma``, by ``genome.operators``). Settings of the
variation not chosen are refused. While the archive is still empty (everything failed or is in flight)
proposals stay random.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from search.archive import QDArchive
from search.records import Proposal
from search.strategies.base import Strategy
from search.strategies.evaluated import Evaluated
from search.strategies.settings import MUTATION_SETTINGS, Setting, StrategyConfigError


class MapElites(Strategy):
    """MAP-Elites over a grid of the campaign's descriptors and their bins."""

    NAME = "map_elites"
    NEEDS_DESCRIPTORS = True
    BOUNDED_HISTORY = True  # it breeds from the archive's elites only
    FULL_SNAPSHOT = True  # its state: the archive, the records it keeps, the counters
    SETTINGS: ClassVar[dict[str, Setting]] = {
        "initial_samples": Setting(kind=int, default=20, low=1, high=1_000_000,
                                   doc="random genomes proposed before breeding from elites"),
        **MUTATION_SETTINGS,
    }

    def _propose(self) -> Proposal | None:
        assert self.qd is not None
        cells = self.qd.elite_indices()
        if self._asked < self.settings["initial_samples"] or not cells:
            return self._sample()

        def make() -> Proposal:
            picks = self.rng.integers(len(cells), size=2)
            parents = [self._records[self.qd.elite_hash(cells[int(i)])] for i in picks]  # type: ignore[union-attr]
            return self._breed(parents, crossover_ok=picks[0] != picks[1])

        return self._fresh(make)

    def elites(self) -> list[Evaluated]:
        """The elite records, in archive index order."""
        return [self._records[h] for h in self.elite_hashes()]


class CVTMapElites(MapElites):
    """CVT-MAP-Elites: the same algorithm over a centroidal Voronoi tessellation of the descriptor space.

    Descriptors are normalised to [0, 1] each; ``cells`` centroids come from k-means over ``cvt_samples``
    uniform points (seeded from ``seed``, so a campaign's tessellation is fixed; it is also saved in the
    state). Descriptor bins are not used.
    """

    NAME = "cvt_map_elites"
    SETTINGS: ClassVar[dict[str, Setting]] = {
        **MapElites.SETTINGS,
        "cells": Setting(kind=int, default=64, low=2, high=100_000, doc="number of CVT cells (centroids)"),
        "cvt_samples": Setting(kind=int, default=20_000, low=100, high=10_000_000,
                               doc="uniform samples clustered by k-means into the centroids"),
    }

    def _check_settings(self, s: dict[str, Any], field: str) -> None:
        if s["cvt_samples"] < s["cells"]:
            raise StrategyConfigError(f"{field}.cvt_samples", s["cvt_samples"],
                                      f"at least cells = {s['cells']}")

    def _make_archive(self, config: Mapping[str, Any] | None) -> QDArchive:
        """A CVT archive: its centroids from ``config`` (a restore: no k-means), else those of this strategy's
        earlier archive, else made by k-means on first use (so at most once per strategy object)."""
        earlier: QDArchive | None = getattr(self, "_tessellation", None)
        centroids = config.get("centroids") if config else (earlier.centroids if earlier is not None else None)
        archive = QDArchive(descriptors=self.descriptors, solution_dim=self.codec.dim, kind="cvt",
                            cells=self.settings["cells"], centroids=centroids,
                            cvt_samples=self.settings["cvt_samples"], seed=self.seed,
                            qd_offset=self.settings["qd_offset"])
        self._tessellation = archive
        return archive

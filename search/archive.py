"""QD archives keyed by genome hash, and the QD metrics read from them (pyribs' definitions).

:class:`QDArchive` wraps a pyribs ``GridArchive`` (MAP-Elites: one cell per combination of descriptor bins)
or ``CVTArchive`` (CVT-MAP-Elites: one cell per centroid of a k-means tessellation). Solutions stored in it are
``VectorCodec.encode(genome)`` vectors, so an elite decodes back to exactly its genome; the wrapper also keeps
the genome hash and raw descriptor values of every elite.

Metrics follow pyribs' ``ArchiveStats`` exactly (Mouret & Clune 2015, Pugh et al. 2016):

- ``qd_score`` = Σ over elites of (fitness − offset), with a fixed offset chosen once per campaign so that
  the score is comparable over time (pyribs' ``qd_score_offset``);
- ``coverage`` = elites / cells;
- ``archive_best_fitness`` is the best elite's fitness (pyribs' ``obj_max``); a strategy's ``best_fitness``
  is the best over all its successful evaluations (equal unless some had no computable descriptors).

CVT archives see descriptors normalised to [0, 1] each (so that no descriptor dominates the Euclidean
distance to the centroids); grid archives see raw descriptor values over each descriptor's declared range.
Values outside a range are clipped into the border cells (pyribs' behaviour).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from search.descriptors import Descriptor

ArchiveKind = Literal["grid", "cvt"]


class QDArchive:
    """A pyribs grid or CVT archive over ``descriptors`` whose elites are identified by genome hash."""

    def __init__(self, *, descriptors: Sequence[Descriptor], solution_dim: int, kind: ArchiveKind = "grid",
                 cells: int = 64, centroids: Sequence[Sequence[float]] | None = None, cvt_samples: int = 20_000,
                 seed: int = 0, qd_offset: float = 0.0):
        from ribs.archives import CVTArchive, GridArchive, k_means_centroids  # here: pyribs imports slowly

        if not descriptors:
            raise ValueError("a QD archive needs at least one descriptor")
        self.descriptors = list(descriptors)
        self.kind = kind
        self.qd_offset = float(qd_offset)
        self._elites: dict[int, tuple[str, list[float], float]] = {}  # cell index → (hash, values, fitness)
        self._occupied: list[int] = []  # the keys of _elites, sorted (kept up to date on insertion)
        if kind == "grid":
            self.archive: Any = GridArchive(
                solution_dim=solution_dim, dims=[d.bins for d in self.descriptors],
                ranges=[d.range for d in self.descriptors], qd_score_offset=self.qd_offset, seed=seed)
            self.centroids: np.ndarray | None = None
        elif kind == "cvt":
            k = len(self.descriptors)
            if centroids is None:
                centroids, _ = k_means_centroids(centroids=cells, ranges=[(0.0, 1.0)] * k,
                                                 samples=max(cvt_samples, cells), seed=seed)
            self.centroids = np.asarray(centroids, dtype=np.float64)
            self.archive = CVTArchive(solution_dim=solution_dim, centroids=self.centroids,
                                      ranges=[(0.0, 1.0)] * k, qd_score_offset=self.qd_offset, seed=seed)
        else:
            raise ValueError(f"archive kind {kind!r}: allowed is 'grid' or 'cvt'")

    # -- placement ---------------------------------------------------------------------------------------
    @property
    def cells(self) -> int:
        return int(self.archive.cells)

    def measures(self, values: Sequence[float]) -> np.ndarray:
        """The point pyribs sees for raw descriptor ``values`` (normalised for CVT archives)."""
        if self.kind == "cvt":
            return np.array([d.normalise(v) for d, v in zip(self.descriptors, values, strict=True)])
        return np.asarray(values, dtype=np.float64)

    def index_of(self, values: Sequence[float]) -> int:
        return int(self.archive.index_of_single(self.measures(values)))

    def cell_name(self, index: int) -> str:
        """A readable cell id: grid indices joined by ``_`` ("3_7"), or the centroid number ("12")."""
        if self.kind == "grid":
            return "_".join(str(int(i)) for i in self.archive.int_to_grid_index([index])[0])
        return str(int(index))

    def cell_of_values(self, values: Sequence[float]) -> str:
        return self.cell_name(self.index_of(values))

    # -- insertion -----------------------------------------------------------------------------------------
    def add(self, genome_hash: str, solution: np.ndarray, fitness: float, values: Sequence[float], *, rung: int = 0,
            seeds: int = 1) -> bool:
        """Offer one evaluated genome; True when it became its cell's elite (MAP-Elites' rule: strictly better)."""
        index = self.index_of(values)
        info = self.archive.add_single(solution, fitness, self.measures(values))
        inserted = int(info["status"]) > 0
        if inserted:
            if index not in self._elites:
                bisect.insort(self._occupied, index)
            self._elites[index] = (genome_hash, [float(v) for v in values], float(fitness))
        return inserted

    # -- queries -------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.archive)

    def elite_indices(self) -> list[int]:
        """Occupied cells in increasing index order (a deterministic order for parent selection).

        The list is the archive's own (no copy: O(1) per call); do not change it."""
        return self._occupied

    def elite_hash(self, index: int) -> str:
        return self._elites[index][0]

    def elite_hashes(self) -> list[str]:
        return [self._elites[i][0] for i in self.elite_indices()]

    def stats(self) -> dict[str, float]:
        """qd_score, coverage, archive_size and the best elite's fitness, read from pyribs' ArchiveStats."""
        s = self.archive.stats
        out = {"qd_score": float(s.qd_score), "coverage": float(s.coverage), "archive_size": float(s.num_elites),
               "norm_qd_score": float(s.norm_qd_score)}
        if s.obj_max is not None:
            out["archive_best_fitness"] = float(s.obj_max)
        return out

    def rows(self) -> list[dict[str, Any]]:
        """Elites as plain rows: hash, fitness, descriptor values by name, cell (index order)."""
        out = []
        for index in self.elite_indices():
            genome_hash, values, fitness = self._elites[index]
            out.append({"hash": genome_hash, "fitness": fitness, "cell": self.cell_name(index),
                        "descriptors": {d.name: v for d, v in zip(self.descriptors, values, strict=True)}})
        return out

    def config(self) -> dict[str, Any]:
        """Plain data that rebuilds the same empty archive (the CVT centroids, listed exactly)."""
        out: dict[str, Any] = {"kind": self.kind, "descriptors": [d.to_config() for d in self.descriptors],
                               "qd_offset": self.qd_offset}
        if self.centroids is not None:
            out["centroids"] = self.centroids.tolist()
        return out


def grid_coverage(points: Sequence[Sequence[float]], ranges: Sequence[tuple[float, float]],
                  bins: Sequence[int]) -> float:
    """Fraction of the cells of a uniform grid over ``ranges`` that hold at least one of ``points``.

    Used to measure how much of a behaviour space a search visited (all evaluations, not only elites),
    binned like pyribs' GridArchive (clipped into the border cells).
    """
    if len(points) == 0:
        return 0.0
    p = np.asarray(points, dtype=np.float64)
    lo = np.array([r[0] for r in ranges])
    hi = np.array([r[1] for r in ranges])
    b = np.asarray(bins)
    idx = np.clip(((b * (p - lo) + 1e-6) / (hi - lo)).astype(int), 0, b - 1)  # as GridArchive.index_of
    return len({tuple(row) for row in idx.tolist()}) / float(np.prod(b))

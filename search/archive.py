"""QD archives keyed by genome hash, with fidelity rungs and repeated seeds, and the QD metrics read from them.

:class:`QDArchive` is a grid archive (MAP-Elites: one cell per combination of descriptor bins) or a CVT archive
(CVT-MAP-Elites: one cell per centroid of a k-means tessellation), implemented here with numpy only, so that
importing it (and building one from saved centroids) costs no pyribs, torch, numba or scikit-learn import.
Solutions stored in it are ``VectorCodec.encode(genome)`` vectors, so an elite decodes back to exactly its
genome; the archive also keeps each elite's genome hash, raw descriptor values, rung and seed count.

Placement (identical to pyribs' ``GridArchive`` / ``CVTArchive``, so cell names such as "3_7" do not change):

- grid: along descriptor j with ``bins`` b over ``[low, high]``, ``i_j = int((b·(v − low) + 1e-6) / (high −
  low))`` clipped to ``[0, b − 1]`` (values outside a range go to the border cells); the cell index is the
  row-major (C order) flattening of ``(i_0, i_1, …)`` and its name those grid indices joined by ``_``;
- CVT: descriptors are normalised to [0, 1] each (so that none dominates the distance) and the cell is the
  nearest centroid (Euclidean; the lowest index on an exact tie). Centroids are made once, lazily, by
  k-means exactly as pyribs' ``k_means_centroids`` makes them (``cvt_samples`` uniform points in [0, 1]^k
  from ``seed``, scikit-learn's Lloyd k-means with one random initialisation, seeded), and :meth:`config`
  lists them, so a restored archive never recomputes them.

THE RULE (which result holds a cell). A result is (genome hash, fitness, descriptor values, rung, seeds):
``rung`` is the fidelity rung it was measured at (a higher rung = a larger training budget), ``fitness`` is
the mean over ``seeds`` evaluations with fresh seeds at that rung (the caller averages; the archive stores).

1. An empty cell takes the newcomer.
2. Otherwise the newcomer replaces the cell's elite when its rung is higher, or when the rungs are equal and
   its fitness is strictly higher. A lower rung never replaces a higher one, whatever the two fitnesses:
   a number measured with less training does not mean the same thing. With ``noise_sd`` σ > 0 (the noise of
   one measurement, e.g. a model's estimate) "higher" at equal rungs compares the lower one-sigma bounds
   ``fitness − σ/√seeds``: a mean over four seeds at 0.80 holds against one lucky seed at 0.82 when σ = 0.05
   (0.775 against 0.77); σ = 0, the default, compares the means.
3. The same genome added again (a higher rung, or more seeds at the same rung: its fitness is then the new
   mean) updates its own entry when it is the elite of the cell its values fall in, even if its fitness went
   down (that is the best knowledge of it now). When it is not that cell's elite it is offered like a
   newcomer (rules 1–2); if it was the elite of another cell (its descriptors moved with more training),
   it leaves that cell, which becomes empty: each genome is in the archive at most once, where its latest
   measurement places it.
4. A report older than the entry the genome holds (a lower rung, or fewer seeds at the same rung) changes
   nothing.

:meth:`QDArchive.add` returns whether the genome is, after the call, the elite of the cell its values fall in.
With every result at rung 0 and one seed this is MAP-Elites' rule (a newcomer must be strictly better), and
the archive equals pyribs' fed the same results (tested).

Metrics follow pyribs' ``ArchiveStats`` (Mouret & Clune 2015, Pugh et al. 2016):

- ``qd_score`` = Σ over elites of (fitness − offset), with a fixed offset chosen once per campaign so that
  the score is comparable over time (pyribs' ``qd_score_offset``); ``norm_qd_score`` = qd_score / cells;
- ``coverage`` = elites / cells; ``archive_size`` = elites;
- ``archive_best_fitness`` is the best elite's fitness (pyribs' ``obj_max``) and ``best_rung`` the highest
  rung of any elite (both absent while the archive is empty); a strategy's ``best_fitness`` is the best over
  all its successful evaluations (equal unless some had no computable descriptors).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from search.descriptors import Descriptor

ArchiveKind = Literal["grid", "cvt"]
GRID_EPSILON = 1e-6  # pyribs' GridArchive epsilon: guards bin edges against floating-point error


@dataclass(slots=True)
class Elite:
    """One cell's elite: the genome, where it was measured (rung, seeds) and what it scored there."""

    hash: str
    solution: np.ndarray
    values: list[float]  # raw descriptor values
    fitness: float  # mean over `seeds` evaluations at `rung`
    rung: int
    seeds: int


def kmeans_centroids(*, cells: int, dims: int, samples: int, seed: int) -> np.ndarray:
    """``cells`` CVT centroids in [0, 1]^dims, made exactly as pyribs' ``k_means_centroids`` makes them."""
    from sklearn.cluster import k_means  # here: scikit-learn takes about a second to import

    rng = np.random.default_rng(seed)
    points = rng.uniform(np.zeros(dims), np.ones(dims), size=(samples, dims))
    centroids = np.asarray(k_means(points, cells, n_init=1, init="random", algorithm="lloyd",
                                   random_state=seed)[0], dtype=np.float64)
    if centroids.shape != (cells, dims):
        raise ValueError(f"cvt_samples = {samples}: k-means found {centroids.shape[0]} centroids for {cells} "
                         "cells; allowed is more samples (or fewer cells)")
    return centroids


def _grid_index(values: Sequence[float], lows: Sequence[float], widths: Sequence[float],
                bins: Sequence[int]) -> tuple[int, ...]:
    """Grid indices of ``values`` (pyribs' ``GridArchive.index_of`` arithmetic, in float64, clipped)."""
    return tuple(min(max(int((b * (v - lo) + GRID_EPSILON) / w), 0), b - 1)
                 for v, lo, w, b in zip(values, lows, widths, bins, strict=True))


class QDArchive:
    """A grid or CVT archive over ``descriptors`` whose elites are identified by genome hash (see THE RULE)."""

    def __init__(self, *, descriptors: Sequence[Descriptor], solution_dim: int, kind: ArchiveKind = "grid",
                 cells: int = 64, centroids: Sequence[Sequence[float]] | None = None, cvt_samples: int = 20_000,
                 seed: int = 0, qd_offset: float = 0.0, noise_sd: float = 0.0):
        if not descriptors:
            raise ValueError("a QD archive needs at least one descriptor")
        if kind not in ("grid", "cvt"):
            raise ValueError(f"archive kind {kind!r}: allowed is 'grid' or 'cvt'")
        self.descriptors = list(descriptors)
        self.kind: ArchiveKind = kind
        self.solution_dim = int(solution_dim)
        self.qd_offset = float(qd_offset)
        self.noise_sd = float(noise_sd)  # see THE RULE, 2 (may be updated as a model learns the noise)
        self._seed, self._cvt_samples = int(seed), int(cvt_samples)
        self._lows = [float(d.low) for d in self.descriptors]
        self._widths = [float(d.high) - float(d.low) for d in self.descriptors]
        self._bins = [int(d.bins) for d in self.descriptors]
        self._centroids: np.ndarray | None = None
        if kind == "grid":
            self._cells = math.prod(self._bins)
        elif centroids is not None:
            self._centroids = np.array(centroids, dtype=np.float64)
            if self._centroids.ndim != 2 or self._centroids.shape[1] != len(self.descriptors) or not len(
                    self._centroids) or not np.isfinite(self._centroids).all():
                raise ValueError(f"CVT centroids of shape {self._centroids.shape}: allowed is (cells, "
                                 f"{len(self.descriptors)}) finite numbers, one column per descriptor")
            self._cells = len(self._centroids)
        else:
            if isinstance(cells, bool) or int(cells) < 1:
                raise ValueError(f"CVT cells = {cells!r}: allowed is a positive integer")
            self._cells = int(cells)  # the centroids are made on first use (k-means takes a while)
        self._elites: dict[int, Elite] = {}  # cell index → its elite
        self._cell_of: dict[str, int] = {}  # genome hash → the cell it is the elite of
        self._occupied: list[int] = []  # the keys of _elites, sorted (kept up to date in place)
        self._sum = 0.0  # Σ fitness over elites
        self._best: float | None = None  # max elite fitness and rung; None = recompute on the next stats()
        self._best_rung: int | None = None

    # -- placement ---------------------------------------------------------------------------------------
    @property
    def cells(self) -> int:
        return self._cells

    @property
    def centroids(self) -> np.ndarray | None:
        """The CVT centroids in normalised descriptor space (made here on first use); None for a grid."""
        if self.kind == "cvt" and self._centroids is None:
            self._centroids = kmeans_centroids(cells=self._cells, dims=len(self.descriptors),
                                               samples=max(self._cvt_samples, self._cells), seed=self._seed)
        return self._centroids

    def measures(self, values: Sequence[float]) -> np.ndarray:
        """The point the archive places for raw descriptor ``values`` (normalised to [0, 1] for CVT archives)."""
        if self.kind == "cvt":
            return np.array([d.normalise(v) for d, v in zip(self.descriptors, values, strict=True)])
        return np.asarray(values, dtype=np.float64)

    def _check_values(self, values: Sequence[float]) -> list[float]:
        out = [float(v) for v in values]
        if len(out) != len(self.descriptors) or not all(map(math.isfinite, out)):
            raise ValueError(f"descriptor values {out}: allowed is {len(self.descriptors)} finite numbers, one per "
                             f"descriptor {[d.name for d in self.descriptors]}")
        return out

    def index_of(self, values: Sequence[float]) -> int:
        """The cell index raw descriptor ``values`` fall in (see the module docstring)."""
        return self._index(self._check_values(values))

    def _index(self, checked: list[float]) -> int:
        if self.kind == "grid":
            index = 0
            for i, b in zip(_grid_index(checked, self._lows, self._widths, self._bins), self._bins, strict=True):
                index = index * b + i
            return index
        centroids = self.centroids
        assert centroids is not None
        return int(np.argmin(np.square(self.measures(checked) - centroids).sum(axis=1)))

    def grid_index(self, index: int) -> tuple[int, ...]:
        """A grid cell's indices along each descriptor (row-major, as pyribs' ``int_to_grid_index``)."""
        if self.kind != "grid":
            raise ValueError(f"grid_index({index}): a {self.kind} archive has no grid indices")
        out = []
        for b in reversed(self._bins):
            index, i = divmod(int(index), b)
            out.append(i)
        return tuple(reversed(out))

    def cell_name(self, index: int) -> str:
        """A readable cell id: grid indices joined by ``_`` ("3_7"), or the centroid number ("12")."""
        if self.kind == "grid":
            return "_".join(str(i) for i in self.grid_index(index))
        return str(int(index))

    def cell_of_values(self, values: Sequence[float]) -> str:
        return self.cell_name(self.index_of(values))

    # -- insertion -----------------------------------------------------------------------------------------
    def add(self, genome_hash: str, solution: np.ndarray, fitness: float, values: Sequence[float], *,
            rung: int = 0, seeds: int = 1) -> bool:
        """Offer one result (THE RULE, module docstring); True when the genome is now its cell's elite.

        ``fitness`` is the mean over ``seeds`` evaluations at fidelity rung ``rung``.
        """
        fitness = float(fitness)
        if not math.isfinite(fitness):
            raise ValueError(f"add({genome_hash}): fitness = {fitness!r}: allowed is a finite number")
        if isinstance(rung, bool) or not isinstance(rung, (int, np.integer)) or rung < 0:
            raise ValueError(f"add({genome_hash}): rung = {rung!r}: allowed is a non-negative integer")
        if isinstance(seeds, bool) or not isinstance(seeds, (int, np.integer)) or seeds < 1:
            raise ValueError(f"add({genome_hash}): seeds = {seeds!r}: allowed is a positive integer")
        sol = np.array(solution, dtype=np.float64)
        if sol.shape != (self.solution_dim,):
            raise ValueError(f"add({genome_hash}): solution of shape {sol.shape}: allowed is "
                             f"({self.solution_dim},)")
        checked = self._check_values(values)
        index = self._index(checked)
        new = Elite(hash=genome_hash, solution=sol, values=checked, fitness=fitness, rung=int(rung), seeds=int(seeds))
        own = self._cell_of.get(genome_hash)
        if own is not None:
            held = self._elites[own]
            if (new.rung, new.seeds) < (held.rung, held.seeds):  # rule 4: older news than the entry holds
                return own == index
            if own == index:  # rule 3: its own entry, updated even when the fitness went down
                self._put(index, new)
                return True
            self._remove(own)  # rule 3: its descriptors moved; it is offered to its new cell below
        held = self._elites.get(index)
        if held is None or new.rung > held.rung or (new.rung == held.rung and self._bound(new) > self._bound(held)):
            self._put(index, new)  # rules 1-2
            return True
        return False

    def _bound(self, elite: Elite) -> float:
        """What equal-rung elites are compared by: the mean, less one noise sd of a mean over its seeds."""
        return elite.fitness - self.noise_sd / math.sqrt(elite.seeds) if self.noise_sd > 0 else elite.fitness

    def _put(self, index: int, elite: Elite) -> None:
        first = not self._elites
        old = self._elites.get(index)
        if old is None:
            bisect.insort(self._occupied, index)
            self._sum += elite.fitness
        else:
            del self._cell_of[old.hash]
            self._sum += elite.fitness - old.fitness
        self._elites[index] = elite
        self._cell_of[elite.hash] = index
        if old is not None and elite.fitness < old.fitness:
            self._best = None  # the best elite may have gone down: recomputed by the next stats()
        elif self._best is not None or first:
            self._best = elite.fitness if first else max(self._best, elite.fitness)  # type: ignore[type-var]
        if self._best_rung is not None or first:  # a put never lowers a cell's rung (THE RULE)
            self._best_rung = elite.rung if first else max(self._best_rung, elite.rung)  # type: ignore[type-var]

    def _remove(self, index: int) -> None:
        old = self._elites.pop(index)
        del self._cell_of[old.hash]
        del self._occupied[bisect.bisect_left(self._occupied, index)]
        self._sum -= old.fitness
        self._best = self._best_rung = None

    # -- queries -------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._elites)

    def elite_indices(self) -> list[int]:
        """Occupied cells in increasing index order (a deterministic order for parent selection).

        The list is the archive's own (no copy: O(1) per call); do not change it."""
        return self._occupied

    def elite_hash(self, index: int) -> str:
        return self._elites[index].hash

    def elite_hashes(self) -> list[str]:
        return [self._elites[i].hash for i in self._occupied]

    def elite(self, index: int) -> Elite:
        """The elite of an occupied cell (KeyError for an empty one); do not change it."""
        return self._elites[index]

    def elite_cell(self, genome_hash: str) -> int | None:
        """The index of the cell ``genome_hash`` is the elite of, or None."""
        return self._cell_of.get(genome_hash)

    def stats(self) -> dict[str, float]:
        """qd_score, coverage, archive_size, norm_qd_score; the best elite's fitness and rung when not empty."""
        n = len(self._elites)
        qd_score = self._sum - n * self.qd_offset
        out = {"qd_score": qd_score, "coverage": n / self._cells, "archive_size": float(n),
               "norm_qd_score": qd_score / self._cells}
        if n:
            if self._best is None or self._best_rung is None:
                self._best = max(e.fitness for e in self._elites.values())
                self._best_rung = max(e.rung for e in self._elites.values())
            out["archive_best_fitness"] = self._best
            out["best_rung"] = float(self._best_rung)
        return out

    def rows(self) -> list[dict[str, Any]]:
        """Elites as plain rows: hash, fitness, rung, seeds, descriptor values by name, cell (index order)."""
        out = []
        for index in self._occupied:
            e = self._elites[index]
            out.append({"hash": e.hash, "fitness": e.fitness, "rung": e.rung, "seeds": e.seeds,
                        "cell": self.cell_name(index),
                        "descriptors": {d.name: v for d, v in zip(self.descriptors, e.values, strict=True)}})
        return out

    def data(self) -> dict[str, np.ndarray]:
        """The elites as arrays in index order: index, solution, fitness, values (raw), measures (the placed
        point: normalised for CVT), rung, seeds."""
        elites = [self._elites[i] for i in self._occupied]
        k = len(self.descriptors)
        values = np.array([e.values for e in elites], dtype=np.float64).reshape(len(elites), k)
        measures = (np.array([self.measures(e.values) for e in elites]).reshape(len(elites), k)
                    if self.kind == "cvt" else values.copy())
        return {"index": np.array(self._occupied, dtype=np.int64),
                "solution": np.array([e.solution for e in elites]).reshape(len(elites), self.solution_dim),
                "fitness": np.array([e.fitness for e in elites], dtype=np.float64), "values": values,
                "measures": measures, "rung": np.array([e.rung for e in elites], dtype=np.int64),
                "seeds": np.array([e.seeds for e in elites], dtype=np.int64)}

    def contents(self) -> dict[str, Any]:
        """The elites and the running sums as plain data: :meth:`restore` makes this archive again exactly."""
        return {"sum": self._sum, "noise_sd": self.noise_sd, "elites": [
            [i, e.hash, e.solution.tolist(), e.values, e.fitness, e.rung, e.seeds] for i, e in self._elites.items()]}

    def restore(self, contents: Mapping[str, Any]) -> None:
        """Hold what :meth:`contents` saved (into an archive made from the same :meth:`config`)."""
        self._elites = {int(i): Elite(hash=str(h), solution=np.array(s, dtype=np.float64), values=[float(v) for v in
                                      values], fitness=float(f), rung=int(r), seeds=int(n))
                        for i, h, s, values, f, r, n in contents["elites"]}
        self._cell_of = {e.hash: i for i, e in self._elites.items()}
        self._occupied = sorted(self._elites)
        self._sum, self.noise_sd = float(contents["sum"]), float(contents["noise_sd"])
        self._best = self._best_rung = None  # recomputed by the next stats()

    def config(self) -> dict[str, Any]:
        """Plain data that rebuilds the same empty archive (the CVT centroids, listed exactly)."""
        out: dict[str, Any] = {"kind": self.kind, "descriptors": [d.to_config() for d in self.descriptors],
                               "qd_offset": self.qd_offset}
        if self.kind == "cvt":
            out["centroids"] = self.centroids.tolist()  # type: ignore[union-attr]
        return out


def grid_coverage(points: Sequence[Sequence[float]], ranges: Sequence[tuple[float, float]],
                  bins: Sequence[int]) -> float:
    """Fraction of the cells of a uniform grid over ``ranges`` that hold at least one of ``points``.

    Used to measure how much of a behaviour space a search visited (all evaluations, not only elites),
    binned like a grid archive (clipped into the border cells).
    """
    if len(points) == 0:
        return 0.0
    lows = [float(r[0]) for r in ranges]
    widths = [float(r[1]) - float(r[0]) for r in ranges]
    b = [int(n) for n in bins]
    seen = {_grid_index([float(v) for v in p], lows, widths, b) for p in points}
    return len(seen) / float(math.prod(b))

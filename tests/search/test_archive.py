"""QDArchive: the same cells, elites and metrics as pyribs for plain results, and THE RULE across rungs and seeds.

pyribs is imported here only, as the reference; ``search.archive`` itself must not import it (checked in a
subprocess, together with torch, numba and scikit-learn).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence

import numpy as np
import pytest
from ribs.archives import CVTArchive, GridArchive, k_means_centroids

from search.archive import QDArchive, grid_coverage
from search.descriptors import Descriptor, make_descriptors
from search.strategies import make_strategy
from tests.search import landscapes as L

HEAVY = ("ribs", "torch", "numba", "sklearn")


def _descriptors(ranges: Sequence[tuple[float, float]], bins: Sequence[int]) -> list[Descriptor]:
    return [Descriptor(name=f"d{i}", label=f"d{i}", low=lo, high=hi, bins=b, fn=lambda g, r: 0.0)
            for i, ((lo, hi), b) in enumerate(zip(ranges, bins, strict=True))]


def _stream(ranges: Sequence[tuple[float, float]], bins: Sequence[int], n: int, seed: int) -> tuple[np.ndarray,
                                                                                                      np.ndarray]:
    """Descriptor values (10 % beyond each range, some exactly on bin edges) and fitnesses with many ties."""
    rng = np.random.default_rng(seed)
    lo = np.array([r[0] for r in ranges])
    hi = np.array([r[1] for r in ranges])
    values = rng.uniform(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo), size=(n, len(ranges)))
    edges = rng.random((n, len(ranges))) < 0.2  # on a bin boundary: the epsilon decides the cell
    on_edge = lo + rng.integers(0, np.array(bins) + 1, size=(n, len(ranges))) * (hi - lo) / np.array(bins)
    values = np.where(edges, on_edge, values)
    fitness = np.round(rng.normal(0.5, 0.2, size=n), 2)  # rounded: equal fitnesses (no replacement) happen
    return values, fitness


def _same_as_pyribs(mine: QDArchive, theirs: GridArchive | CVTArchive, hashes: list[str], grid: bool) -> None:
    data = theirs.data()
    ref = {int(i): (hashes[int(s[0])], float(f)) for i, s, f in
           zip(data["index"], data["solution"], data["objective"], strict=True)}
    assert mine.elite_indices() == sorted(ref)
    assert {i: (mine.elite_hash(i), mine.elite(i).fitness) for i in mine.elite_indices()} == ref
    if grid:
        names = {int(i): "_".join(map(str, g)) for i, g in
                 zip(data["index"], theirs.int_to_grid_index(data["index"]), strict=True)}
        assert {i: mine.cell_name(i) for i in mine.elite_indices()} == names
    s, ts = mine.stats(), theirs.stats
    assert s["qd_score"] == pytest.approx(float(ts.qd_score), rel=1e-12)
    assert s["norm_qd_score"] == pytest.approx(float(ts.norm_qd_score), rel=1e-12)
    assert s["coverage"] == float(ts.coverage) and s["archive_size"] == ts.num_elites == len(mine)
    assert s["archive_best_fitness"] == float(ts.obj_max) and s["best_rung"] == 0.0


@pytest.mark.parametrize(("ranges", "bins"), [([(0.0, 1.0), (0.0, 1.0)], [10, 10]),
                                              ([(-2.0, 3.0), (5.0, 9.0), (0.0, 0.3)], [7, 4, 5])])
def test_grid_cells_elites_and_metrics_equal_pyribs(ranges: list[tuple[float, float]], bins: list[int]) -> None:
    values, fitness = _stream(ranges, bins, 3000, seed=len(bins))
    mine = QDArchive(descriptors=_descriptors(ranges, bins), solution_dim=1, kind="grid", qd_offset=-0.25)
    theirs = GridArchive(solution_dim=1, dims=bins, ranges=ranges, qd_score_offset=-0.25)
    hashes = [f"g{i}" for i in range(len(values))]
    for i, (v, f) in enumerate(zip(values, fitness, strict=True)):
        assert mine.index_of(v) == int(theirs.index_of_single(v))
        status = theirs.add_single(np.array([i]), f, v)["status"]
        assert mine.add(hashes[i], np.array([i]), f, v) == (int(status) > 0)
    _same_as_pyribs(mine, theirs, hashes, grid=True)
    every = np.arange(mine.cells)
    assert [mine.cell_name(int(i)) for i in every] == ["_".join(map(str, g)) for g in theirs.int_to_grid_index(every)]


def test_cvt_centroids_cells_elites_and_metrics_equal_pyribs() -> None:
    ds = _descriptors([(0.0, 4.0), (-1.0, 1.0), (10.0, 20.0)], [1, 1, 1])
    mine = QDArchive(descriptors=ds, solution_dim=1, kind="cvt", cells=40, cvt_samples=3000, seed=7, qd_offset=0.5)
    centroids, _ = k_means_centroids(centroids=40, ranges=[(0.0, 1.0)] * 3, samples=3000, seed=7)
    assert np.array_equal(mine.centroids, centroids)  # made exactly as pyribs makes them
    theirs = CVTArchive(solution_dim=1, centroids=centroids, ranges=[(0.0, 1.0)] * 3, qd_score_offset=0.5)
    values, fitness = _stream([d.range for d in ds], [5, 5, 5], 2000, seed=3)
    hashes = [f"g{i}" for i in range(len(values))]
    for i, (v, f) in enumerate(zip(values, fitness, strict=True)):
        m = mine.measures(v)
        assert mine.index_of(v) == int(theirs.index_of_single(m))
        status = theirs.add_single(np.array([i]), f, m)["status"]
        assert mine.add(hashes[i], np.array([i]), f, v) == (int(status) > 0)
    _same_as_pyribs(mine, theirs, hashes, grid=False)
    restored = QDArchive(descriptors=ds, solution_dim=1, kind="cvt", **{k: v for k, v in mine.config().items()
                                                                        if k in ("centroids", "qd_offset")})
    assert restored.cells == 40 and np.array_equal(restored.centroids, centroids)


def _two_cells() -> QDArchive:
    return QDArchive(descriptors=_descriptors([(0.0, 1.0)], [2]), solution_dim=2, kind="grid", qd_offset=-1.0)


LEFT, RIGHT = [0.2], [0.8]
SOL = np.zeros(2)


def test_a_lower_rung_never_replaces_a_higher_one_and_a_higher_rung_always_does() -> None:
    qd = _two_cells()
    assert qd.add("a", SOL, 0.5, LEFT, rung=1)
    assert not qd.add("b", SOL, 0.99, LEFT, rung=0)  # better number, less training: not comparable
    assert qd.elite_hash(0) == "a"
    assert qd.add("c", SOL, 0.1, LEFT, rung=2)  # more training wins whatever the number
    assert qd.elite_hashes() == ["c"] and qd.elite_cell("a") is None and qd.elite_cell("c") == 0
    s = qd.stats()
    assert s["qd_score"] == pytest.approx(1.1) and s["archive_best_fitness"] == 0.1 and s["best_rung"] == 2.0


def test_equal_rungs_compare_fitness_strictly() -> None:
    qd = _two_cells()
    assert qd.add("a", SOL, 0.5, RIGHT, rung=1)
    assert not qd.add("b", SOL, 0.5, RIGHT, rung=1)  # a tie keeps the incumbent
    assert not qd.add("c", SOL, 0.4, RIGHT, rung=1)
    assert qd.add("d", SOL, 0.6, RIGHT, rung=1)
    assert qd.rows() == [{"hash": "d", "fitness": 0.6, "rung": 1, "seeds": 1, "cell": "1",
                          "descriptors": {"d0": 0.8}}]


def test_a_genome_re_added_with_more_seeds_updates_its_mean_and_the_qd_score_follows() -> None:
    qd = _two_cells()
    qd.add("a", SOL, 0.9, LEFT)
    qd.add("b", SOL, 0.3, RIGHT)
    assert qd.stats()["qd_score"] == pytest.approx(0.9 + 1 + 0.3 + 1)
    assert qd.add("a", SOL, 0.6, LEFT, seeds=4)  # the mean over 4 seeds went down: still its best knowledge
    row = qd.rows()[0]
    assert (row["hash"], row["fitness"], row["rung"], row["seeds"]) == ("a", 0.6, 0, 4)
    s = qd.stats()
    assert s["qd_score"] == pytest.approx(0.6 + 1 + 0.3 + 1) and s["archive_best_fitness"] == 0.6
    assert qd.add("a", SOL, 0.9, LEFT, seeds=2)  # an older report (fewer seeds) changes nothing
    assert qd.elite(0).fitness == 0.6 and qd.elite(0).seeds == 4
    assert qd.add("e", SOL, 0.61, LEFT)  # the rule at equal rungs compares the numbers, whatever the seeds
    assert qd.elite_hash(0) == "e" and qd.stats()["qd_score"] == pytest.approx(0.61 + 1 + 0.3 + 1)


def test_a_genome_that_is_not_the_elite_is_offered_again_like_a_newcomer() -> None:
    qd = _two_cells()
    qd.add("a", SOL, 0.9, LEFT)
    assert not qd.add("b", SOL, 0.5, LEFT)
    assert qd.add("b", SOL, 0.4, LEFT, rung=1)  # promoted: now measured at a higher rung than a
    assert qd.elite_hashes() == ["b"] and qd.stats()["best_rung"] == 1.0


def test_a_genome_whose_descriptors_move_leaves_its_old_cell() -> None:
    qd = _two_cells()
    qd.add("a", SOL, 0.9, LEFT)
    qd.add("b", SOL, 0.7, RIGHT, rung=1)
    assert not qd.add("a", SOL, 0.6, RIGHT, rung=1)  # moved right, where b is better at the same rung
    assert qd.elite_hashes() == ["b"] and qd.elite_indices() == [1] and len(qd) == 1
    s = qd.stats()
    assert s["qd_score"] == pytest.approx(1.7) and s["archive_best_fitness"] == 0.7 and s["coverage"] == 0.5
    assert qd.add("a", SOL, 0.95, LEFT, rung=2)  # and back, a rung higher: an empty cell takes it
    assert qd.elite_indices() == [0, 1] and qd.stats()["best_rung"] == 2.0


def test_elite_indices_is_one_shared_list_kept_in_index_order() -> None:
    qd = QDArchive(descriptors=_descriptors([(0.0, 1.0)], [10]), solution_dim=2)
    shared = qd.elite_indices()
    for i, v in enumerate([0.95, 0.05, 0.55, 0.05]):
        qd.add(f"g{i}", SOL, float(i), [v])
    assert qd.elite_indices() is shared and shared == [0, 5, 9]


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"fitness": float("nan")}, "fitness = nan"), ({"rung": -1}, "rung = -1"), ({"seeds": 0}, "seeds = 0"),
    ({"values": [0.5, 0.5]}, "descriptor values"), ({"values": [float("inf")]}, "descriptor values"),
    ({"solution": np.zeros(3)}, r"solution of shape \(3,\)")])
def test_bad_results_are_refused_naming_the_field(kwargs: dict, match: str) -> None:
    args = {"genome_hash": "a", "solution": SOL, "fitness": 0.5, "values": LEFT, **kwargs}
    with pytest.raises(ValueError, match=match):
        _two_cells().add(**args)


def test_grid_coverage_bins_like_the_archive() -> None:
    assert grid_coverage([], [(0, 1)], [4]) == 0.0
    assert grid_coverage([[0.0, 0.0], [0.99, 0.2], [1.5, -3.0], [0.26, 0.0]], [(0, 1), (0, 1)], [4, 2]) == 3 / 8


def test_importing_and_restoring_needs_no_pyribs_torch_numba_or_sklearn() -> None:
    """``import search.archive`` / ``search.strategies``, a grid archive, and a CVT strategy restored from its
    state (the saved centroids: no k-means) load none of the heavy libraries."""
    space = L.space()
    descriptors = make_descriptors(L.DESCRIPTORS, space=space)
    cvt = make_strategy("cvt_map_elites", space=space, seed=0, descriptors=descriptors,
                        settings={"cells": 16, "cvt_samples": 500, "initial_samples": 5})
    L.run(cvt, L.Landscape(space).evaluate, budget=30)
    child = f"""
import json, sys
import search.archive, search.strategies
from search.archive import QDArchive
from search.descriptors import make_descriptors
from search.strategies import make_strategy
from tests.search import landscapes as L
heavy = {HEAVY!r}
loaded = lambda: sorted({{m.split(".")[0] for m in sys.modules}} & set(heavy))
assert not loaded(), loaded()
space = L.space()
ds = make_descriptors(L.DESCRIPTORS, space=space)
qd = QDArchive(descriptors=ds, solution_dim=3)
qd.add("a", [0.0, 0.0, 0.0], 0.5, [0.3, 0.4], rung=1, seeds=2)
state = json.loads(sys.stdin.read())
cvt = make_strategy("cvt_map_elites", space=space, seed=0, descriptors=ds,
                    settings={{"cells": 16, "cvt_samples": 500, "initial_samples": 5}})
cvt.load_state_dict(state)
print(json.dumps({{"loaded": loaded(), "metrics": cvt.metrics(), "elites": cvt.elite_hashes(),
                  "asked": [p.genome.hash for p in cvt.ask(3)]}}))
"""
    out = subprocess.run([sys.executable, "-c", child], input=json.dumps(cvt.state_dict()), capture_output=True,
                         text=True, check=True, timeout=120).stdout
    got = json.loads(out.strip().splitlines()[-1])
    assert got["loaded"] == []
    assert got["elites"] == cvt.elite_hashes() and got["metrics"] == pytest.approx(cvt.metrics())
    assert got["asked"] == [p.genome.hash for p in cvt.ask(3)]

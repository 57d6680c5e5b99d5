"""Archive heatmaps and metric plots are written as non-trivial PNG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from search.descriptors import make_descriptors
from search.strategies import Strategy, make_strategy
from search.views import pictures as plots
from tests.search import landscapes as L

SPACE = L.space()


def _run(name: str, descriptors: list, budget: int = 120, **settings: object
         ) -> tuple[Strategy, list[dict[str, float]]]:
    strategy = make_strategy(name, space=SPACE, seed=0, descriptors=descriptors, settings=dict(settings))
    history: list[dict[str, float]] = []
    L.run(strategy, L.Landscape(SPACE, fail_above=0.9).evaluate, budget=budget,
          on_tell=lambda s: history.append(s.metrics()))
    return strategy, history


def _check_png(path: Path, min_bytes: int = 8_000) -> np.ndarray:
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > min_bytes
    image = imread(path)
    assert image.shape[0] > 200 and image.shape[1] > 200
    assert float(image[..., :3].std()) > 0.05, "the picture is not blank"
    assert not list(path.parent.glob("*.tmp.png")), "no temporary file is left behind"
    return image


@pytest.fixture(scope="module")
def two_d() -> tuple[Strategy, list[dict[str, float]]]:
    return _run("map_elites", make_descriptors(L.DESCRIPTORS, space=SPACE))


def test_grid_heatmap_and_its_transpose(tmp_path: Path, two_d: tuple) -> None:
    strategy, _ = two_d
    a = _check_png(plots.archive_heatmap(strategy, tmp_path / "archive.png"))
    b = _check_png(plots.archive_heatmap(strategy.qd, tmp_path / "sub" / "t.png", x="tests.search.landscapes:b1",
                                         y="tests.search.landscapes:b0", title="transposed"))
    assert a.shape[:2] != (0, 0) and not np.array_equal(a, b)


def test_cvt_heatmap(tmp_path: Path) -> None:
    strategy, _ = _run("cvt_map_elites", make_descriptors(L.DESCRIPTORS, space=SPACE), cells=32, cvt_samples=1000)
    _check_png(plots.archive_heatmap(strategy, tmp_path / "cvt.png"))


def test_projection_of_three_descriptors_and_one_descriptor(tmp_path: Path) -> None:
    three = make_descriptors([*L.DESCRIPTORS, {"name": "ticks", "bins": 5}], space=SPACE)
    strategy, _ = _run("novelty", three)
    _check_png(plots.archive_heatmap(strategy, tmp_path / "proj.png", x="ticks", y="tests.search.landscapes:b1"))
    one, _ = _run("random", make_descriptors(["memory_length"], space=SPACE), budget=40)
    _check_png(plots.archive_heatmap(one, tmp_path / "one.png"), min_bytes=3_000)


def test_metrics_over_evaluations_and_comparison(tmp_path: Path, two_d: tuple) -> None:
    _, history = two_d
    _check_png(plots.metrics_over_evaluations(history, tmp_path / "metrics.png", title="map_elites"))
    _check_png(plots.metrics_over_evaluations(history, tmp_path / "two.png", keys=["coverage", "qd_score"]),
               min_bytes=5_000)
    _, other = _run("random", make_descriptors(L.DESCRIPTORS, space=SPACE), budget=60)
    _check_png(plots.compare_plot({"map_elites": history, "random": other}, tmp_path / "cmp.png"),
               min_bytes=5_000)


def test_errors(tmp_path: Path, two_d: tuple) -> None:
    no_archive, _ = _run("random", [], budget=5)
    with pytest.raises(ValueError, match="keeps no QD archive"):
        plots.archive_heatmap(no_archive, tmp_path / "x.png")
    with pytest.raises(ValueError, match="heatmap axis 'ticks'"):
        plots.archive_heatmap(two_d[0], tmp_path / "x.png", x="ticks")
    with pytest.raises(ValueError, match="nothing to plot"):
        plots.metrics_over_evaluations([], tmp_path / "x.png")

"""The statistics of the CTM-Bench comparison (``benchmarks/ctmbench_stats.py``) on synthetic anytime curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def _anytime(final: float, reach: float, points: int = 100) -> list[float | None]:
    """A run whose reported quality rises linearly from 0.5 to ``final`` by the fraction ``reach`` of its compute."""
    x = np.linspace(0, 1, points + 1)[1:]
    return [None if f < 0.02 else float(0.5 + (final - 0.5) * min(f / reach, 1.0)) for f in x]


def test_median_curves_read_a_speed_up_that_per_run_times_cannot(monkeypatch):
    """An arm that gets where the reference ends in a third of the compute: the median curves' ratio says about
    1/3 with an interval below 1; the per-run ratio against the reference's own median is unbounded above."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from ctmbench_stats import curves, median_curve_ratio, per_run_ratio, steps_to
    rng = np.random.default_rng(0)
    compute = (np.linspace(0, 1, 101)[1:] * 1000).tolist()
    ref = [{"compute": compute, "quality_j": _anytime(0.8 + 0.02 * z, 1.0)} for z in rng.standard_normal(30)]
    fast = [{"compute": compute, "quality_j": _anytime(0.84 + 0.02 * z, 0.3)} for z in rng.standard_normal(30)]
    target = float(np.median([t["quality_j"][-1] for t in ref]))
    per_run = per_run_ratio(np.array([steps_to(t, target, "j") for t in fast]),
                            np.array([steps_to(t, target, "j") for t in ref]), np.random.default_rng(1))
    assert per_run["ci_high"] is None  # half the reference's runs never reach their own median
    (mine, c), (theirs, _) = curves(fast, "j"), curves(ref, "j")
    assert np.isneginf(mine[0, 0])  # before the first report
    ratio = median_curve_ratio(mine, theirs, c, np.random.default_rng(1))
    assert 0.2 < ratio["median"] < 0.4 and ratio["ci_high"] < 1.0
    same = median_curve_ratio(theirs, theirs, c, np.random.default_rng(1))
    assert same["median"] == 1.0 and same["ci_low"] < 1.0  # an arm against itself: no speed-up claimed ...
    assert same["ci_high"] is None or same["ci_high"] > 1.0  # ... (infinite: draws whose median ends lower)
    slow = [{"compute": compute, "quality_j": _anytime(0.7, 1.0)} for _ in range(5)]
    assert median_curve_ratio(curves(slow, "j")[0], theirs, c, np.random.default_rng(1))["median"] is None

"""The compute-to-target statistics of the CTM-Bench comparison (``benchmarks/ctmbench_compare.py``).

A run is an anytime curve: the judged quality of the genome it reports, at ``POINTS`` fractions of its compute
(``trace["compute"]``, ``trace["quality_<judge>"]``; ``None`` before the first report). Two readings of "compute
to reach the reference's median final quality", both with a bootstrap 95 % interval over seeds:

- :func:`per_run_ratio`: per run, the first compute at which that run reaches the target; the median over an
  arm's runs, divided by the reference's. A run that never reaches it counts as infinite. Against the reference's
  *own* median final quality this is degenerate: by the definition of a median, about half the reference's runs
  reach it only at their end or never, so its median time sits on the edge of infinity, and about half of the
  bootstrap draws are infinite: the upper end of the interval is infinite, or near the end of the budget, for any
  arm, however fast.
- :func:`median_curve_ratio`: the compute from which on an arm's *median curve* (the median over its runs at each
  compute fraction) stays at or above the target, divided by the same for the reference's median curve. The
  reference's median curve ends at the target, so its compute is finite in every draw; the target is recomputed
  in each draw from the resampled reference runs. This is the horizontal distance between the two median curves
  at the target's height, how speed-ups of optimisers are commonly read from their median anytime curves.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def steps_to(trace: dict[str, Any], target: float, judge: str) -> float:
    """The first compute at which one run's reported quality reaches ``target``; infinite if it never does."""
    for c, q in zip(trace["compute"], trace[f"quality_{judge}"], strict=True):
        if q is not None and q >= target:
            return float(c)
    return float("inf")


def point_and_interval(point: float, boot: np.ndarray) -> dict[str, Any]:
    """A point estimate with the 2.5 and 97.5 percentiles of its bootstrap draws; None for infinite ends."""
    with np.errstate(invalid="ignore"):  # draws that never reach the target are inf; inf - inf inside percentile
        low, high = np.percentile(boot, 2.5), np.percentile(boot, 97.5)
    finite = lambda v: float(v) if np.isfinite(v) else None  # noqa: E731
    return {"median": finite(point), "ci_low": finite(low), "ci_high": finite(high)}


def per_run_ratio(mine: np.ndarray, theirs: np.ndarray, rng: np.random.Generator, draws: int = 2000) -> dict[str, Any]:
    """Median of the arm's per-run computes to the target over the reference's (``mine``, ``theirs``: per run)."""
    def r(a: np.ndarray, b: np.ndarray) -> float:
        ma, mb = np.median(a), np.median(b)
        return float(ma / mb) if np.isfinite(ma) and np.isfinite(mb) and mb > 0 else float("inf")
    point = r(mine, theirs)
    boot = np.array([r(rng.choice(mine, len(mine)), rng.choice(theirs, len(theirs))) for _ in range(draws)])
    return point_and_interval(point, boot)


def curves(traces: list[dict[str, Any]], judge: str) -> tuple[np.ndarray, np.ndarray]:
    """The runs' curves as one array (runs × fractions; ``-inf`` before a run's first report) and the computes."""
    q = np.array([[-np.inf if v is None else v for v in t[f"quality_{judge}"]] for t in traces], dtype=float)
    return q, np.asarray(traces[0]["compute"], dtype=float)


def _reach(median_curve: np.ndarray, compute: np.ndarray, target: float) -> float:
    """The compute from which on the curve stays at or above ``target`` (a curve that touches it and falls back,
    as a reported best can when a later report is judged lower, has not reached it); infinite if it ends below."""
    below = np.flatnonzero(median_curve < target)
    if below.size and below[-1] == len(median_curve) - 1:
        return float("inf")
    return float(compute[below[-1] + 1]) if below.size else float(compute[0])


def median_curve_ratio(mine: np.ndarray, theirs: np.ndarray, compute: np.ndarray, rng: np.random.Generator,
                       draws: int = 2000) -> dict[str, Any]:
    """Compute from which on ``mine``'s median curve stays at or above the median final quality of ``theirs``,
    over the same for ``theirs``' median curve (``mine``, ``theirs``: runs × fractions, see :func:`curves`;
    both resampled by run in each bootstrap draw, independently, and the target with them)."""
    def r(a: np.ndarray, b: np.ndarray) -> float:
        target = float(np.median(b[:, -1]))
        return _reach(np.median(a, axis=0), compute, target) / _reach(np.median(b, axis=0), compute, target)
    point = r(mine, theirs)
    boot = np.array([r(mine[rng.integers(0, len(mine), len(mine))], theirs[rng.integers(0, len(theirs), len(theirs))])
                     for _ in range(draws)])
    return point_and_interval(point, boot)

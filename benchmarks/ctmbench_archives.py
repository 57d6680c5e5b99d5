"""The archives that search arms leave at full fidelity on CTM-Bench, side by side, as pictures.

    python benchmarks/ctmbench_archives.py                      # the default before, with cell promotions, anchors
    python benchmarks/ctmbench_archives.py --task sort6 --seed 3 --arms surrogate_cells random

One run per arm (as ``ctmbench_compare.py`` runs it: 180,000 training steps, 64 simulated workers), then one
heatmap per arm over the comparison's archive grid (ticks × memory length): each cell holds the best judged
accuracy (the boosting surrogate's noise-free 900-step mean) among the genomes the run measured at 900 steps in
that cell; a blank cell has none. Coverage and QD-score in each title are those the comparison counts. The picture
goes to ``--out`` (default ``docs/img/ctmbench-archives.png``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ctmbench_arms import ARMS, RUNGS, run_arm
from ctmbench_compare import DESCRIPTORS, TASK_KEYS, _judge_mean, cell_of

ROOT = Path(__file__).resolve().parents[1]


def top_archive(task: str, arm: str, seed: int) -> np.ndarray:
    """The arm's archive at the top step count: a (ticks bins × memory bins) array, NaN where no genome is."""
    grid = np.full(tuple(bins for _, bins, _ in DESCRIPTORS), np.nan)
    memo: dict[str, float] = {}
    for genes, steps, *_ in run_arm(task, arm, seed, 180_000):
        if steps != RUNGS[-1]:
            continue
        cell = cell_of(genes)
        grid[cell] = np.nanmax([grid[cell], _judge_mean(task, "boosting", genes, memo)])
    return grid


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", nargs="+", default=["surrogate_elites", "surrogate_cells", "random", "topk"],
                        help=f"of {list(ARMS)}")
    parser.add_argument("--task", default="parity10", help=f"of {list(TASK_KEYS)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "ctmbench-archives.png")
    args = parser.parse_args()
    for name, allowed in (("--task", TASK_KEYS), ("--arms", ARMS)):
        for value in ([args.task] if name == "--task" else args.arms):
            if value not in allowed:
                parser.error(f"{name} {value}: allowed is one of {', '.join(allowed)}")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grids = {}
    for arm in args.arms:
        print(f"{arm}: one run on {args.task}, seed {args.seed} ...", flush=True)
        grids[arm] = top_archive(args.task, arm, args.seed)
    finite = np.concatenate([g[np.isfinite(g)] for g in grids.values()])
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    (tname, _, (tlo, thi)), (mname, _, (mlo, mhi)) = DESCRIPTORS
    fig, axes = plt.subplots(1, len(grids), figsize=(3.4 * len(grids) + 1.2, 4.0), squeeze=False,
                             constrained_layout=True)
    for ax, (arm, grid) in zip(axes[0], grids.items(), strict=True):
        image = ax.imshow(grid, origin="lower", cmap="viridis", vmin=lo, vmax=hi, aspect="auto",
                          extent=(mlo, mhi, tlo, thi))
        cells = int(np.isfinite(grid).sum())
        ax.set_title(f"{arm}\ncoverage {cells / grid.size:.2f}, QD-score {np.nansum(grid):.1f}", fontsize=9)
        ax.set_xlabel(mname)
        if ax is axes[0][0]:
            ax.set_ylabel(tname)
        print(f"  {arm}: {cells} of {grid.size} cells trained to {RUNGS[-1]} steps, QD-score {np.nansum(grid):.2f}")
    fig.colorbar(image, ax=axes[0].tolist(), label="judged 900-step accuracy (best in the cell)")
    fig.suptitle(f"CTM-Bench {args.task}, seed {args.seed}: each run's archive at {RUNGS[-1]} steps", fontsize=10)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=100, bbox_inches="tight")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

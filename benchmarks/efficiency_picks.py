"""Which genome does a run report, and would one more seed per leader have changed it? (real-training runs)

    cd benchmarks/results/search_efficiency_parity10
    python ../../efficiency_picks.py results.json results-seeds5-9.json results-explore-seeds*.json

Reads the ``results*.json`` files that :mod:`search_efficiency` writes (nothing is trained). In those runs the
genome a campaign reports as best at each checkpoint (1/4, 1/2, 3/4 and all of its compute) was re-trained
from scratch with fresh seeds; this script prints, per arm (runs merged by arm and explore setting across
files, each campaign seed once: the first file that has it, so list a re-run of the same seeds with other
settings after the runs it repeats, or not at all):

- ``final``: the re-evaluated fitness of what the run reports at the end (the benchmark's figure);
- ``best checkpoint``: the best re-evaluated fitness among the run's four reported genomes: what the search had
  found and reported at some point, so ``best checkpoint - final`` is what later reports gave away;
- ``verified``: a replay of *leader verification* (SMAC's intensification, not a ctmevo option): every distinct
  leader with a single seed gets one more seed (its first fresh re-evaluation seed stands in for it), and the
  run reports the leader with the highest mean over its seeds. The compute this would cost is printed
  (``verifications`` per run, each one top-rung evaluation) but not taken from the search, so ``verified`` is
  an upper bound of what verification could buy at this budget.

Medians over runs (and the mean of ``final``); ``wins``/``losses``: runs where ``verified`` is above/below
``final``. ``--versus ARM ...`` (labels as printed) adds every other arm's ``final`` paired by campaign seed with
each of those arms': seeds in common, median difference, wins, Wilcoxon signed-rank p.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

CHECKPOINTS = ("0.25", "0.5", "0.75", "1.0")


def arm_label(name: str, arm: Mapping[str, Any]) -> str:
    """The arm's name, with its explore setting and cell share where the arm sets them (names changed meaning over
    time)."""
    share = (arm.get("settings") or {}).get("explore_share")
    cells = (arm.get("fidelity") or {}).get("cell_share")
    label = name if share is None else f"{arm['strategy']} explore_share={share}"
    return label if not cells else f"{label} cell_share={cells}"


def picks(run: Mapping[str, Any]) -> dict[str, float] | None:
    """final, best checkpoint and verified pick of one run (None when a checkpoint was not re-evaluated)."""
    reeval = run.get("reevaluated") or {}
    if not all(c in reeval and reeval[c].get("fitness") for c in CHECKPOINTS):
        return None
    reports = [reeval[c] for c in CHECKPOINTS]
    leaders = {r["hash"]: r for r in reports}
    verified = {h: (r["reported"] * r["seeds"] + r["fitness"][0]) / (r["seeds"] + 1) for h, r in leaders.items()}
    pick = max(verified, key=lambda h: verified[h])
    return {"final": reports[-1]["mean"], "best": max(r["mean"] for r in reports),
            "verified": leaders[pick]["mean"], "verifications": sum(r["seeds"] == 1 for r in leaders.values())}


def collect(paths: Sequence[Path]) -> dict[str, dict[int, dict[str, float]]]:
    """Arm label -> campaign seed -> picks (a seed seen in two files: the first file's run)."""
    out: dict[str, dict[int, dict[str, float]]] = {}
    for path in paths:
        try:
            data = json.loads(path.read_text())
            arms = data["arms"].items()
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            print(f"efficiency_picks: {path}: not a results file of search_efficiency.py ({type(exc).__name__}: "
                  f"{exc}); allowed are its results*.json files", file=sys.stderr)
            raise SystemExit(2) from None
        for name, arm in arms:
            for run in arm["runs"]:
                found = picks(run)
                if found is not None:
                    out.setdefault(arm_label(name, arm), {}).setdefault(int(run["seed"]), found)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", type=Path, help="results*.json files of search_efficiency.py")
    parser.add_argument("--versus", nargs="+", default=[], metavar="ARM",
                        help="arms (labels as printed) to pair every other arm's final with, by campaign seed")
    args = parser.parse_args()
    arms = collect(args.results)
    if not arms:
        raise SystemExit("no run with all four checkpoints re-evaluated in the given files")
    unknown = [a for a in args.versus if a not in arms]
    if unknown:
        print(f"efficiency_picks: --versus {unknown[0]!r}: allowed are the arms in these files, {sorted(arms)}",
              file=sys.stderr)
        raise SystemExit(2)
    print(f"{'arm':<52} {'runs':>4} {'final':>7} {'mean':>6} {'best checkpoint':>16} {'verified':>9} "
          f"{'wins/losses':>12} {'verifications':>14}")
    for label, runs in sorted(arms.items()):
        rows = list(runs.values())
        med = {k: statistics.median(r[k] for r in rows) for k in ("final", "best", "verified")}
        wins = sum(r["verified"] > r["final"] for r in rows)
        losses = sum(r["verified"] < r["final"] for r in rows)
        checks = statistics.mean(r["verifications"] for r in rows)
        mean = statistics.mean(r["final"] for r in rows)
        print(f"{label:<52} {len(rows):>4} {med['final']:>7.3f} {mean:>6.3f} {med['best']:>16.3f} "
              f"{med['verified']:>9.3f} {f'{wins}/{losses}':>12} {checks:>14.1f}")
    for versus in args.versus:
        print(f"\npaired with {versus} by campaign seed (final):")
        for label, runs in sorted(arms.items()):
            if label != versus:
                print(f"  {label:<52} {paired(runs, arms[versus])}")


def paired(mine: Mapping[int, Mapping[str, float]], theirs: Mapping[int, Mapping[str, float]]) -> str:
    """Seeds in common, median difference, wins and the Wilcoxon signed-rank p of ``final``, as one line."""
    from scipy.stats import wilcoxon
    seeds = sorted(set(mine) & set(theirs))
    diff = [mine[s]["final"] - theirs[s]["final"] for s in seeds]
    if len(diff) < 2 or not any(diff):
        return f"{len(seeds)} seeds in common: too few to compare"
    return (f"{len(seeds)} seeds, median difference {statistics.median(diff):+.3f}, ahead in "
            f"{sum(d > 0 for d in diff)}, Wilcoxon p {wilcoxon(diff).pvalue:.2g}")


if __name__ == "__main__":
    main()

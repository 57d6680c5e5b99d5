"""Where a search loses quality on CTM-Bench: finding good genomes, promoting them, or reporting the right one.

    python benchmarks/ctmbench_reporting.py --arm surrogate_elites --task parity10 --seeds 5
    python benchmarks/ctmbench_reporting.py --arm topk --task parity10 --seeds 5 --small

For each seed, one run of the arm (as ``ctmbench_compare.py`` runs it), and three genomes judged by the boosting
surrogate's noise-free 900-step accuracy: the one the run **reports** (``search.records.rank`` over the genomes at
the highest step count, as the comparison does), the best of the genomes it **measured at the top** step count,
and the best of **all it measured** at any step count. The gaps say where quality goes: reported < top is a
reporting loss (seed noise), top < measured a promotion loss. For a campaign arm whose strategy has a model
(``surrogate_elites``), also the top-rung genome its Gaussian process predicts best (``--model``): reporting by
the model instead of by the ranking. Prints one line per seed and the medians.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ctmbench_arms import ARMS, CAMPAIGN_ARMS, WORKERS, run_arm, run_campaign_arm
from ctmbench_compare import TASK_KEYS, _judge_mean


def model_pick(campaign: Any) -> Any:
    """The genome at the campaign's top rung that its strategy's model (a Gaussian process) predicts best."""
    from search.records import standings
    ranked = standings(campaign.records)
    at_top = [s for s in ranked if s.rung == ranked[0].rung]
    strategy = campaign.strategy
    mean, _ = strategy._condition().predict(np.array([strategy._x(s.record.genome, s.rung) for s in at_top]))
    return at_top[int(np.argmax(mean))].record.genome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arm", default="surrogate_elites", help=f"of {list(ARMS)}")
    parser.add_argument("--task", default="parity10", help=f"of {list(TASK_KEYS)}")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--small", action="store_true", help="10,000 steps on 2 simulated workers")
    parser.add_argument("--model", action="store_true", help="also the genome the strategy's model predicts best")
    args = parser.parse_args()
    if args.arm not in ARMS or args.task not in TASK_KEYS:
        print(f"ctmbench_reporting: --arm {args.arm!r} / --task {args.task!r}: allowed arms {list(ARMS)}, tasks "
              f"{list(TASK_KEYS)}", file=sys.stderr)
        return 2
    if args.model and CAMPAIGN_ARMS.get(args.arm, ("",))[0] != "surrogate_elites":
        print(f"ctmbench_reporting: --model: allowed only with a surrogate_elites arm, not {args.arm!r}",
              file=sys.stderr)
        return 2
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("CTMEVO_FSYNC", "0")
    from genome.genome import Genome
    from search.records import rank
    budget, workers = (10_000, 2) if args.small else (180_000, WORKERS)
    memo: dict[str, float] = {}
    rows = []
    for seed in range(args.seeds):
        picked: list[Any] = []
        events = (run_campaign_arm(args.task, args.arm, seed, budget, workers,
                                   inspect=lambda c, out=picked: out.append(model_pick(c)))
                  if args.model else run_arm(args.task, args.arm, seed, budget, workers))
        values: dict[str, dict[int, list[float]]] = {}
        genes: dict[str, dict[str, Any]] = {}
        order: dict[str, int] = {}
        for g, steps, fitness, *_rest in sorted(events, key=lambda e: e[5]):
            h = Genome.from_dict(g).hash
            genes[h] = g
            order.setdefault(h, len(order))
            values.setdefault(h, {}).setdefault(steps, []).append(fitness)
        top = max(max(v) for v in values.values())
        at_top = [h for h in values if top in values[h]]
        reported = at_top[rank([(top, values[h][top], order[h]) for h in at_top])[0][0]]
        judged = {h: _judge_mean(args.task, "boosting", genes[h], memo) for h in values}
        row = [judged[reported], max(judged[h] for h in at_top), max(judged.values())]
        line = (f"seed {seed}: reported {row[0]:.3f}  best measured at the top {row[1]:.3f}  best measured "
                f"{row[2]:.3f}  ({len(at_top)} genomes at {top} steps, {len(values)} in all)")
        if args.model:
            row.append(_judge_mean(args.task, "boosting", picked[0].to_dict(), memo))
            line += f"  model's pick {row[3]:.3f}"
        rows.append(row)
        print(line, flush=True)
    medians = np.median(np.array(rows), axis=0)
    print(f"median: reported {medians[0]:.3f}, best at the top {medians[1]:.3f}, best measured {medians[2]:.3f}"
          + (f", model's pick {medians[3]:.3f} (wins {sum(r[3] > r[0] for r in rows)}, losses "
             f"{sum(r[3] < r[0] for r in rows)})" if args.model else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

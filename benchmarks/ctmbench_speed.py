"""How fast a campaign runs on CTM-Bench: N evaluations of each arm on replayed training and 64 simulated workers.

    python benchmarks/ctmbench_speed.py                      # MAP-Elites and random, 10,000 evaluations each
    python benchmarks/ctmbench_speed.py --arms map_elites regularized_evolution optuna_tpe_sh --evaluations 2000

The campaign is the real one (loop, strategy, rungs, repeats, journal without fsync) with the quiet reporter;
the surrogate is fitted once before the clock starts. Prints evaluations per second of wall time.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", nargs="*", default=["map_elites", "random"])
    parser.add_argument("--task", default="parity10")
    parser.add_argument("--evaluations", type=int, default=10_000)
    args = parser.parse_args()
    os.environ["CTMEVO_FSYNC"] = "0"
    from ctmbench_arms import CAMPAIGN_ARMS, _campaign_config

    from ctm.bench.replay import surrogate_for
    from search.campaign import Campaign
    from search.views import QuietReporter
    began = time.perf_counter()
    surrogate_for(args.task, "boosting")
    print(f"surrogate fitted in {time.perf_counter() - began:.1f} s (once per process)")
    for arm in args.arms:
        if arm not in CAMPAIGN_ARMS:
            print(f"--arms {arm!r}: allowed is one of {sorted(CAMPAIGN_ARMS)}", file=sys.stderr)
            return 2
        config = _campaign_config(args.task, arm, 0, None, evaluations=args.evaluations)
        with tempfile.TemporaryDirectory() as tmp:
            campaign = Campaign.create(config, Path(tmp) / "c")
            t = time.perf_counter()
            progress = campaign.run(reporter=QuietReporter())
            wall = time.perf_counter() - t
        print(f"{arm:<24} {progress.done:>7} evaluations in {wall:6.1f} s: {progress.done / wall:7.1f} evaluations/s; "
              f"best {progress.metrics.get('best_fitness', float('nan')):.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

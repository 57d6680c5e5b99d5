"""What each strategy keeps per told evaluation: does its memory grow with the campaign, and by how much?

    python benchmarks/strategy_memory.py [--n 12000] [--max-seconds 120] [--strategies map_elites,optuna_tpe,...]
    python benchmarks/strategy_memory.py --strategies novelty:archive_max=1000     # NAME:SETTING=VALUE;...

Each strategy is driven as a flat campaign drives it (one rung, one seed, so ``compact_history()`` is on where the
strategy allows it: :mod:`search.strategies.history`) over the scale benchmark's genome space and descriptors,
with a cheap synthetic result (a smooth function of the genes), 4 evaluations in flight, tells out of order.
Python's allocations are traced (``tracemalloc``); the figure is the growth of what the strategy holds between
the first fifth of the evaluations (at most the first 1,000) and the last (or the last told within
``--max-seconds``: strategies whose ask costs O(evaluations) stop early), per evaluation, and how many records it
keeps at the end. A compact history sweeps whenever its records double (at least 4,096): between sweeps it holds
up to that many (~2.5 KB each), so its figure falls towards its ~60 bytes per evaluation as ``--n`` grows.
Strategies whose state grows by nature (Optuna's trials, a novelty archive, a surrogate's training set, EvoTorch's
replay log) show it here.
"""

from __future__ import annotations

import argparse
import gc
import math
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from campaign_throughput import CAMPAIGN

from ctm.result import EvalResult
from genome import Genome
from search.campaign.config import load_campaign_config
from search.descriptors import make_descriptors
from search.strategies import STRATEGY_NAMES, make_strategy


def _result(genome: Genome, rng: np.random.Generator) -> EvalResult:
    fitness = math.sin(genome.ticks / 3.0) + 0.1 * genome.memory_length + 0.01 * rng.standard_normal()
    return EvalResult(genome_hash=genome.hash, fitness=float(fitness), metrics={"val_accuracy": float(fitness)})


def parse(spec: str) -> tuple[str, dict[str, object]]:
    """``novelty:archive_max=1000;k=5`` → ("novelty", {"archive_max": 1000, "k": 5})."""
    name, _, rest = spec.strip().partition(":")
    settings = {}
    for item in filter(None, rest.split(";")):
        key, _, value = item.partition("=")
        settings[key.strip()] = yaml.safe_load(value)
    return name, settings


def measure(spec: str, n: int, config_path: Path, max_seconds: float) -> tuple[float, int, int, float]:
    """(bytes per evaluation over the last four fifths, records kept, evaluations told, seconds)."""
    config = load_campaign_config(config_path)
    space = config.space()
    descriptors = make_descriptors(config.descriptors, field="descriptors", space=space)
    name, settings = parse(spec)
    strategy = make_strategy(name, space=space, seed=0, descriptors=descriptors, settings=settings,
                             field="strategy")
    strategy.compact_history()
    rng = np.random.default_rng(0)
    pending: list = []
    told, start, first = 0, time.perf_counter(), (0, 0)
    gc.collect()
    tracemalloc.start()
    while told < n and time.perf_counter() - start < max_seconds:
        if len(pending) < 4:
            pending += strategy.ask(4 - len(pending))
        if not pending:
            break
        done = pending.pop(int(rng.integers(len(pending))))
        strategy.tell(_result(done.genome, rng))
        told += 1
        if told == min(n // 5, 1000):
            gc.collect()
            first = (told, tracemalloc.get_traced_memory()[0])
    gc.collect()
    last = (told, tracemalloc.get_traced_memory()[0])
    tracemalloc.stop()
    per = (last[1] - first[1]) / (last[0] - first[0]) if last[0] > first[0] else float("nan")
    return per, len(strategy.evaluated()), told, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=12_000, help="evaluations told per strategy (default 12,000)")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="per strategy (default 120)")
    parser.add_argument("--strategies", default=",".join(STRATEGY_NAMES), help="comma-separated names")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "scale.yaml"
        config.write_text(CAMPAIGN.format(directory=Path(tmp) / "c", strategy="map_elites", evaluations=args.n,
                                          descriptors="[{name: ticks, bins: 8, range: [1, 17]}, "
                                                      "{name: memory_length, bins: 8, range: [1, 9]}]"))
        print(f"{'strategy':32} {'bytes/eval':>10} {'records kept':>13} {'told':>6} {'s':>6}", flush=True)
        for name in args.strategies.split(","):
            per, kept, told, seconds = measure(name.strip(), args.n, config, args.max_seconds)
            print(f"{name:32} {per:10,.0f} {kept:13,} {told:6,} {seconds:6.1f}", flush=True)


if __name__ == "__main__":
    main()

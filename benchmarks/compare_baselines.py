"""Run one campaign file once per strategy (same task, space, budget and seed) and compare the arms.

    python benchmarks/compare_baselines.py experiments/baselines_parity.yaml \\
        --strategies random regularized_evolution optuna_tpe --evaluations 60 --out campaigns/baselines

Each arm is a normal campaign (its own directory, journal and MLflow store), so every arm can be inspected,
resumed or exported like any other. Prints best fitness and evaluations per arm and writes
``best_fitness.png`` with one line per strategy.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

from search.campaign import Campaign, load_campaign_config
from search.records import best_record
from search.views.pictures import compare_plot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--strategies", nargs="+", default=["random", "regularized_evolution", "optuna_tpe"])
    parser.add_argument("--evaluations", type=int, default=None, help="override budget.evaluations")
    parser.add_argument("--steps", type=int, default=None, help="override evaluation.steps")
    parser.add_argument("--out", type=Path, default=Path("campaigns/baselines"))
    args = parser.parse_args()

    base = load_campaign_config(args.file)
    histories: dict[str, list[dict[str, float]]] = {}
    rows = []
    for name in args.strategies:
        changes = {"name": f"{base.name}-{name}", "output_dir": str(args.out / name),
                   "strategy": base.strategy.model_copy(update={"name": name, "settings": {}})}
        if args.evaluations:
            changes["budget"] = base.budget.model_copy(update={"evaluations": args.evaluations})
        if args.steps:
            changes["evaluation"] = base.evaluation.model_copy(update={"steps": args.steps})
        config = base.model_copy(update=changes)
        directory = config.directory()
        campaign = Campaign.open(directory) if (directory / "campaign.json").exists() else \
            Campaign.create(config, directory)
        if not campaign.finished():
            campaign.run()
        metrics = campaign.paths.root / "metrics.jsonl"  # the strategy's metrics after every evaluation
        histories[name] = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
        best = best_record(campaign.records)
        rows.append((name, campaign.progress.done, campaign.progress.failures,
                     best.result.fitness if best else float("nan"), best.result.genome_hash if best else "-",
                     campaign.progress.elapsed_s))
    print(f"\n{'strategy':24s} {'evals':>6s} {'failed':>6s} {'best':>8s}  {'genome':16s} {'time s':>7s}")
    for name, done, failed, fitness, genome_hash, seconds in rows:
        print(f"{name:24s} {done:6d} {failed:6d} {fitness:8.4f}  {genome_hash:16s} {seconds:7.0f}")
    picture = compare_plot(histories, args.out / "best_fitness.png", key="best_fitness",
                           title=f"{base.task.name}: best fitness over evaluations")
    print(f"\nwrote {picture}")


if __name__ == "__main__":
    main()

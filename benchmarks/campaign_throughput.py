"""How many evaluations per second the whole campaign driver sustains, beside the anchor users would pick.

    python benchmarks/campaign_throughput.py [--evaluations 10000] [--strategy map_elites] [--tune-trials 1000]

Runs a real campaign through the CLI (``ctmevo run``) on an embedded Ray cluster of 2 CPUs, with the no-op
evaluation (``workers.testing:noop_evaluate``: no training, so the driver is all that is measured), MLflow on
the campaign's own sqlite store, and prints:

- evaluations/s over the whole dispatch, and over its first and last tenth (a flat cost per evaluation means
  the last tenth is as fast as the first);
- MLflow's lag when the last evaluation ended, and how long it then took to catch up;
- the size of the snapshot (``state.json``), the time ``ctmevo resume`` takes to reload the finished campaign,
  and the times of ``ctmevo status`` and ``ctmevo lineage`` (of the best genome);
- the driver's peak resident memory (``ctmevo run``'s max RSS), the MLflow store's size (database, artifacts)
  per evaluation, and the time of the query behind the runs table (the campaign's 100 best by ``rank_score``);
- Ray Tune's rate on the same machine for no-op trials (``reuse_actors=True``, loggers off; needs the
  ``bench`` extra: ``pip install -e '.[bench]'``), and the ratio.

Targets (issue 12, 2-core machine): >= 2x Ray Tune's rate; last tenth >= 0.9x the first; MLflow caught up
within 10% of the dispatch time; resume of a 10,000-evaluation campaign <= 10 s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QD = {"map_elites", "cvt_map_elites", "novelty", "nslc", "dns"}

CAMPAIGN = """\
name: throughput
seed: 0
output_dir: {directory}
task: {{name: parity, params: {{length: 6}}}}
genome_space:
  ticks: {{min: 1, max: 16}}
  memory_length: {{min: 1, max: 8}}
  d_model: {{min: 16, max: 64}}
  d_input: {{min: 16, max: 32}}
  heads: {{choices: [1, 2, 4]}}
  nlm_hidden: {{min: 2, max: 8}}
  synapse_depth: {{min: 1, max: 2}}
  n_sync_out: {{min: 4, max: 16}}
  n_sync_action: {{min: 0, max: 16}}
  n_self_pairs: {{min: 0, max: 2}}
strategy: {{name: {strategy}}}
descriptors: {descriptors}
evaluation: {{steps: 1}}
budget: {{evaluations: {evaluations}}}
workers: {{backend: ray, num_cpus: 2, cpus_per_eval: 1, evaluate_fn: "workers.testing:noop_evaluate"}}
"""

TUNE = """
import os, sys, time
os.environ.update(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled", TUNE_DISABLE_AUTO_CALLBACK_LOGGERS="1")
import ray
from ray import tune
ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")

def noop(config):
    return {"score": config["x"]}

n = int(sys.argv[1])
started = time.monotonic()
tuner = tune.Tuner(noop, param_space={"x": tune.uniform(0, 1)},
                   tune_config=tune.TuneConfig(num_samples=n, reuse_actors=True),
                   run_config=tune.RunConfig(storage_path=sys.argv[2], verbose=0, log_to_file=False))
results = tuner.fit()
print("RATE", len(results) / (time.monotonic() - started))
"""


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


def timed(*args: str) -> tuple[float, subprocess.CompletedProcess]:
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "search.cli", *args], capture_output=True, text=True, env=env(),
                         cwd=ROOT)
    return time.monotonic() - started, out


def rates(journal: Path) -> tuple[float, float, float, float]:
    """(overall, first tenth, last tenth) evaluations/s from the results' times, and the dispatch time."""
    ends = [json.loads(line)["record"]["finished_at"] for line in journal.read_text().splitlines()
            if line.startswith('{"event":"result"')]
    n, tenth = len(ends), max(1, len(ends) // 10)
    span = ends[-1] - ends[0]
    return ((n - 1) / span, tenth / (ends[tenth] - ends[0]), tenth / (ends[-1] - ends[-tenth - 1]), span)


def store_figures(directory: Path, evaluations: int, uri: str | None = None, artifacts: Path | None = None) -> str:
    """The store's size per evaluation and the time of the runs table's query, in-process: the campaign's sqlite
    store, or ``uri`` (a ``postgresql://`` database, its artifacts in ``artifacts``)."""
    from mlflow import MlflowClient

    db = directory / "mlflow.db"
    folder = artifacts or directory / "mlartifacts"
    files = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    client = MlflowClient(uri or f"sqlite:///{db}")
    if uri:
        import sqlalchemy as sa

        engine = sa.create_engine(uri)
        with engine.connect() as connection:
            size = connection.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one()
        engine.dispose()
    else:
        size = db.stat().st_size
    experiments = [e.experiment_id for e in client.search_experiments()]
    started = time.monotonic()
    client.search_runs(experiments, "tags.`ctmevo.kind` = 'evaluation'", order_by=["metrics.`rank_score` DESC"],
                       max_results=100)
    query = time.monotonic() - started
    return (f"database {size / 2**20:,.1f} MiB ({size / evaluations / 1024:,.1f} KiB per evaluation; target <= 2 KiB), "
            f"artifacts {files / 2**20:,.1f} MiB; runs-table query {query:.2f} s")


def ray_tune_rate(trials: int, workdir: Path) -> float | None:
    try:
        import ray.tune  # noqa: F401
    except ImportError:
        print("Ray Tune is not installed (pip install -e '.[bench]'): no anchor")
        return None
    out = subprocess.run([sys.executable, "-c", TUNE, str(trials), str(workdir / "tune")], capture_output=True,
                         text=True, env=env())
    for line in out.stdout.splitlines():
        if line.startswith("RATE"):
            return float(line.split()[1])
    print("Ray Tune run failed:\n" + out.stderr[-2000:])
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--evaluations", type=int, default=10_000)
    parser.add_argument("--strategy", default="map_elites")
    parser.add_argument("--tune-trials", type=int, default=1000, help="no-op Ray Tune trials for the anchor (0: skip)")
    parser.add_argument("--workdir", type=Path, default=None, help="where to put the campaign (default: a temp dir)")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ctmevo-throughput-"))
    workdir.mkdir(parents=True, exist_ok=True)
    directory = workdir / "campaign"
    descriptors = ("[{name: ticks, bins: 8, range: [1, 17]}, {name: memory_length, bins: 8, range: [1, 9]}]"
                   if args.strategy in QD else "[]")
    path = workdir / "throughput.yaml"
    path.write_text(CAMPAIGN.format(directory=directory, strategy=args.strategy, descriptors=descriptors,
                                    evaluations=args.evaluations))
    print(f"campaign: {args.evaluations:,} no-op evaluations, {args.strategy}, 2 CPUs, in {directory}")
    wall, out = timed("run", str(path), "--fresh")
    peak_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # bytes (Linux reports KiB)
    if out.returncode != 0:
        sys.exit(f"ctmevo run failed ({out.returncode}):\n{out.stderr[-3000:]}")
    overall, first, last, dispatch = rates(directory / "journal.jsonl")
    finish = json.loads((directory / "consumers" / "finish.json").read_text())
    resume_s, resumed = timed("resume", str(directory))
    status_s, status = timed("status", str(directory))
    best = next((line.split()[0] for line in status.stdout.splitlines() if re.match(r"^\s+[0-9a-f]{16}\s", line)), "")
    lineage_s, lineage = timed("lineage", best, "--campaign", str(directory))
    store = store_figures(directory, args.evaluations)
    snapshot = (directory / "state.json").stat().st_size
    tune = ray_tune_rate(args.tune_trials, workdir) if args.tune_trials else None

    rows = [
        ("evaluations/s (overall)", f"{overall:,.1f}"),
        ("evaluations/s, first / last tenth", f"{first:,.1f} / {last:,.1f}  (ratio {last / first:.2f}; target >= 0.9)"),
        ("dispatch time", f"{dispatch:,.1f} s  (ctmevo run wall time {wall:,.1f} s, start-up included)"),
        ("MLflow behind at the end of dispatch", f"{finish['mlflow_behind_at_end']:,} record(s)"),
        ("MLflow caught up after", f"{finish['drain_s']:,.1f} s  ({100 * finish['drain_s'] / dispatch:.1f}% of "
                                   f"dispatch; target <= 10%); left unsent: {finish['mlflow_left']}"),
        ("snapshot (state.json)", f"{snapshot / 1024:,.1f} KiB"),
        ("ctmevo resume (reload the finished campaign)", f"{resume_s:,.2f} s  (target <= 10 s at 10,000)"
         + ("" if resumed.returncode == 0 else f"  FAILED: {resumed.stderr[-300:]}")),
        ("ctmevo status", f"{status_s:,.2f} s  (target < 2 s)" + ("" if status.returncode == 0 else "  FAILED")),
        ("ctmevo lineage (the best genome)", f"{lineage_s:,.2f} s" + ("" if lineage.returncode == 0 else "  FAILED")),
        ("driver peak RSS (ctmevo run)", f"{peak_rss / 2**20:,.0f} MiB  (imported libraries included; compare runs "
                                         "of different --evaluations for the growth)"),
        ("MLflow store", store),
    ]
    if tune is not None:
        rows += [("Ray Tune no-op trials/s (reuse_actors, no loggers)", f"{tune:,.1f}"),
                 ("ctmevo / Ray Tune", f"{overall / tune:.2f}x  (target >= 2x)")]
    width = max(len(k) for k, _ in rows)
    print(textwrap.indent("\n".join(f"{k:<{width}}  {v}" for k, v in rows), "  "))


if __name__ == "__main__":
    main()

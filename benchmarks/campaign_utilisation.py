"""How busy a whole campaign keeps many slots when evaluation times are heavy-tailed.

    python benchmarks/campaign_utilisation.py [--slots 64] [--evaluations 1280] [--median 2] [--sigma 1]

Runs a real campaign through the CLI (``ctmevo run``: MAP-Elites, the journal, the MLflow consumer on the
campaign's sqlite store, pictures, snapshots) on an embedded Ray cluster of ``--slots`` logical CPUs, one slot
per evaluation. Each evaluation (``workers.testing:lognormal_evaluate``) sleeps for a log-normal time (median
``--median`` seconds, log-space spread ``--sigma``: the spread tick counts and widths cause) and stamps when it
started and ended. The fakes sleep, so more slots than cores is fine.

Prints slot utilisation: over the window from the first evaluation's start to the last one's start (the time
the campaign keeps submitting; the final drain, when no work is left to give, is excluded), the evaluation time
that falls inside the window divided by ``slots x window``; and the same after the ramp-up, once every slot's
worker process has started its first evaluation (Ray starts worker processes as evaluations arrive: on a
2-core machine, 64 of them take tens of seconds; on a cluster they start in parallel on their nodes). Also: the
makespan and what a perfect scheduler would need (total evaluation time / slots), and the driver's start-up.

Target (issue 12): >= 95% utilisation on 64 slots with median 2 s, sigma 1. Takes about 2 minutes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CAMPAIGN = """\
name: utilisation
seed: 0
output_dir: {directory}
task: {{name: parity, params: {{length: 6}}}}
genome_space:
  ticks: {{min: 1, max: 32}}
  memory_length: {{min: 1, max: 16}}
  d_model: {{min: 16, max: 256}}
strategy: {{name: map_elites, settings: {{initial_samples: {slots}}}}}
descriptors: [{{name: ticks, bins: 16, range: [1, 33]}}, {{name: memory_length, bins: 16, range: [1, 17]}}]
evaluation: {{steps: 1}}
budget: {{evaluations: {evaluations}}}
workers: {{backend: ray, num_cpus: {slots}, cpus_per_eval: 1, evaluate_fn: "workers.testing:lognormal_evaluate",
          timeout_s: 600}}
plot_every_s: 10
"""


def overlap(a: float, b: float, lo: float, hi: float) -> float:
    return max(0.0, min(b, hi) - max(a, lo))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slots", type=int, default=64)
    parser.add_argument("--evaluations", type=int, default=1280)
    parser.add_argument("--median", type=float, default=2.0, help="median evaluation time, seconds")
    parser.add_argument("--sigma", type=float, default=1.0, help="log-space standard deviation")
    parser.add_argument("--workdir", type=Path, default=None, help="where to put the campaign (default: a temp dir)")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ctmevo-utilisation-"))
    workdir.mkdir(parents=True, exist_ok=True)
    directory = workdir / "campaign"
    path = workdir / "utilisation.yaml"
    path.write_text(CAMPAIGN.format(directory=directory, slots=args.slots, evaluations=args.evaluations))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled",
           "CTMEVO_FAKE_MEDIAN_S": str(args.median), "CTMEVO_FAKE_SIGMA": str(args.sigma)}
    print(f"campaign: {args.evaluations:,} evaluations on {args.slots} slots, log-normal times (median "
          f"{args.median:g} s, sigma {args.sigma:g}), in {directory}", flush=True)
    began = time.time()
    out = subprocess.run([sys.executable, "-m", "search.cli", "run", str(path), "--fresh"], env=env, cwd=ROOT,
                         capture_output=True, text=True)
    ended = time.time()
    if out.returncode != 0:
        sys.exit(f"ctmevo run failed ({out.returncode}):\n{out.stderr[-3000:]}")
    spans, first_of_worker = [], {}
    for line in (directory / "journal.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["event"] == "result":
            result = event["record"]["result"]
            m = result["metrics"]
            spans.append((m["started_at_unix"], m["ended_at_unix"]))
            first_of_worker[result["worker"]] = min(first_of_worker.get(result["worker"], math.inf),
                                                    m["started_at_unix"])
    starts = sorted(s for s, _ in spans)
    lo, hi = starts[0], starts[-1]
    busy = sum(overlap(s, e, lo, hi) for s, e in spans)
    ramp = sorted(first_of_worker.values())[min(args.slots, len(first_of_worker)) - 1]
    steady = sum(overlap(s, e, ramp, hi) for s, e in spans) / (args.slots * (hi - ramp)) if hi > ramp else math.nan
    total = sum(e - s for s, e in spans)
    makespan = max(e for _, e in spans) - lo
    longest = max(e - s for s, e in spans)
    rows = [
        ("evaluations", f"{len(spans):,} (mean {total / len(spans):.2f} s, longest {longest:.1f} s)"),
        ("window (first start .. last start)", f"{hi - lo:,.1f} s"),
        ("slot utilisation in the window", f"{100 * busy / (args.slots * (hi - lo)):.1f}%  (target >= 95%)"),
        ("ramp-up (until every slot's worker ran)", f"{ramp - lo:,.1f} s ({len(first_of_worker)} worker processes)"),
        ("slot utilisation after the ramp-up", f"{100 * steady:.1f}%  over {hi - ramp:,.1f} s"),
        ("makespan (first start .. last end)", f"{makespan:,.1f} s; a perfect scheduler: >= "
                                               f"{total / args.slots:,.1f} s"),
        ("ctmevo run wall time", f"{ended - began:,.1f} s (start-up to first evaluation {lo - began:.1f} s)"),
    ]
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"  {k:<{width}}  {v}" for k, v in rows))


if __name__ == "__main__":
    main()

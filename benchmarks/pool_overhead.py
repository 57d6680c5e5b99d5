"""How much the evaluation pool itself costs, and how busy it keeps its slots.

    python benchmarks/pool_overhead.py [--slots 8] [--jobs 160] [--median 0.6] [--sigma 0.9]

Prints

1. **Overhead**: no-op evaluations per second through a :class:`workers.RayPool`, end to end (submit, Ray
   task, result back to the driver, result turned into a journal-ready dict), the pool kept full.
2. **Utilisation**: evaluations that sleep for durations drawn from a log-normal distribution (the spread that
   tick counts cause: a 100-tick genome trains ~20x longer than a 5-tick one), run through the
   *asynchronous* pool (a slot is refilled as soon as its evaluation ends) and through a *generational* pool
   (submit a batch of ``slots`` jobs, wait for all of them, repeat), side by side on the same durations.

Utilisation is the fraction of slot-time spent evaluating while the campaign keeps submitting: over the
window from the first to the last submission, the sum of each evaluation's overlap with the window
(start times are stamped by the fake evaluation on the worker) divided by ``slots x window``. The makespan
figure (first submission to last result, so it includes the final drain) is printed beside it.

Runs on a local Ray cluster of ``--slots`` logical CPUs (the fakes sleep, so more slots than cores is fine);
about 1.5 minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import ray

from ctm.result import EvalBudget, EvalResult, TaskSpec
from genome.genome import Genome
from workers import EvalJob, WorkersConfig
from workers.ray_pool import RayPool

NOOP = "workers.testing:noop_evaluate"
FAKE = "workers.testing:fake_evaluate"
_serial = iter(range(1, 10**9))


def make_job(**params: float) -> EvalJob:
    """A job with a fresh job id (distinct ``job_id`` on the same genome)."""
    return EvalJob(genome=Genome(), task=TaskSpec(name="fake", params=params), budget=EvalBudget(steps=1),
                   job_id=f"job-{next(_serial)}")


def noop_rate(slots: int, seconds: float) -> tuple[float, int]:
    """No-op evaluations per second with ``slots`` in flight, after a warm-up."""
    pool = RayPool(WorkersConfig(evaluate_fn=NOOP, concurrency=slots))

    def run(until: Callable[[], bool]) -> int:
        count = 0
        while not until():
            for _ in range(pool.free_slots):
                pool.submit(make_job())
            for result in pool.poll(timeout=1.0):
                result.to_dict()  # what the journal does with every result
                count += 1
        return count

    warm = time.monotonic() + 2.0
    run(lambda: time.monotonic() > warm)
    start = time.monotonic()
    done = run(lambda: time.monotonic() - start > seconds)
    rate = done / (time.monotonic() - start)
    drain(pool)
    return rate, done


def drain(pool: RayPool) -> None:
    """Wait for what is in flight, then shut down: cancelling would kill worker processes, and the next
    measurement would pay for starting new ones."""
    while pool.in_flight:
        pool.poll(timeout=1.0)
    pool.shutdown()


def warm_up(slots: int) -> None:
    """Make sure ``slots`` worker processes are up and have imported the fake evaluation."""
    pool = RayPool(WorkersConfig(evaluate_fn=FAKE, concurrency=slots))
    for _ in range(slots):
        pool.submit(make_job(sleep=0.5))
    drain(pool)


def utilisation(durations: list[float], slots: int, generational: bool) -> tuple[float, float, float]:
    """(steady-state utilisation, makespan utilisation, makespan seconds) of one run over ``durations``."""
    warm_up(slots)
    pool = RayPool(WorkersConfig(evaluate_fn=FAKE, concurrency=slots))
    queue = list(durations)
    results: list[EvalResult] = []
    first_submit = last_submit = time.time()
    while queue or pool.in_flight:
        if not generational or not pool.in_flight:
            for _ in range(min(pool.free_slots, len(queue))):
                pool.submit(make_job(sleep=queue.pop(0)))
                last_submit = time.time()
        results.extend(pool.poll(timeout=1.0))
    end = time.time()
    pool.shutdown()
    bad = [r for r in results if not r.ok]
    if bad:
        raise RuntimeError(f"{len(bad)} evaluations failed, e.g. {bad[0].failure}")
    spans = [(r.metrics["started_at_unix"], r.metrics["started_at_unix"] + r.metrics["wall_time_s"])
             for r in results]
    window = max(last_submit - first_submit, 1e-9)
    busy = sum(max(0.0, min(b, last_submit) - max(a, first_submit)) for a, b in spans)
    total = sum(b - a for a, b in spans)
    makespan = end - first_submit
    return busy / (slots * window), total / (slots * makespan), makespan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slots", type=int, default=8, help="evaluations in flight (logical CPUs of the cluster)")
    parser.add_argument("--jobs", type=int, default=160, help="evaluations per utilisation run")
    parser.add_argument("--median", type=float, default=0.6, help="median evaluation time in seconds")
    parser.add_argument("--sigma", type=float, default=0.9,
                        help="log-normal sigma of evaluation times (0.9: p95/p5 about 20x, like 5 vs 100 ticks)")
    parser.add_argument("--noop-seconds", type=float, default=6.0)
    args = parser.parse_args()

    t0 = time.monotonic()
    ray.init(address="local", num_cpus=args.slots, num_gpus=0, include_dashboard=False, log_to_driver=False)
    print(f"local Ray cluster: {args.slots} logical CPUs on {os.cpu_count()} cores "
          f"(started in {time.monotonic() - t0:.1f} s); load average {os.getloadavg()[0]:.1f}")

    print("\n1. pool overhead: no-op evaluations per second, end to end")
    for slots in sorted({2, args.slots}):
        rate, done = noop_rate(slots, args.noop_seconds)
        print(f"   {slots} in flight: {rate:7.1f} evaluations/s  ({done} in {args.noop_seconds:g} s, "
              f"{1000 / rate:.1f} ms each)")

    rng = np.random.default_rng(0)
    durations = list(rng.lognormal(np.log(args.median), args.sigma, size=args.jobs))
    p5, p50, p95 = np.percentile(durations, [5, 50, 95])
    print(f"\n2. utilisation: {args.jobs} evaluations, log-normal times (median {p50:.2f} s, p5 {p5:.2f} s, "
          f"p95 {p95:.2f} s, p95/p5 = {p95 / p5:.1f}x, longest {max(durations):.2f} s), {args.slots} slots")
    rows = {}
    for name, generational in (("asynchronous", False), ("generational", True)):
        rows[name] = utilisation(durations, args.slots, generational)
        steady, overall, makespan = rows[name]
        print(f"   {name:<13} busy {100 * steady:5.1f}% while submitting   "
              f"({100 * overall:5.1f}% over the makespan of {makespan:5.1f} s)")
    ratio = rows["asynchronous"][0] / rows["generational"][0]
    speed = rows["generational"][2] / rows["asynchronous"][2]
    print(f"   ratio asynchronous/generational: {ratio:.2f}x utilisation, {speed:.2f}x faster to finish")
    ray.shutdown()
    print(f"\ntotal {time.monotonic() - t0:.0f} s; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

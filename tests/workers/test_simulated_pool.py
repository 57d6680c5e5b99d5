"""The simulated pool: N asynchronous workers on a simulated clock, results in simulated finish order."""

from __future__ import annotations

import pytest

from ctm.result import EvalBudget, EvalResult, TaskSpec
from genome.genome import Genome
from workers import EvalJob, WorkersConfig, make_pool
from workers.simulated import SimulatedPool

FN = "tests.workers.test_simulated_pool:timed"


def timed(genome, task, budget, seed, device="cpu", *, batch_size=None, want_checkpoint=False, **_):
    """An evaluation whose simulated duration is its genome's ticks (seconds)."""
    return EvalResult(genome_hash=genome.hash, fitness=float(genome.ticks), seed=seed,
                      metrics={"wall_time_s": float(genome.ticks)})


def job(ticks: int) -> EvalJob:
    return EvalJob(genome=Genome(ticks=ticks), task=TaskSpec(name="parity", params={"length": 4}),
                   budget=EvalBudget(steps=1))


def test_results_come_in_simulated_finish_order_with_n_workers():
    pool = SimulatedPool(WorkersConfig(backend="simulated", concurrency=2, evaluate_fn=FN), jitter=0.0,
                         dispatch_s=0.0)
    for t in (5, 1, 3):  # two start at 0; the third waits for the first free worker (t=1) and ends at 4
        pool.submit(job(t))
    assert pool.free_slots == 0
    order = []
    while pool.in_flight:
        (r,) = pool.poll()
        order.append((r.fitness, r.metrics["sim_finish_s"]))
    assert order == [(1.0, 1.0), (3.0, 4.0), (5.0, 5.0)]
    assert pool.clock == 5.0 and pool.busy_s == 9.0


def test_the_same_seed_gives_the_same_run():
    def run(seed: int) -> list[tuple[float, float]]:
        pool = make_pool(WorkersConfig(backend="simulated", concurrency=3, evaluate_fn=FN), seed=seed)
        for t in range(1, 9):
            pool.submit(job(t))
        out = []
        while pool.in_flight:
            out += [(r.fitness, r.metrics["sim_finish_s"]) for r in pool.poll()]
        return out
    assert run(1) == run(1) != run(2)


def test_cancel_and_shutdown():
    pool = SimulatedPool(WorkersConfig(backend="simulated", concurrency=1, evaluate_fn=FN))
    a, b = job(2), job(3)
    pool.submit(a)
    pool.submit(b)
    assert pool.cancel(b.job_id) and not pool.cancel("nothing")
    assert [r.fitness for r in pool.poll()] == [2.0] and pool.poll() == []
    pool.submit(job(4))
    assert pool.shutdown() and pool.in_flight == []
    with pytest.raises(ValueError, match="jitter"):
        SimulatedPool(jitter=-1.0)

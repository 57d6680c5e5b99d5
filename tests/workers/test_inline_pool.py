"""InlinePool: the in-process backend gives the same results and failure kinds as the Ray pool."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from workers import EvalJob, InlinePool, WorkersConfig, make_pool

FAKE = "workers.testing:fake_evaluate"


def inline(**settings: object) -> InlinePool:
    pool = make_pool(WorkersConfig(backend="inline", evaluate_fn=FAKE, **settings))  # type: ignore[arg-type]
    assert isinstance(pool, InlinePool)
    return pool


def test_one_result_per_job_in_submission_order(fake_job: Callable[..., EvalJob]) -> None:
    pool = inline(concurrency=3)
    jobs = [fake_job(seed=s) for s in range(3)]
    assert pool.free_slots == 3
    for job in jobs:
        pool.submit(job)
    assert pool.free_slots == 0 and pool.in_flight == [j.job_id for j in jobs]
    results = [r for _ in jobs for r in pool.poll()]
    assert [r.job_id for r in results] == [j.job_id for j in jobs]
    assert all(r.ok and r.attempts == 1 and r.worker.startswith("inline:") for r in results)
    assert [r.seed for r in results] == [0, 1, 2]
    assert pool.poll(timeout=5.0) == [] and pool.in_flight == []


def test_failures_are_results(fake_job: Callable[..., EvalJob]) -> None:
    pool = inline()
    cases = {"error": fake_job(**{"raise": "ZeroDivisionError"}), "diverged": fake_job(diverge=True),
             "oom": fake_job(oom_above=8, oom_as_result=True)}
    for kind, job in cases.items():
        pool.submit(job)
        (result,) = pool.poll()
        assert result.status == kind and result.job_id == job.job_id
    assert result.attempts == 2 and "batch size 64" in result.failure.message  # oom: retried at 32, then final


def test_oom_exception_retried_with_half_batch(fake_job: Callable[..., EvalJob]) -> None:
    pytest.importorskip("torch")
    pool = inline()
    pool.submit(fake_job(oom_above=32))
    (result,) = pool.poll()
    assert result.ok and result.attempts == 2 and result.metrics["batch_size"] == 32


def test_timeout_abandons_the_evaluation(fake_job: Callable[..., EvalJob]) -> None:
    pool = inline(timeout_s=0.3)
    pool.submit(fake_job(sleep=5))
    pool.submit(fake_job())
    started = time.monotonic()
    (late,) = pool.poll()
    assert late.status == "timeout" and "timeout_s=0.3" in late.failure.message
    assert time.monotonic() - started < 3
    (ok,) = pool.poll()
    assert ok.ok


def test_cancel_shutdown_and_duplicates(fake_job: Callable[..., EvalJob]) -> None:
    pool = inline(concurrency=4)
    a, b, c = fake_job(), fake_job(), fake_job()
    for job in (a, b, c):
        pool.submit(job)
    with pytest.raises(ValueError, match="already in flight"):
        pool.submit(a)
    assert pool.cancel(b.job_id) and not pool.cancel(b.job_id)
    assert pool.shutdown() == [a.job_id, c.job_id]
    assert pool.poll() == []

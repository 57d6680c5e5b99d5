"""RayPool on the session's local Ray cluster: asynchronous results and every single-node fault.

Faults are injected through ``workers.testing.fake_evaluate``'s task params; worker processes are killed by
the pid the fake reports (they belong to the test session's own cluster).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ctm.result import EvalBudget, TaskSpec
from genome.genome import Genome
from workers import EvalJob, Pool, WorkersConfigError

pytestmark = pytest.mark.slow


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_results_arrive_as_each_completes(ray_pool: Callable[..., Pool], fake_job: Callable[..., EvalJob],
                                          poll_until: Callable[..., list[Any]]) -> None:
    pool = ray_pool()
    assert pool.free_slots == 4  # the session cluster's 4 CPUs, one per evaluation
    slow, fast1, fast2 = fake_job(sleep=4.0), fake_job(sleep=0.1, seed=5), fake_job(sleep=0.1, want_checkpoint=True)
    for job in (slow, fast1, fast2):
        pool.submit(job)
    assert pool.free_slots == 1 and set(pool.in_flight) == {slow.job_id, fast1.job_id, fast2.job_id}
    first = poll_until(pool, 2, timeout_s=30)
    assert {r.job_id for r in first} == {fast1.job_id, fast2.job_id}  # no barrier on the slow one
    assert pool.in_flight == [slow.job_id]
    by_id = {r.job_id: r for r in first}
    assert by_id[fast1.job_id].seed == 5 and by_id[fast2.job_id].checkpoint.startswith(b"fake-checkpoint")
    assert all(r.ok and r.attempts == 1 and r.worker.count(":") == 1 for r in first)
    (last,) = poll_until(pool, 1, timeout_s=30)
    assert last.job_id == slow.job_id and last.ok and pool.in_flight == []
    assert pool.poll(timeout=10) == []  # nothing in flight: returns at once


def test_killed_worker_process_is_retried(ray_pool: Callable[..., Pool], fake_job: Callable[..., EvalJob],
                                          tmp_path: Path, wait_for_reports: Callable[..., Any],
                                          poll_until: Callable[..., list[Any]]) -> None:
    pool = ray_pool(max_retries=1)
    victim = fake_job(hang_once=str(tmp_path / "hung"), report_dir=str(tmp_path))
    bystander = fake_job(sleep=0.5)
    pool.submit(victim)
    pool.submit(bystander)
    (report,) = wait_for_reports(tmp_path, 1)
    os.kill(report["pid"], signal.SIGKILL)
    results = {r.job_id: r for r in poll_until(pool, 2)}
    assert results[bystander.job_id].ok
    retried = results[victim.job_id]
    assert retried.ok and retried.attempts == 2
    assert retried.worker.split(":")[1] != str(report["pid"])


def test_worker_lost_beyond_max_retries_is_a_lost_failure(
        ray_pool: Callable[..., Pool], fake_job: Callable[..., EvalJob], tmp_path: Path,
        wait_for_reports: Callable[..., Any], poll_until: Callable[..., list[Any]]) -> None:
    pool = ray_pool(max_retries=0)
    pool.submit(fake_job(hang=True, report_dir=str(tmp_path)))
    (report,) = wait_for_reports(tmp_path, 1)
    os.kill(report["pid"], signal.SIGKILL)
    (result,) = poll_until(pool, 1)
    assert result.status == "lost" and "WorkerCrashedError" in result.failure.message


def test_timeout_cancels_and_kills_the_worker(ray_pool: Callable[..., Pool], fake_job: Callable[..., EvalJob],
                                              tmp_path: Path, wait_for_reports: Callable[..., Any],
                                              poll_until: Callable[..., list[Any]]) -> None:
    pool = ray_pool(timeout_s=1.5)
    hung = fake_job(hang=True, report_dir=str(tmp_path))
    pool.submit(hung)
    (report,) = wait_for_reports(tmp_path, 1)
    pool.submit(ok := fake_job(sleep=0.2))
    results = {r.job_id: r for r in poll_until(pool, 2, timeout_s=30)}
    assert results[ok.job_id].ok
    late = results[hung.job_id]
    assert late.status == "timeout" and late.attempts == 1 and "timeout_s=1.5" in late.failure.message
    deadline = time.monotonic() + 10
    while pid_alive(report["pid"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pid_alive(report["pid"]), "the hung worker process was not killed"


def test_timeout_counts_from_start_not_from_queueing(
        ray_pool: Callable[..., Pool], fake_job: Callable[..., EvalJob],
        poll_until: Callable[..., list[Any]]) -> None:
    pool = ray_pool(timeout_s=2.0, cpus_per_eval=4)  # one evaluation at a time on the 4-CPU cluster
    jobs = [fake_job(sleep=1.2) for _ in range(3)]
    for job in jobs:
        pool.submit(job)
    results = poll_until(pool, 3, timeout_s=60)
    assert all(r.ok for r in results), [r.failure for r in results]


def test_exception_becomes_error_with_type_and_traceback(
        ray_pool: Callable[..., Pool], fake_job: Callable[..., EvalJob],
        poll_until: Callable[..., list[Any]]) -> None:
    pool = ray_pool()
    pool.submit(job := fake_job(**{"raise": "ValueError"}))
    (result,) = poll_until(pool, 1)
    assert result.status == "error" and result.attempts == 1 and result.job_id == job.job_id
    assert result.failure.message == "ValueError: fake failure"
    assert "fake_evaluate" in result.failure.traceback and "ValueError" in result.failure.traceback


def test_out_of_memory_retried_once_with_half_batch(
        ray_pool: Callable[..., Pool], fake_job: Callable[..., EvalJob],
        poll_until: Callable[..., list[Any]]) -> None:
    pool = ray_pool()
    fits = fake_job(oom_above=32)  # raises torch.OutOfMemoryError at 64, fits at 32
    never = fake_job(oom_above=8, oom_as_result=True)  # evaluate's own typed oom at 64 and at 32
    pool.submit(fits)
    pool.submit(never)
    results = {r.job_id: r for r in poll_until(pool, 2)}
    assert results[fits.job_id].ok and results[fits.job_id].attempts == 2
    assert results[fits.job_id].metrics["batch_size"] == 32
    assert results[never.job_id].status == "oom" and results[never.job_id].attempts == 2
    assert "batch size 64" in results[never.job_id].failure.message


def test_diverged_passes_through(ray_pool: Callable[..., Pool], fake_job: Callable[..., EvalJob],
                                 poll_until: Callable[..., list[Any]]) -> None:
    pool = ray_pool()
    pool.submit(job := fake_job(diverge=True))
    (result,) = poll_until(pool, 1)
    assert result.status == "diverged" and result.attempts == 1 and result.job_id == job.job_id


def test_cancel_and_shutdown_return_what_was_in_flight(
        ray_pool: Callable[..., Pool], fake_job: Callable[..., EvalJob]) -> None:
    import ray

    pool = ray_pool()
    a, b, c = fake_job(hang=True), fake_job(hang=True), fake_job(hang=True)
    for job in (a, b, c):
        pool.submit(job)
    with pytest.raises(ValueError, match="already in flight"):
        pool.submit(a)
    assert pool.cancel(b.job_id) and not pool.cancel(b.job_id)
    assert pool.poll(timeout=0.5) == []
    assert sorted(pool.shutdown()) == sorted([a.job_id, c.job_id])
    assert pool.in_flight == [] and ray.is_initialized()  # the session's connection stays open


def test_plain_task_mode_used_through_ray_client(ray_pool: Callable[..., Pool],
                                                 fake_job: Callable[..., EvalJob],
                                                 poll_until: Callable[..., list[Any]]) -> None:
    plain, limited = ray_pool(), ray_pool(timeout_s=1.5)
    plain._streaming = limited._streaming = False  # what Ray Client (ray://) gets: no streaming generators
    plain.submit(ok := fake_job(sleep=0.1))
    limited.submit(hung := fake_job(hang=True))  # its clock runs from submission (worker start-up included)
    (done,) = poll_until(plain, 1, timeout_s=30)
    assert done.job_id == ok.job_id and done.ok and done.worker
    (late,) = poll_until(limited, 1, timeout_s=30)
    assert late.job_id == hung.job_id and late.status == "timeout"


def test_missing_evaluation_module_fails_fast(ray_pool: Callable[..., Pool]) -> None:
    with pytest.raises(WorkersConfigError, match=r"workers\.evaluate_fn = 'nowhere\.mod:evaluate'"):
        ray_pool(evaluate_fn="nowhere.mod:evaluate")


def test_real_evaluation_on_a_worker(ray_pool: Callable[..., Pool], poll_until: Callable[..., list[Any]]) -> None:
    """The default ``ctm:evaluate`` through Ray: the worker builds the task from its spec and trains briefly."""
    pool = ray_pool(evaluate_fn="ctm:evaluate")
    genome = Genome(ticks=3, memory_length=3, d_model=32, d_input=16, heads=2, n_sync_out=8, n_sync_action=8,
                    nlm_hidden=4, batch_size=8)
    job = EvalJob(genome=genome, task=TaskSpec(name="parity", params={"length": 8}),
                  budget=EvalBudget(steps=2, val_samples=16), seed=1)
    pool.submit(job)
    (result,) = poll_until(pool, 1, timeout_s=120)
    assert result.ok, result.failure
    assert result.genome_hash == genome.hash and result.metrics["train_steps"] == 2

"""EvalJob, the retry policy and the worker-side attempt runner (no Ray)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ctm.result import EvalBudget, EvalResult, TaskSpec
from genome.genome import Genome
from workers import EvalJob
from workers.execute import is_out_of_memory, run_attempt
from workers.job import Attempt, finish, lost_result, next_attempt

FAKE = "workers.testing:fake_evaluate"


def test_job_id_defaults_to_genome_hash_and_fields_are_checked() -> None:
    genome = Genome(ticks=7)
    job = EvalJob(genome=genome, task=TaskSpec(name="parity"), budget=EvalBudget())
    assert job.job_id == genome.hash and job.effective_batch_size == genome.batch_size
    assert EvalJob(genome=genome, task=TaskSpec(name="p"), budget=EvalBudget(), job_id="x").job_id == "x"
    with pytest.raises(ValueError, match=r"EvalJob\.seed = -1"):
        EvalJob(genome=genome, task=TaskSpec(name="p"), budget=EvalBudget(), seed=-1)
    with pytest.raises(ValueError, match=r"EvalJob\.batch_size = 0"):
        EvalJob(genome=genome, task=TaskSpec(name="p"), budget=EvalBudget(), batch_size=0)
    with pytest.raises(TypeError, match=r"EvalJob\.genome"):
        EvalJob(genome={"ticks": 3}, task=TaskSpec(name="p"), budget=EvalBudget())  # type: ignore[arg-type]


def test_lost_attempts_retry_up_to_max_then_lost(fake_job: Callable[..., EvalJob]) -> None:
    state = Attempt(job=fake_job())
    for number in (2, 3):
        state = next_attempt(state, None, max_retries=2, lost_reason="NodeDiedError")
        assert state is not None and state.number == number
    assert next_attempt(state, None, max_retries=2) is None
    final = lost_result(state, "NodeDiedError")
    assert final.status == "lost" and final.attempts == 3
    assert final.job_id == state.job.job_id and final.genome_hash == state.job.genome.hash
    assert "NodeDiedError" in final.failure.message and "attempt 1: lost" in final.failure.message


def test_oom_retries_once_with_half_batch(fake_job: Callable[..., EvalJob]) -> None:
    state = Attempt(job=fake_job())  # genome batch_size 64
    oom = EvalResult.failed("x", "oom", "out of memory")
    retry = next_attempt(state, oom, max_retries=0)
    assert retry is not None and retry.job.batch_size == 32 and retry.number == 2
    assert next_attempt(retry, oom, max_retries=5) is None
    final = finish(retry, EvalResult.failed("x", "oom", "again"))
    assert final.attempts == 2 and "batch size 64" in final.failure.message
    assert next_attempt(Attempt(job=fake_job(batch_size=1)), oom, max_retries=0) is None


@pytest.mark.parametrize("kind", ["diverged", "timeout", "error"])
def test_other_failures_and_successes_are_final(fake_job: Callable[..., EvalJob], kind: str) -> None:
    state = Attempt(job=fake_job())
    assert next_attempt(state, EvalResult.failed("x", kind, "m"), max_retries=3) is None
    assert next_attempt(state, EvalResult(genome_hash="x"), max_retries=3) is None


def test_run_attempt_success_error_and_bad_return(fake_job: Callable[..., EvalJob]) -> None:
    job = fake_job(seed=3, want_checkpoint=True)
    ok = run_attempt(job, FAKE, worker="w:1")
    assert ok.ok and ok.worker == "w:1" and ok.checkpoint and 0 <= ok.fitness < 1
    err = run_attempt(fake_job(**{"raise": "KeyError"}), FAKE)
    assert err.status == "error" and err.failure.message.startswith("KeyError")
    assert "fake_evaluate" in err.failure.traceback and "Traceback" in err.failure.traceback
    bad = run_attempt(job, "workers.testing:default_fitness")
    assert bad.status == "error" and "TypeError" in bad.failure.message
    missing = run_attempt(job, "workers.nowhere:evaluate")
    assert missing.status == "error" and "ModuleNotFoundError" in missing.failure.message


def test_out_of_memory_is_recognised_without_importing_torch() -> None:
    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(MemoryError("out of memory"))
    assert not is_out_of_memory(ValueError("out of memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


@pytest.mark.parametrize("message", [
    "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",  # once only in ctm/evaluation.py
    "cuDNN error: CUDNN_STATUS_ALLOC_FAILED",
    "MPS backend: failed to allocate memory for a buffer",  # once only in workers/execute.py
    "HIP OUT OF MEMORY",  # the worker's list compared case-insensitively, the evaluation's did not
    "DefaultCPUAllocator: can't allocate memory: you tried to allocate 800 bytes",
])
def test_both_the_evaluation_and_the_worker_know_the_union_of_the_old_oom_lists(message: str) -> None:
    from ctm.evaluation import is_out_of_memory as evaluation_rule

    assert is_out_of_memory(RuntimeError(message)) and evaluation_rule(RuntimeError(message))
    assert evaluation_rule is is_out_of_memory  # one rule, one home (ctm.oom)


def test_cpu_allocation_failures_are_out_of_memory() -> None:
    import errno

    import torch

    with pytest.raises(RuntimeError) as info:
        torch.empty(10**14)  # 400 TB: a real failure of torch's CPU allocator on any machine
    assert is_out_of_memory(info.value), str(info.value)
    assert is_out_of_memory(MemoryError())  # Python's own, with no message at all
    assert is_out_of_memory(OSError(errno.ENOMEM, "Cannot allocate memory"))
    assert not is_out_of_memory(OSError(errno.ENOENT, "No such file or directory"))


def _allocate_400_tb(genome, task, budget, seed, device="cpu", *, batch_size=None, want_checkpoint=False):
    import torch

    if batch_size is None:
        torch.empty(10**14)
    from workers.testing import ok_result

    return ok_result(genome, seed, 0.5, batch_size=batch_size)


def test_a_cpu_allocation_failure_gets_the_halved_batch_retry() -> None:
    from workers import InlinePool, WorkersConfig

    pool = InlinePool(WorkersConfig(backend="inline", evaluate_fn=f"{__name__}:_allocate_400_tb"))
    genome = Genome(ticks=3, batch_size=64)
    pool.submit(EvalJob(genome=genome, task=TaskSpec(name="parity"), budget=EvalBudget(steps=1)))
    [result] = pool.poll()
    assert result.ok and result.attempts == 2 and result.metrics["batch_size"] == 32.0


def test_out_of_memory_is_one_rule_the_union_of_the_two_old_lists():
    """The evaluation and the pool once had different lists: now one home (ctm.oom), case-insensitive."""
    from ctm.oom import is_out_of_memory as shared
    assert is_out_of_memory is shared
    for text in ("CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate", "cuDNN error: CUDNN_STATUS_ALLOC_FAILED",
                 "Failed to allocate memory for the workspace", "DefaultCPUAllocator: can't allocate memory",
                 "Cannot allocate memory", "NOT ENOUGH MEMORY"):
        assert is_out_of_memory(RuntimeError(text)), text
    assert not is_out_of_memory(RuntimeError("CUBLAS_STATUS_EXECUTION_FAILED"))

"""The pool interface the campaign drives and the in-process :class:`InlinePool`.

Steady-state use (no batch barrier)::

    with make_pool(config) as pool:
        while campaign_goes_on:
            for _ in range(pool.free_slots):
                pool.submit(EvalJob(genome=strategy.ask(), task=task, budget=budget, seed=seed))
            for result in pool.poll(timeout=1.0):   # results as each completes
                strategy.tell(result)               # failures are results too

Every job ends in exactly one :class:`EvalResult` from :meth:`Pool.poll` (``result.job_id ==
job.job_id``) unless it is cancelled. Failures (``timeout``, ``error``, ``oom``, ``diverged``, ``lost``) are
results, never exceptions; the one exception ``poll`` raises is :class:`PoolDisconnected`.
"""

from __future__ import annotations

import abc
import os
import threading
import time
from collections import OrderedDict
from types import TracebackType

from ctm.result import EvalResult
from workers.config import WorkersConfig
from workers.execute import run_attempt
from workers.job import Attempt, EvalJob, finish, lost_result, next_attempt


class PoolDisconnected(RuntimeError):
    """The driver lost its Ray cluster (head node or network gone). Catch it, save the campaign, resume later.

    ``in_flight`` lists the ids of the jobs whose results will never arrive: resubmit them on resume.
    """

    def __init__(self, message: str, in_flight: list[str]) -> None:
        super().__init__(f"{message}; {len(in_flight)} job(s) in flight: resubmit them on resume")
        self.in_flight = list(in_flight)


class ClusterUnreachable(PoolDisconnected):
    """The pool could not connect to its Ray cluster at all (nothing answers at ``workers.address``)."""

    def __init__(self, message: str) -> None:
        RuntimeError.__init__(self, message)
        self.in_flight = []


class Pool(abc.ABC):
    """Runs :class:`EvalJob` s asynchronously and hands back one :class:`EvalResult` per job.

    Retries are the pool's business: a job whose worker process or node died is resubmitted (at most
    ``config.max_retries`` times, then a ``lost`` failure); a job that ran out of memory is resubmitted once
    with half the batch size (then an ``oom`` failure). ``EvalResult.attempts`` counts the attempts.
    """

    def __init__(self, config: WorkersConfig) -> None:
        self.config = config

    # -- the interface --------------------------------------------------------------------------------------
    @abc.abstractmethod
    def submit(self, job: EvalJob) -> None:
        """Start evaluating ``job``; ``ValueError`` if a job with the same ``job_id`` is in flight."""

    @abc.abstractmethod
    def poll(self, timeout: float = 0.0) -> list[EvalResult]:
        """Results finished since the last call, waiting up to ``timeout`` seconds for at least one.

        Returns at once (empty) when nothing is in flight and a slot is free: submit first. Raises only
        :class:`PoolDisconnected`; every failure of an evaluation is a result.
        """

    @property
    @abc.abstractmethod
    def in_flight(self) -> list[str]:
        """Ids of the submitted jobs whose result has not been returned by :meth:`poll` yet."""

    @property
    @abc.abstractmethod
    def free_slots(self) -> int:
        """How many more jobs to submit now to keep every worker busy (0 when full)."""

    @abc.abstractmethod
    def cancel(self, job_id: str) -> bool:
        """Stop ``job_id`` (no result will be reported); ``False`` if it was not in flight."""

    @abc.abstractmethod
    def shutdown(self) -> list[str]:
        """Cancel everything in flight, release the pool's resources; returns the cancelled job ids."""

    # -- shared by the backends -----------------------------------------------------------------------------
    def _check_new(self, job: EvalJob) -> None:
        if not isinstance(job, EvalJob):
            raise TypeError(f"submit() takes an EvalJob, got {type(job).__name__}")
        if job.job_id in self.in_flight:
            raise ValueError(f"job_id {job.job_id!r} is already in flight: job ids must be unique")

    def _settle(self, state: Attempt, result: EvalResult | None, *, worker: str = "",
                lost_reason: str = "") -> tuple[EvalResult | None, Attempt | None]:
        """After an attempt: ``(final result, None)`` or ``(None, next attempt to launch)``."""
        retry = next_attempt(state, result, max_retries=self.config.max_retries, lost_reason=lost_reason)
        if retry is not None:
            return None, retry
        if result is None:
            return lost_result(state, lost_reason), None
        return finish(state, result, worker=worker), None

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not isinstance(exc, PoolDisconnected):
            self.shutdown()


class InlinePool(Pool):
    """Evaluates in this process, one job per :meth:`poll` call, in submission order.

    Same results as the Ray pool for the same jobs (same retries and failure kinds; no worker deaths here).
    Without ``timeout_s`` the evaluation runs on the calling thread, so a debugger stops inside it. With
    ``timeout_s`` it runs on a helper thread; a run past the limit is reported as ``timeout`` and abandoned
    (Python cannot kill a thread: it finishes in the background and its result is dropped).
    """

    def __init__(self, config: WorkersConfig | None = None) -> None:
        super().__init__(config or WorkersConfig(backend="inline"))
        self._queue: OrderedDict[str, Attempt] = OrderedDict()
        self._worker = f"inline:{os.getpid()}"
        # gpus_per_eval > 0 asks for a GPU: inline evaluations then run on this process's CUDA device
        self._device = "cuda" if (self.config.gpus_per_eval or 0) > 0 else "cpu"

    def submit(self, job: EvalJob) -> None:
        self._check_new(job)
        self._queue[job.job_id] = Attempt(job=job)

    def poll(self, timeout: float = 0.0) -> list[EvalResult]:
        if not self._queue:
            return []
        _, state = self._queue.popitem(last=False)
        while True:
            result = self._run(state)
            final, retry = self._settle(state, result, worker=self._worker)
            if final is not None:
                return [final]
            assert retry is not None
            state = retry

    def _run(self, state: Attempt) -> EvalResult:
        limit = self.config.timeout_s
        if limit is None:
            return run_attempt(state.job, self.config.evaluate_fn, self._device, self._worker)
        box: list[EvalResult] = []
        thread = threading.Thread(target=lambda: box.append(run_attempt(
            state.job, self.config.evaluate_fn, self._device, self._worker)), daemon=True,
            name=f"ctmevo-eval-{state.job.job_id}")
        started = time.monotonic()
        thread.start()
        thread.join(limit)
        if box:
            return box[0]
        return EvalResult.failed(state.job.genome.hash, "timeout",
                                 f"exceeded timeout_s={limit:g} (ran {time.monotonic() - started:.1f} s "
                                 f"on {self._worker}; the inline evaluation was abandoned)")

    @property
    def in_flight(self) -> list[str]:
        return list(self._queue)

    @property
    def free_slots(self) -> int:
        return max(0, (self.config.concurrency or 1) - len(self._queue))

    def cancel(self, job_id: str) -> bool:
        return self._queue.pop(job_id, None) is not None

    def shutdown(self) -> list[str]:
        ids = list(self._queue)
        self._queue.clear()
        return ids

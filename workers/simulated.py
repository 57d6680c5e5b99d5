"""Simulated time: N asynchronous workers whose evaluations take the simulated seconds their results report.

``SimulatedPool`` is a third backend beside Ray and inline (``workers: {backend: simulated, concurrency: 64}``),
for evaluation functions that *model* training rather than run it (CTM-Bench's replay,
:mod:`ctm.bench.replay`): the campaign, its strategies, rung scheduler, archive and repeats run unchanged and
cannot tell it from a cluster. Each submitted job is evaluated at once in this process; its *duration* is the
result's ``metrics["wall_time_s"]`` (the replay's simulated seconds) times a log-normal jitter
(``exp(N(0, jitter²))``, drawn from one ``numpy`` generator seeded by ``seed``) plus ``dispatch_s``. A job starts
when one of ``concurrency`` workers is free (in submission order) and :meth:`poll` returns results strictly in
simulated finish order (ties by submission order), advancing :attr:`clock` to each finish: no real time leaks
into the clock, so a run is a pure function of its inputs and the seed. OOM retries follow the other pools'
rules (:func:`workers.job.next_attempt`).
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque

import numpy as np

from ctm.result import EvalResult
from workers.config import WorkersConfig
from workers.execute import run_attempt
from workers.job import Attempt, EvalJob
from workers.pool import Pool

DEFAULT_WORKERS = 64


class SimulatedPool(Pool):
    """``concurrency`` simulated workers (default 64) on a simulated clock (see the module doc)."""

    def __init__(self, config: WorkersConfig | None = None, *, seed: int = 0, jitter: float = 0.1,
                 dispatch_s: float = 0.05) -> None:
        super().__init__(config or WorkersConfig(backend="simulated"))
        self.workers = self.config.concurrency or DEFAULT_WORKERS
        if jitter < 0 or dispatch_s < 0:
            raise ValueError(f"jitter = {jitter}, dispatch_s = {dispatch_s}: allowed are numbers >= 0")
        self.clock = 0.0
        self.busy_s = 0.0  # simulated worker-seconds spent evaluating
        self._rng = np.random.default_rng(seed)
        self._jitter, self._dispatch = jitter, dispatch_s
        self._order = itertools.count()
        self._running: list[tuple[float, int, str, Attempt, EvalResult]] = []  # heap by (finish, order)
        self._waiting: deque[Attempt] = deque()
        self._ids: set[str] = set()

    # -- the interface --------------------------------------------------------------------------------------
    def submit(self, job: EvalJob) -> None:
        self._check_new(job)
        self._ids.add(job.job_id)
        self._waiting.append(Attempt(job=job))
        self._start_waiting()

    def poll(self, timeout: float = 0.0) -> list[EvalResult]:
        while self._running:
            finish, _, job_id, state, result = heapq.heappop(self._running)
            self.clock = max(self.clock, finish)
            final, retry = self._settle(state, result, worker=f"sim:{self.workers}")
            if retry is not None:
                self._waiting.appendleft(retry)
                self._start_waiting()
                continue
            self._ids.discard(job_id)
            self._start_waiting()
            assert final is not None
            final.metrics["sim_finish_s"] = self.clock
            return [final]
        return []

    @property
    def in_flight(self) -> list[str]:
        return list(self._ids)

    @property
    def free_slots(self) -> int:
        return max(self.workers - len(self._running) - len(self._waiting), 0)

    def cancel(self, job_id: str) -> bool:
        if job_id not in self._ids:
            return False
        self._ids.discard(job_id)
        self._running = [e for e in self._running if e[2] != job_id]
        heapq.heapify(self._running)
        self._waiting = deque(a for a in self._waiting if a.job.job_id != job_id)
        self._start_waiting()
        return True

    def shutdown(self) -> list[str]:
        cancelled = sorted(self._ids)
        self._ids.clear()
        self._running.clear()
        self._waiting.clear()
        return cancelled

    # -- the simulation -------------------------------------------------------------------------------------
    def _start_waiting(self) -> None:
        while self._waiting and len(self._running) < self.workers:
            state = self._waiting.popleft()
            result = run_attempt(state.job, self.config.evaluate_fn, "cpu", f"sim:{self.workers}")
            seconds = float(result.metrics.get("wall_time_s") or 0.0)
            if self._jitter:
                seconds *= float(np.exp(self._rng.normal(0.0, self._jitter)))
            seconds += self._dispatch
            self.busy_s += seconds
            heapq.heappush(self._running, (self.clock + seconds, next(self._order), state.job.job_id, state, result))

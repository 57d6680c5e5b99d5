"""``EvalJob`` (what the campaign submits) and the retry policy every pool applies to it.

A job is plain data: the genome, the task *spec* (never arrays: the worker builds the task data from the spec
and the seed) and the budget. One job may take several *attempts*: a lost worker or node, or an out-of-memory
error, makes the pool try again; :func:`next_attempt` decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ctm.result import EvalBudget, EvalResult, ParentWeights, TaskSpec
from genome.genome import Genome


@dataclass(frozen=True, kw_only=True)
class EvalJob:
    """One fitness evaluation to run: ``evaluate(genome, task, budget, seed)``.

    ``job_id`` is the genome hash unless given (it must be unique among the jobs in a pool at once): an opaque
    name chosen by the submitter, which the pool's result for the job carries as ``EvalResult.job_id``.
    ``batch_size`` overrides the genome's
    ``batch_size`` gene (the pool halves it after an out-of-memory error).
    """

    genome: Genome
    task: TaskSpec
    budget: EvalBudget
    seed: int = 0
    job_id: str = ""
    want_checkpoint: bool = False
    batch_size: int | None = None
    start: bytes | None = None  # an evaluation state to continue from (``ctm.eval_state``), None: from scratch
    parent: ParentWeights | None = None  # inherit the starting weights from this parent (``ctm.inherit``)

    def __post_init__(self) -> None:
        if not isinstance(self.genome, Genome):
            raise TypeError(f"EvalJob.genome = {self.genome!r}: allowed: a genome.Genome")
        if not isinstance(self.task, TaskSpec):
            raise TypeError(f"EvalJob.task = {self.task!r}: allowed: a ctm.result.TaskSpec")
        if not isinstance(self.budget, EvalBudget):
            raise TypeError(f"EvalJob.budget = {self.budget!r}: allowed: a ctm.result.EvalBudget")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"EvalJob.seed = {self.seed!r}: allowed: a whole number >= 0")
        if not isinstance(self.job_id, str):
            raise ValueError(f"EvalJob.job_id = {self.job_id!r}: allowed: a string (default: the genome hash)")
        if not self.job_id:
            object.__setattr__(self, "job_id", self.genome.hash)
        if self.start is not None and self.parent is not None:
            raise ValueError("EvalJob.start and EvalJob.parent are both set: allowed is one of them (a job "
                             "continues its own state or inherits its parent's)")
        b = self.batch_size
        if b is not None and (not isinstance(b, int) or isinstance(b, bool) or b < 1):
            raise ValueError(f"EvalJob.batch_size = {b!r}: allowed: null (the genome's batch_size) or an int >= 1")

    @property
    def effective_batch_size(self) -> int:
        return self.batch_size if self.batch_size is not None else self.genome.batch_size


@dataclass(kw_only=True)
class Attempt:
    """Driver-side bookkeeping of one job: the job as it will run next, and what its attempts have met."""

    job: EvalJob
    number: int = 1  # 1-based attempt number (EvalResult.attempts)
    lost: int = 0  # attempts lost to a dead worker process or node
    oom_retried: bool = False
    history: list[str] = field(default_factory=list)  # one line per earlier attempt, for failure messages


def next_attempt(state: Attempt, result: EvalResult | None, *, max_retries: int,
                 lost_reason: str = "") -> Attempt | None:
    """The attempt to run after one ended, or ``None`` when ``result`` (or a ``lost`` failure) is final.

    - ``result is None``: the attempt was lost (worker process or node died); retried while
      ``state.lost < max_retries``.
    - ``result.status == "oom"``: retried once with half the batch (not below 1).
    - anything else is final: successes, ``diverged``, ``timeout`` and ``error`` (an exception is a property of
      the genome, not of the machine, so it is not retried).
    """
    if result is None:
        if state.lost >= max_retries:
            return None
        return Attempt(job=state.job, number=state.number + 1, lost=state.lost + 1,
                       oom_retried=state.oom_retried,
                       history=[*state.history, f"attempt {state.number}: lost ({lost_reason})"])
    if result.status == "oom" and not state.oom_retried and state.job.effective_batch_size > 1:
        half = state.job.effective_batch_size // 2
        return Attempt(job=replace(state.job, batch_size=half), number=state.number + 1, lost=state.lost,
                       oom_retried=True,
                       history=[*state.history, f"attempt {state.number}: out of memory at batch size "
                                f"{state.job.effective_batch_size}"])
    return None


def finish(state: Attempt, result: EvalResult, *, worker: str = "") -> EvalResult:
    """Stamp the job's identity (``job_id``, and the genome's hash) and attempt count on its final result."""
    result.genome_hash = state.job.genome.hash
    result.job_id = state.job.job_id
    result.seed = state.job.seed
    result.attempts = state.number
    if worker and not result.worker:
        result.worker = worker
    if result.failure is not None and state.history:
        note = "; ".join(state.history)
        result.failure = replace(result.failure, message=f"{result.failure.message} (earlier: {note})")
    return result


def lost_result(state: Attempt, reason: str) -> EvalResult:
    """The final ``lost`` failure of a job whose worker died on every allowed attempt."""
    return finish(state, EvalResult.failed(state.job.genome.hash, "lost",
                                           f"worker lost on attempt {state.number}: {reason}; "
                                           f"gave up after {state.lost} retries"))

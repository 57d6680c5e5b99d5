"""Plain data that crosses package boundaries: task specs, evaluation budgets and evaluation results.

Nothing here imports torch, so ``workers/`` and ``search/`` can use these types cheaply, pickle them to Ray
workers, write them to the journal as JSON and restore them exactly.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from genome.genome import Genome
from genome.io import jsonable

FailureKind = Literal["diverged", "oom", "timeout", "error", "lost"]
FAILURE_KINDS: tuple[str, ...] = ("diverged", "oom", "timeout", "error", "lost")
BEHAVIOUR_POINTS = 8  # the behaviour vector samples accuracy and certainty at this many relative ticks


@dataclass(frozen=True, kw_only=True)
class TaskSpec:
    """A task by name and settings, e.g. ``TaskSpec(name="parity", params={"length": 16})``.

    ``name`` is a built-in task (``parity``, ``maze``, ``sort``, ``array``) or ``module:Class`` for a user task.
    """

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskSpec:
        return cls(name=data["name"], params=dict(data.get("params") or {}))


def increasing_steps(steps: Sequence[int], *, field: str = "steps") -> tuple[int, ...]:
    """``steps`` as a strictly increasing tuple of positive whole step counts, or a ValueError naming ``field``:
    the one rule for fidelity rungs and learning-curve checkpoints (continued training only goes forward)."""
    out = tuple(steps)
    if not out or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in out):
        raise ValueError(f"{field} = {list(out)}: allowed is a non-empty list of positive whole step counts")
    if any(b <= a for a, b in itertools.pairwise(out)):
        raise ValueError(f"{field} = {list(out)}: allowed is a strictly increasing list of step counts")
    return out


@dataclass(frozen=True, kw_only=True)
class EvalBudget:
    """How much training one fitness evaluation gets, and how it is measured.

    Training stops after ``steps`` optimizer steps or ``seconds`` of wall time, whichever comes first
    (``None`` = no limit of that kind; at least one must be set). ``steps`` counts in total: an evaluation that
    continues a state of s steps (``evaluate(start=...)``) trains ``steps - s`` more; ``seconds`` limits each
    call's own training time.
    """

    steps: int | None = 200
    seconds: float | None = None
    val_samples: int = 512
    exit_threshold: float = 0.8
    warmup_steps: int = 0
    grad_clip: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalBudget:
        return cls(**data)


@dataclass(frozen=True, kw_only=True)
class ParentWeights:
    """The parent a child inherits its starting weights from (``evaluation.inherit: parent``): the parent's
    genome and its evaluation state blob (:mod:`ctm.eval_state`, or a weights-only safetensors blob).

    ``task``: the task the parent was trained on, when it is not the child's (a transfer between the tasks of an
    open-ended campaign); the CTM core carries over and the tensors whose shapes the task decides (input
    embedding, positions, output head) are re-initialised (see :func:`ctm.inherit.inherit`).
    """

    genome: Genome
    state: bytes
    task: TaskSpec | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.genome, Genome):
            raise TypeError(f"ParentWeights.genome = {self.genome!r}: allowed: a genome.Genome")
        if not isinstance(self.state, (bytes, bytearray)):
            raise TypeError(f"ParentWeights.state = {type(self.state).__name__}: allowed: the bytes of a "
                            "safetensors blob")
        if self.task is not None and not isinstance(self.task, TaskSpec):
            raise TypeError(f"ParentWeights.task = {self.task!r}: allowed: None (the child's task) or a TaskSpec")


@dataclass(frozen=True, kw_only=True)
class Failure:
    kind: str  # one of FAILURE_KINDS
    message: str
    traceback: str = ""


@dataclass(kw_only=True)
class EvalResult:
    """The outcome of evaluating one genome: a success (``status == "ok"``) or a typed failure.

    ``metrics`` holds scalar figures: ``val_accuracy`` (the fitness for classification tasks),
    ``per_step_accuracy`` and ``sequence_accuracy`` (mazes, sorting), ``closed_loop_success`` (the fitness of a
    task the CTM acts in, ``pomaze``), ``exit_accuracy`` and ``exit_tick_mean``
    (stopping at the first tick whose certainty passes ``budget.exit_threshold``), ``ece`` (expected
    calibration error), ``param_count`` (measured on the built model), ``macs_per_forward``,
    ``train_steps`` (optimizer steps in total, including those of a continued start state), ``start_step`` (the
    steps the start state had done; 0 for a fresh start), ``wall_time_s``.

    ``genome_hash`` is the evaluated genome's hash, always. ``job_id`` names the job that produced the result
    when a pool ran it: an opaque string made by whoever submitted the job (a campaign writes rung and repeat
    into it), carried here and never interpreted; empty for a direct :func:`ctm.evaluate` call.
    """

    genome_hash: str
    job_id: str = ""
    status: str = "ok"
    fitness: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    per_tick_accuracy: list[float] = field(default_factory=list)
    per_tick_certainty: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    behaviour: list[float] = field(default_factory=list)
    failure: Failure | None = None
    seed: int = 0
    attempts: int = 1
    worker: str = ""
    checkpoint: bytes | None = None  # evaluation state (ctm.eval_state: weights, optimizer, steps), when asked

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @classmethod
    def failed(cls, genome_hash: str, kind: str, message: str, traceback: str = "", **extra: Any) -> EvalResult:
        if kind not in FAILURE_KINDS:
            raise ValueError(f"failure kind {kind!r} is not one of {FAILURE_KINDS}")
        return cls(genome_hash=genome_hash, status=kind, failure=Failure(kind=kind, message=message,
                                                                          traceback=traceback), **extra)

    def to_dict(self, *, with_checkpoint: bool = False) -> dict[str, Any]:
        """JSON-ready dict; non-finite floats become ``None``; the checkpoint only on request."""
        data = asdict(self)
        if not with_checkpoint:
            data.pop("checkpoint")
        return jsonable(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalResult:
        data = dict(data)
        if data.get("failure") is not None:
            data["failure"] = Failure(**data["failure"])
        return cls(**data)

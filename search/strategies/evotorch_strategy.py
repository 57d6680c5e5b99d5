"""EvoTorch baselines over the genome's vector codec: CMA-ES and its genetic algorithm.

EvoTorch's searchers are synchronous: ``searcher.step()`` samples a population and calls
``problem.evaluate(batch)`` on all of it. They are driven asynchronously here by suspending the step:

1. the searcher's state before the step is kept (a deep copy, including the Problem's own seeded
   ``torch.Generator``: EvoTorch never touches the global torch random state here);
2. the step runs on a copy whose Problem answers each ``evaluate`` call from the results known so far;
   an ``evaluate`` call it cannot answer raises, and its batch is the pending batch;
3. the pending batch's genomes (decoded, clipped and repaired) are handed out by ``ask``; each batch slot
   takes the fitness of its genome when that is told (a failure: ``failure_fitness``, a genome evaluated
   before: its known value, so nothing is evaluated twice);
4. when every slot is known, the step is run again from the kept state with all answers and completes.

The trajectory is therefore a pure function of the told results: restoring replays the steps from the seed
with the recorded fitness values (a documented replay), giving identical next asks. There is a generation
barrier: once a batch is all in flight, ``ask`` returns nothing and ``waiting`` is True until a result comes;
choose ``popsize`` at least the number of workers. After ``stall_steps`` steps in a row whose batches held no
new genome (a converged search), the strategy reports ``exhausted``.

Memory grows with every evaluation: the replay log and every told record (1.4-1.9 KB per evaluation;
docs/search.md, "Memory at scale").
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch

from ctm.result import EvalResult
from search.records import Proposal
from search.strategies._evotorch import (
    CMAES,
    GaussianMutation,
    GeneticAlgorithm,
    SearchAlgorithm,
    SimulatedBinaryCrossOver,
    evotorch,
)
from search.strategies.base import Strategy
from search.strategies.evaluated import Evaluated, phash
from search.strategies.settings import Setting


class _Pending(Exception):
    """Raised inside a step when a batch must be evaluated by the campaign first."""

    def __init__(self, values: np.ndarray):
        super().__init__("batch awaiting evaluation")
        self.values = values


class _CodecProblem(evotorch.Problem):
    """Maximise fitness over [0, 1]^d; evaluations are answered from ``answers`` (one list per batch)."""

    def __init__(self, dim: int, seed: int, bounded: bool):
        super().__init__("max", solution_length=dim, initial_bounds=(0.0, 1.0),
                         bounds=(0.0, 1.0) if bounded else None, seed=seed, dtype=torch.float64,
                         device="cpu", num_actors=0)
        self.answers: list[list[float]] = []

    def _evaluate_batch(self, batch: Any) -> None:
        if not self.answers:
            raise _Pending(batch.values.detach().cpu().numpy().astype(np.float64))
        values = self.answers.pop(0)
        if len(values) != len(batch):
            raise RuntimeError(f"evotorch replay: {len(values)} answers for a batch of {len(batch)}")
        batch.set_evals(torch.tensor(values, dtype=torch.float64))


class _EvoTorchStrategy(Strategy):
    OPERATOR: ClassVar[str] = "evotorch"
    COMMON: ClassVar[dict[str, Setting]] = {
        "failure_fitness": Setting(kind=float, default=-1e6, doc="fitness a failed evaluation counts as "
                                   "(below any real fitness: both searchers rank solutions)"),
        "stall_steps": Setting(kind=int, default=100, low=1, high=1_000_000,
                               doc="steps in a row without a new genome before reporting exhausted"),
    }

    def _make_searcher(self, problem: _CodecProblem) -> SearchAlgorithm:
        raise NotImplementedError

    def _bounded(self) -> bool:
        return True

    def _init_state(self) -> None:
        super()._init_state()
        problem = _CodecProblem(self.codec.dim, self.seed, self._bounded())
        self._pre = self._make_searcher(problem)  # the searcher's state before the current step
        self._answers: list[list[float]] = []  # answered evaluate calls of the current step
        self._pending: list[Proposal] | None = None  # the slots of the unanswered evaluate call
        self._values: dict[str, float] = {}  # told genome → the fitness the searcher sees
        self._steps = 0
        self._stall = 0  # steps in a row whose batch held no genome unknown at the time
        self._replaying, self._replay_steps = False, 0

    # -- stepping ---------------------------------------------------------------------------------------
    def _run_step(self) -> None:
        """Run the current step as far as the known answers allow; sets ``_pending`` or completes it."""
        searcher = copy.deepcopy(self._pre)
        problem = searcher.problem
        assert isinstance(problem, _CodecProblem)
        problem.answers = [list(a) for a in self._answers]
        try:
            searcher.step()
        except _Pending as pending:
            self._pending = [Proposal(genome=self.codec.decode(x), operator=self.OPERATOR)
                             for x in pending.values]
            return
        self._pre, self._answers, self._pending = searcher, [], None
        self._steps += 1

    def _advance(self) -> None:
        """Answer and complete batches whose genomes are all known, until one needs evaluations."""
        while not self.exhausted:
            if self._pending is None:
                self._run_step()
                if self._pending is None:
                    continue
                if not self._replaying:
                    fresh = any(phash(p) not in self._values for p in self._pending)
                    self._stall = 0 if fresh else self._stall + 1
                    if self._stall >= self.settings["stall_steps"]:
                        self.exhausted = True
                        return
            if any(phash(p) not in self._values for p in self._pending):
                return
            if self._replaying and self._steps >= self._replay_steps:
                return  # where the saved strategy stood (it may have stopped there as exhausted)
            self._answers.append([self._values[phash(p)] for p in self._pending])
            self._pending = None

    @property
    def waiting(self) -> bool:
        self._advance()
        return not self.exhausted and self._next_slot() is None

    def _next_slot(self) -> Proposal | None:
        if self._pending is None:
            return None
        return next((p for p in self._pending if not self._taken(phash(p))), None)

    # -- the contract -------------------------------------------------------------------------------------
    def _propose(self) -> Proposal | None:
        self._advance()
        return None if self.exhausted else self._next_slot()

    def _on_record(self, rec: Evaluated, result: EvalResult | None) -> None:
        assert rec.fitness is not None or not rec.ok
        self._values[rec.hash] = rec.fitness if rec.ok else self.settings["failure_fitness"]
        if result is not None:
            self._advance()

    def _extra_state(self) -> dict[str, Any]:
        return {"stall": self._stall, "steps": self._steps}

    def _load_extra(self, extra: Mapping[str, Any]) -> None:
        exhausted, self.exhausted, self._replaying = self.exhausted, False, True
        self._replay_steps = int(extra["steps"])
        try:
            self._advance()  # replays every step from the seed with the told values
        finally:
            self._replaying = False
        self.exhausted, self._stall = exhausted, int(extra["stall"])
        if self._steps != extra["steps"]:
            raise RuntimeError(f"{self.NAME}: replaying the told values gave {self._steps} steps, the saved "
                               f"state had {extra['steps']}")

    def _extra_metrics(self) -> dict[str, float]:
        return {"generations": float(self._steps), "waiting": float(self.waiting)}


class EvoTorchCMAES(_EvoTorchStrategy):
    """EvoTorch's CMA-ES (Hansen), centred in the middle of the codec cube; points outside it are clipped."""

    NAME = "evotorch_cmaes"
    OPERATOR = "cmaes"
    SETTINGS: ClassVar[dict[str, Setting]] = {
        "popsize": Setting(kind=int, default=None, nullable=True, low=2, high=100_000,
                           doc="λ: samples per generation (null: CMA-ES's default 4 + ⌊3 ln d⌋)"),
        "stdev_init": Setting(kind=float, default=0.25, low=0.0, high=10.0, low_open=True,
                              doc="σ₀: initial step size in codec units"),
        **_EvoTorchStrategy.COMMON,
    }

    def _bounded(self) -> bool:
        return False  # EvoTorch's CMA-ES needs an unbounded problem: the codec clips

    def _make_searcher(self, problem: _CodecProblem) -> SearchAlgorithm:
        with warnings.catch_warnings():  # two warnings from inside EvoTorch's CMAES.__init__ (0.6.1)
            warnings.filterwarnings("ignore", message="To copy construct from a tensor", category=UserWarning)
            warnings.filterwarnings("ignore", message=r"__array_wrap__ must accept context",
                                    category=DeprecationWarning)
            return CMAES(problem, stdev_init=self.settings["stdev_init"], popsize=self.settings["popsize"],
                         center_init=[0.5] * self.codec.dim)


class EvoTorchGA(_EvoTorchStrategy):
    """EvoTorch's elitist genetic algorithm: SBX crossover with tournament selection, Gaussian mutation."""

    NAME = "evotorch_ga"
    OPERATOR = "ga"
    SETTINGS: ClassVar[dict[str, Setting]] = {
        "popsize": Setting(kind=int, default=16, low=2, high=100_000, doc="population size"),
        "tournament_size": Setting(kind=int, default=3, low=1, high=100_000, doc="SBX tournament size"),
        "eta": Setting(kind=float, default=10.0, low=0.0, low_open=True, doc="SBX distribution index"),
        "mutation_stdev": Setting(kind=float, default=0.1, low=0.0, high=1.0, low_open=True,
                                  doc="Gaussian mutation step in codec units"),
        **_EvoTorchStrategy.COMMON,
    }

    def _make_searcher(self, problem: _CodecProblem) -> SearchAlgorithm:
        s = self.settings
        return GeneticAlgorithm(problem, popsize=s["popsize"], re_evaluate=False, operators=[
            SimulatedBinaryCrossOver(problem, tournament_size=s["tournament_size"], eta=s["eta"]),
            GaussianMutation(problem, stdev=s["mutation_stdev"])])

"""Plain data passed between strategies, the campaign loop, the journal and MLflow."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ctm.result import EvalResult
from genome import Genome


@dataclass(frozen=True, kw_only=True)
class Proposal:
    """A genome a strategy wants evaluated, with its ancestry.

    ``parents`` are parent genome hashes (two for crossover, none for a random sample); ``operator`` names
    how it was made (``sample``, ``mutation``, ``crossover``, ``tpe``, ``nsga2``, ``cmaes``, ``ga``, ...).
    """

    genome: Genome
    parents: tuple[str, ...] = ()
    operator: str = "sample"

    @property
    def genome_hash(self) -> str:
        return self.genome.hash

    def to_dict(self) -> dict[str, Any]:
        return {"genes": self.genome.to_dict(), "parents": list(self.parents), "operator": self.operator}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Proposal:
        return cls(genome=Genome.from_dict(data["genes"]), parents=tuple(data["parents"]),
                   operator=data["operator"])


@dataclass(kw_only=True)
class EvaluationRecord:
    """One finished evaluation as the journal stores it and MLflow archives it.

    ``birth`` is the order in which the campaign asked for the proposal (0, 1, 2, ...).
    """

    campaign: str
    birth: int
    proposal: Proposal
    result: EvalResult
    finished_at: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def genome(self) -> Genome:
        return self.proposal.genome

    def to_dict(self) -> dict[str, Any]:
        return {"campaign": self.campaign, "birth": self.birth, "proposal": self.proposal.to_dict(),
                "result": self.result.to_dict(), "finished_at": self.finished_at, "extra": self.extra}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvaluationRecord:
        return cls(campaign=data["campaign"], birth=data["birth"], proposal=Proposal.from_dict(data["proposal"]),
                   result=EvalResult.from_dict(data["result"]), finished_at=data["finished_at"],
                   extra=dict(data.get("extra") or {}))

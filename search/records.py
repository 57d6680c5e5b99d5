"""Plain data passed between strategies, the campaign loop, the journal and MLflow."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ctm.result import EvalResult
from genome import SCHEMA_VERSION, Genome
from genome.io import upgrade_genes


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
        return {"genes": self.genome.to_dict(), "schema": SCHEMA_VERSION, "parents": list(self.parents),
                "operator": self.operator}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Proposal:
        """A proposal as :meth:`to_dict` stored it; genes written by an older genome schema (journals before
        ``schema`` was recorded are schema 1) are upgraded, so old campaigns resume with the same genomes."""
        genes = data["genes"]
        version = data.get("schema", 1)
        if version != SCHEMA_VERSION:
            genes = upgrade_genes(dict(genes), int(version), source="journal")
        return cls(genome=Genome.from_dict(genes), parents=tuple(data["parents"]), operator=data["operator"])


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

    def slim(self) -> EvaluationRecord:
        """This record without its loss curve, per-tick arrays and behaviour (what a long campaign keeps in
        memory; the journal has them all)."""
        r = self.result
        if not (r.train_loss or r.per_tick_accuracy or r.per_tick_certainty or r.behaviour):
            return self
        light = EvalResult(genome_hash=r.genome_hash, status=r.status, fitness=r.fitness, metrics=r.metrics,
                           failure=r.failure, seed=r.seed, attempts=r.attempts, worker=r.worker)
        return EvaluationRecord(campaign=self.campaign, birth=self.birth, proposal=self.proposal, result=light,
                                finished_at=self.finished_at, extra=self.extra)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvaluationRecord:
        return cls(campaign=data["campaign"], birth=data["birth"], proposal=Proposal.from_dict(data["proposal"]),
                   result=EvalResult.from_dict(data["result"]), finished_at=data["finished_at"],
                   extra=dict(data.get("extra") or {}))


# -- choosing the best ---------------------------------------------------------------------------------------
LOWER_IS_BETTER = frozenset({"ece", "exit_tick_mean", "param_count", "macs_per_forward", "wall_time_s",
                             "train_loss"})


def metric_of(record: EvaluationRecord, name: str) -> float | None:
    """``fitness``, a result metric, or a descriptor (``descriptor.NAME`` or ``NAME``) of a record."""
    if name == "fitness":
        return record.result.fitness
    if name in record.result.metrics:
        return record.result.metrics[name]
    descriptors = record.extra.get("descriptors") or {}
    key = name.removeprefix("descriptor.")
    return descriptors.get(key) if isinstance(descriptors, dict) else None


def metric_names(records: Iterable[EvaluationRecord]) -> set[str]:
    """Every metric :func:`metric_of` can read from some record (for messages listing the choices)."""
    names = {"fitness"}
    for r in records:
        names |= set(r.result.metrics) | {f"descriptor.{d}" for d in (r.extra.get("descriptors") or {})}
    return names


def parse_by(by: str | None) -> tuple[str, bool]:
    """A ranking metric → (name, maximise). ``min:NAME`` / ``max:NAME`` override the default direction
    (metrics in :data:`LOWER_IS_BETTER` are minimised, everything else maximised)."""
    by = by or "fitness"
    if by.startswith(("min:", "max:")):
        return by[4:], by.startswith("max:")
    return by, by not in LOWER_IS_BETTER


def ranked(records: Iterable[EvaluationRecord], by: str | None = None) -> list[EvaluationRecord]:
    """Successful records that have the metric ``by`` (default fitness), best first; ties go to the earlier birth."""
    metric, maximise = parse_by(by)
    sign = 1.0 if maximise else -1.0
    scored = [(v, r) for r in records if r.result.ok and (v := metric_of(r, metric)) is not None]
    scored.sort(key=lambda vr: (-sign * vr[0], vr[1].birth))
    return [r for _, r in scored]


def best_record(records: Iterable[EvaluationRecord], by: str | None = None) -> EvaluationRecord | None:
    """The best successful record by ``by`` (default fitness), or ``None`` when none has that metric."""
    best = ranked(records, by)
    return best[0] if best else None

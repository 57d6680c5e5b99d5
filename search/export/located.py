"""What an export is about: one located evaluation (:class:`Located`) and the small helpers to find it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctm.result import EvalResult, TaskSpec
from genome import Genome, GenomeError, SchemaError, from_yaml
from search.errors import SearchError
from search.records import EvaluationRecord, Proposal
from search.tracking.payload import RUN_ONLY_METRICS, TAG_CAMPAIGN, TAG_OPERATOR, TAG_PARENT_HASHES

__all__ = ["ExportError", "Located", "by_hash", "genome_from_text", "normalise_cell", "record_from_run"]


class ExportError(SearchError, ValueError):
    """The evaluation asked for cannot be found or exported; the message says what to change."""


@dataclass
class Located:
    """One evaluation and everything known about where it came from."""

    record: EvaluationRecord
    task: TaskSpec
    run_id: str | None = None
    tracking_uri: str | None = None
    experiment_id: str | None = None
    campaign_dir: Path | None = None
    cell: str | None = None
    checkpoint: bytes | None = None
    checkpoint_source: str | None = None
    exit_threshold: float = 0.8
    records: list[EvaluationRecord] = field(default_factory=list)  # the whole journal (lineage)
    seeds: int = 1  # how many seeds stand behind ``mean_fitness`` (repeats at the record's rung)
    mean_fitness: float | None = None  # the genome's fitness as its campaign reports it: the mean over ``seeds``

    @property
    def genome(self) -> Genome:
        return self.record.genome

    def fitness_text(self) -> str:
        """The search fitness as the campaign reports it, and the fitness of the exported weights' own seed."""
        own = "none" if self.record.result.fitness is None else f"{self.record.result.fitness:.4f}"
        if self.seeds > 1 and self.mean_fitness is not None:
            return (f"{self.mean_fitness:.4f} (mean of {self.seeds} seeds at rung {self.record.rung}; these weights, "
                    f"seed {self.record.result.seed}: {own})")
        return own


def normalise_cell(cell: str) -> str:
    """``"3_7"``, ``"3,7"``, ``"(3, 7)"`` → ``"3_7"``; ``"12"`` → ``"12"`` (the archive's cell names)."""
    numbers = re.findall(r"\d+", str(cell))
    if not numbers:
        raise ExportError(f"--cell {cell!r}: allowed is a cell name such as 3_7 (grid) or 12 (CVT)")
    return "_".join(str(int(n)) for n in numbers)


def by_hash(records: list[EvaluationRecord], key: str) -> EvaluationRecord | None:
    hits = {r.genome.hash: r for r in records if r.genome.hash.startswith(key)}
    if len(hits) > 1:
        raise ExportError(f"genome hash prefix {key!r} is ambiguous: it matches {sorted(hits)[:10]}; give more "
                          "digits")
    return next(iter(hits.values()), None)


def record_from_run(run: Any, genome: Genome, *, ticks: list[float], certainty: list[float]) -> EvaluationRecord:
    """An :class:`EvaluationRecord` rebuilt from an evaluation run (tags, metrics) and its genome and curves."""
    tags, metrics = run.data.tags, dict(run.data.metrics)
    status = tags.get("ctmevo.status", "ok")
    plain = {k: v for k, v in metrics.items() if "." not in k and k not in RUN_ONLY_METRICS}
    result = EvalResult(genome_hash=genome.hash, status=status, fitness=metrics.get("fitness"), metrics=plain,
                        per_tick_accuracy=ticks, per_tick_certainty=certainty,
                        seed=int(tags.get("ctmevo.seed", "0") or 0))
    parents = tuple(p for p in tags.get(TAG_PARENT_HASHES, "").split(",") if p)
    birth = tags.get("ctmevo.birth", "")
    return EvaluationRecord(
        campaign=tags.get(TAG_CAMPAIGN, ""), birth=int(birth) if birth.isdigit() else 0,
        proposal=Proposal(genome=genome, parents=parents, operator=tags.get(TAG_OPERATOR, "")),
        result=result, finished_at=(run.info.end_time or run.info.start_time or 0) / 1000,
        extra={"descriptors": {k[len("descriptor."):]: v for k, v in metrics.items() if k.startswith("descriptor.")}})


def genome_from_text(text: str, source: str) -> Genome:
    try:
        return from_yaml(text, source=source)
    except (GenomeError, SchemaError) as exc:
        raise ExportError(str(exc)) from None



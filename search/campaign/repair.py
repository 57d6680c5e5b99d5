"""Weights that should be on disk and are not (a crash of an older ctmevo, a deleted file) are evaluated again.

On resume, the archive's elites and the best genome whose training state is missing are submitted once more
with the same genome, rung budget and seed: an evaluation is a pure function of them, so on a CPU the weights
come back bit for bit (on a GPU, equivalent ones). The repairs are not results: nothing is journaled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from ctm.result import EvalResult
from genome.io import write_bytes_atomic
from search.campaign.jobs import JobMaker
from search.campaign.rungs import JobKey, RungScheduler
from search.records import Proposal
from search.strategies import Strategy
from workers import Pool

__all__ = ["REPAIR", "WeightRepair", "kept_weights"]

log = logging.getLogger("ctmevo.campaign")
REPAIR = "#weights"  # job id suffix of an evaluation run again only for its lost weights

Write = Callable[[Path, Callable[[], object]], None]  # the campaign's write: an OSError becomes a storage error


def kept_weights(strategy: Strategy, rungs: RungScheduler) -> list[tuple[Proposal, JobKey]]:
    """The genomes whose weights a campaign keeps (the archive's elites and the best), at their top rung."""
    best = rungs.best()
    out = []
    for h in dict.fromkeys([*strategy.elite_hashes(), *([best[0]] if best else [])]):
        record, aggregate = strategy.record(h), rungs.aggregates.get(h)
        if record is not None:
            out.append((record.proposal, JobKey(h, max(aggregate.rung, 0) if aggregate else 0)))
    return out


class WeightRepair:
    """The repairs of one campaign: which were submitted, and writing their weights when they come back."""

    def __init__(self, *, jobs: JobMaker, write: Write) -> None:
        self.jobs = jobs
        self.write = write
        self.pending: set[str] = set()

    def submit(self, pool: Pool, wanted: Iterable[tuple[Proposal, JobKey]]) -> None:
        """Evaluate again each wanted (genome, rung) whose checkpoint is missing."""
        for proposal, key in wanted:
            if not self.jobs.checkpoint(key).exists():
                pool.submit(self.jobs.job(proposal, key, job_id=key.id + REPAIR))
                self.pending.add(key.id + REPAIR)

    def owns(self, result: EvalResult) -> bool:
        return result.job_id in self.pending

    def done(self, result: EvalResult) -> None:
        self.pending.discard(result.job_id)
        key = JobKey.parse(result.job_id.removesuffix(REPAIR))
        if result.ok and result.checkpoint is not None:
            path, data = self.jobs.checkpoint(key), result.checkpoint
            self.write(path, lambda: write_bytes_atomic(path, data))
            log.warning("weights of %s were missing; evaluated again and written to %s", key.genome_hash, path)
        else:
            log.warning("weights of %s are missing and evaluating it again failed (%s)", key.genome_hash,
                        result.status)

"""Weights that should be on disk and are not (a crash of an older ctmevo, a deleted file) are evaluated again.

On resume, the archive's elites and the best genome whose training state is missing are submitted once more
with the same genome, rung budget and seed: an evaluation is a pure function of them, so on a CPU the weights
come back bit for bit (on a GPU, equivalent ones). The repairs are not results: nothing is journaled.
"""

from __future__ import annotations

import logging
from typing import Any

from ctm.result import EvalResult
from genome.io import write_bytes_atomic
from search.campaign.rungs import JobKey
from workers import Pool

__all__ = ["REPAIR", "WeightRepair"]

log = logging.getLogger("ctmevo.campaign")
REPAIR = "#weights"  # job id suffix of an evaluation run again only for its lost weights


class WeightRepair:
    """The repairs of one campaign (a :class:`search.campaign.Campaign`, read through its attributes)."""

    def __init__(self, campaign: Any) -> None:
        self.campaign = campaign
        self.pending: set[str] = set()

    def submit(self, pool: Pool) -> None:
        c = self.campaign
        if c.config.tracking.checkpoints == "none":
            return
        best = c.rungs.best()
        for h in dict.fromkeys([*c.strategy.elite_hashes(), *([best[0]] if best else [])]):
            record, aggregate = c.strategy.record(h), c.rungs.aggregates.get(h)
            key = JobKey(h, max(aggregate.rung, 0) if aggregate else 0)
            if record is not None and not c.jobs.checkpoint(key).exists():
                pool.submit(c.jobs.job(record.proposal, key, job_id=key.id + REPAIR))
                self.pending.add(key.id + REPAIR)

    def owns(self, job_id: str) -> bool:
        return job_id in self.pending

    def done(self, result: EvalResult) -> None:
        self.pending.discard(result.genome_hash)
        key = JobKey.parse(result.genome_hash.removesuffix(REPAIR))
        if result.ok and result.checkpoint is not None:
            path, data = self.campaign.jobs.checkpoint(key), result.checkpoint
            self.campaign._write(path, lambda: write_bytes_atomic(path, data))
            log.warning("weights of %s were missing; evaluated again and written to %s", key.genome_hash, path)
        else:
            log.warning("weights of %s are missing and evaluating it again failed (%s)", key.genome_hash,
                        result.status)

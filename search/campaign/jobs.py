"""The evaluation job of a genome at a fidelity rung and seed: its budget, its seed, where its weights go, and the
training state it continues from (a promotion continues the genome's own checkpoint of the rung below)."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from search.campaign.config import CampaignConfig
from search.campaign.paths import CampaignPaths
from search.campaign.rungs import JobKey, repeat_seed
from search.records import Proposal
from workers import EvalJob

__all__ = ["JobMaker", "evaluation_seed"]

log = logging.getLogger("ctmevo.campaign")


def evaluation_seed(campaign_seed: int, genome_hash: str) -> int:
    """The training seed of a genome's evaluation (repeat 0): fixed by the campaign seed and the genome."""
    return repeat_seed(campaign_seed, genome_hash, 0)


class JobMaker:
    """Builds the :class:`workers.EvalJob` of a job key for one campaign."""

    def __init__(self, config: CampaignConfig, paths: CampaignPaths) -> None:
        self.config, self.paths = config, paths
        self.rungs = config.evaluation.rungs()
        self.fidelity = config.evaluation.fidelity is not None
        # continuing a rung needs the state of the rung below, whatever the campaign keeps for people
        self.want_checkpoint = config.tracking.checkpoints != "none" or self.fidelity
        self._warned = False

    def checkpoint(self, key: JobKey) -> Path:
        """Where the job's training state goes (one file per genome and seed: a promotion overwrites its rung)."""
        return self.paths.checkpoint(key.genome_hash if key.repeat == 0 else f"{key.genome_hash}#{key.repeat}")

    def job(self, proposal: Proposal, key: JobKey, *, job_id: str | None = None) -> EvalJob:
        budget = self.config.evaluation.budget()
        if self.fidelity:
            budget = replace(budget, steps=self.rungs[key.rung])
        start = None
        if key.rung > 0 and key.repeat == 0:
            path = self.checkpoint(key)
            if path.is_file():
                start = path.read_bytes()
            elif not self._warned:
                self._warned = True
                log.warning("no training state of %s to continue from (%s): promoted evaluations train from "
                            "scratch to their rung", key.genome_hash, path)
        return EvalJob(job_id=job_id or key.id, genome=proposal.genome, task=self.config.task.spec(), budget=budget,
                       seed=repeat_seed(self.config.seed, key.genome_hash, key.repeat),
                       want_checkpoint=self.want_checkpoint, start=start)

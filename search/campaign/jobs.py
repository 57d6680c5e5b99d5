"""The evaluation job of a genome at a fidelity rung and seed: its budget, its seed, where its weights go, and the
training state it starts from: a promotion continues the genome's own checkpoint of the rung below (with
``fidelity.promote: fresh`` it trains from scratch with a seed of its rung: :func:`search.campaign.rungs.job_seed`);
with ``evaluation.inherit: parent`` every other job of a child (its first rung, its repeats and fresh promotions)
starts from its parent's latest checkpoint, mapped by :func:`ctm.inherit.inherit` on the worker.

Which parent (:func:`inheritance_parent`): a mutation's only parent; for a child of several parents (crossover),
the parent whose genes the child shares most (ties: the first listed). The parent's latest checkpoint is its
own (seed 0) training state at the highest rung it reached so far; a parent without one (a failed evaluation,
``tracking.checkpoints`` pruned it) leaves the child to train from its own initialisation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ctm.result import EvalResult, ParentWeights
from genome.genome import Genome
from search.campaign.config import CampaignConfig
from search.campaign.rungs import JobKey, job_seed, repeat_seed
from search.descriptors import Descriptor, describe_result
from search.paths import CampaignPaths
from search.records import Proposal
from workers import EvalJob

__all__ = ["Adoption", "JobMaker", "evaluation_seed", "inheritance_parent", "result_extra"]

log = logging.getLogger("ctmevo.campaign")


def evaluation_seed(campaign_seed: int, genome_hash: str) -> int:
    """The training seed of a genome's evaluation (repeat 0): fixed by the campaign seed and the genome."""
    return repeat_seed(campaign_seed, genome_hash, 0)


def inheritance_parent(proposal: Proposal, genome_of: Callable[[str], Genome | None]) -> str | None:
    """The parent hash a child inherits from: the one whose genes it shares most (first on ties), among
    the parents ``genome_of`` knows; ``None`` for a proposal without known parents."""
    genes = proposal.genome.to_dict()
    best, shared = None, -1
    for h in proposal.parents:
        parent = genome_of(h)
        if parent is None:
            continue
        same = sum(genes.get(name) == value for name, value in parent.to_dict().items())
        if same > shared:
            best, shared = h, same
    return best


@dataclass(frozen=True, kw_only=True)
class Adoption:
    """A finished rung-0 evaluation made outside a campaign's loop, for the campaign to take in as its own
    (``Campaign.run(adopt=...)``): a transfer from another task of an open-ended campaign, or the screen that
    admitted a task. ``result.checkpoint`` becomes the genome's checkpoint here (later rungs continue it);
    ``extra`` goes into the record beside the result (e.g. where the weights came from)."""

    proposal: Proposal
    result: EvalResult
    extra: dict[str, Any] = field(default_factory=dict)


class JobMaker:
    """Builds the :class:`workers.EvalJob` of a job key for one campaign (``genome_of``: the genome of an
    evaluated hash, for inheritance)."""

    def __init__(self, config: CampaignConfig, paths: CampaignPaths,
                 genome_of: Callable[[str], Genome | None] = lambda h: None) -> None:
        self.config, self.paths, self.genome_of = config, paths, genome_of
        self.rungs = config.evaluation.rungs()
        self.fidelity = config.evaluation.fidelity is not None
        self.fresh = (f := config.evaluation.fidelity) is not None and f.promote == "fresh"
        self.inherit = config.evaluation.inherit == "parent"
        # continuing a rung needs the state of the rung below, inheriting the parent's: whatever people keep
        self.want_checkpoint = config.tracking.checkpoints != "none" or self.fidelity or self.inherit
        self._warned = False

    def checkpoint(self, key: JobKey) -> Path:
        """Where the job's training state goes (one file per genome and seed: a promotion overwrites its rung)."""
        return self.paths.checkpoint(key.genome_hash if key.repeat == 0 else f"{key.genome_hash}#{key.repeat}")

    def job(self, proposal: Proposal, key: JobKey, *, job_id: str | None = None) -> EvalJob:
        budget = self.config.evaluation.budget()
        if self.fidelity:
            budget = replace(budget, steps=self.rungs[key.rung])
        start = None
        if key.promotion and not self.fresh:
            path = self.checkpoint(key)
            if path.is_file():
                start = path.read_bytes()
            elif not self._warned:
                self._warned = True
                log.warning("no training state of %s to continue from (%s): promoted evaluations train from "
                            "scratch to their rung", key.genome_hash, path)
        parent = self.parent_weights(proposal) if start is None and self.inherit else None
        return EvalJob(job_id=job_id or key.id, genome=proposal.genome, task=self.config.task.spec(), budget=budget,
                       seed=job_seed(self.config.seed, key, fresh=self.fresh),
                       want_checkpoint=self.want_checkpoint, start=start, parent=parent)

    def parent_weights(self, proposal: Proposal) -> ParentWeights | None:
        """The parent's genome and latest checkpoint, when the proposal has a parent with one."""
        h = inheritance_parent(proposal, self.genome_of)
        genome = self.genome_of(h) if h is not None else None
        if h is None or genome is None:
            return None
        try:
            return ParentWeights(genome=genome, state=self.paths.checkpoint(h).read_bytes())
        except OSError:  # no checkpoint (a failed evaluation): the child trains from its own initialisation
            return None


def result_extra(proposal: Proposal, result: EvalResult, *, descriptors: Sequence[Descriptor],
                 cell_for: Callable[[list[float]], Any], genome_of: Callable[[str], Genome | None]
                 ) -> dict[str, Any]:
    """What a job's record carries beside its result: the descriptor values (or why there are none), the archive
    cell they fall in (``cell_for``: the strategy's) and, for a child that inherited its start, the parent
    (``inherited_from``) and the share of parameters it gave."""
    values, problem = describe_result(descriptors, proposal.genome, result)
    extra: dict[str, Any] = {}
    if "inherited_fraction" in result.metrics:
        parent = extra["inherited_from"] = inheritance_parent(proposal, genome_of)
        extra["inherited"] = f"inherited: {result.metrics['inherited_fraction']:.2f} of parameters from {parent}"
    if values is not None:
        extra["descriptors"] = {d.name: v for d, v in zip(descriptors, values, strict=True)}
        cell = cell_for(values)
        if cell is not None:
            extra["cell"] = cell
    elif problem is not None:
        extra["descriptor_error"] = problem
    return extra

"""The evaluations an open-ended campaign runs beside its task campaigns: elites fine-tuned on other tasks.

A *screen* fine-tunes an elite on a candidate task (is the candidate neither too hard nor too easy, and how
does it rank the elites?); a *transfer* fine-tunes one task's elite on another active task. Both are one
rung-0 evaluation on the target task that starts from the elite's trained weights on its home task
(:class:`ctm.result.ParentWeights` with ``task``: the CTM core carries over, the heads the task's shape decides
are re-initialised). Each result and its weights are written under ``weights/`` before its event is journaled,
so the target campaign can adopt it later (:class:`search.campaign.jobs.Adoption`) as its own evaluation.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ctm.result import EvalResult, ParentWeights, TaskSpec
from genome.genome import Genome
from genome.io import write_bytes_atomic
from genome.operators import mutate
from genome.space import GenomeSpace
from search.campaign.jobs import Adoption
from search.campaign.loop import Campaign
from search.journal import read_json
from search.records import Proposal, standings
from workers import EvalJob, Pool

__all__ = ["Elite", "Fine", "adoption", "best_models", "by_depth", "job_seed", "newcomer", "run_fine_tunes"]


@dataclass(frozen=True, kw_only=True)
class Elite:
    """A trained model that may move: its genome, home task and weights (its evaluation state on that task)."""

    agent: str  # "<home task id>/<genome hash>"
    genome: Genome
    home: TaskSpec
    state: bytes
    fitness: float


@dataclass(frozen=True, kw_only=True)
class Fine:
    """One fine-tune to run: an elite's model on a target task, under a name unique in the campaign (``key``);
    ``genome``: the architecture trained (default the elite's; a child of it starts from its weights mapped)."""

    key: str
    elite: Elite
    target: TaskSpec
    genome: Genome | None = None

    @property
    def model(self) -> Genome:
        return self.genome or self.elite.genome


def best_models(campaign: Campaign, task: str, n: int) -> list[Elite]:
    """The ``n`` best trained models of a task's campaign (ctmevo's ranking; those whose weights are on disk)."""
    out = []
    for standing in standings(campaign.records):
        if len(out) >= n:
            break
        genome = standing.record.genome
        try:
            state = campaign.paths.checkpoint(genome.hash).read_bytes()
        except OSError:
            continue
        out.append(Elite(agent=f"{task}/{genome.hash}", genome=genome, home=campaign.config.task.spec(),
                         state=state, fitness=standing.value))
    return out


def by_depth(per_task: list[list[Elite]], n: int) -> list[Elite]:
    """Up to ``n`` elites from several tasks' lists (each best first): every task's best, then every second best, ..."""
    out: list[Elite] = []
    for depth in range(n):
        out += [elites[depth] for elites in per_task if depth < len(elites)]
    return out[:n]


def newcomer(genome: Genome, known: set[str], space: GenomeSpace, rng: np.random.Generator) -> Genome:
    """The genome a transfer brings to a task that has evaluated the genomes ``known``: the elite's own, or, where
    the target has that architecture already (and keeps its own model of it), a mutation of it, which starts
    from the elite's weights mapped gene by gene (``ctm.inherit``)."""
    for _ in range(20):
        if genome.hash not in known:
            return genome
        genome = mutate(genome, space, rng)
    return genome


def job_seed(seed: int, key: str) -> int:
    """The training seed of a fine-tune: fixed by the campaign seed and the fine-tune's key."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{key}".encode()).digest()[:4], "big") & 0x7FFFFFFF


def run_fine_tunes(pool: Pool, fines: Sequence[Fine], *, budget: Any, seed: int, weights: Path,
                   landed: Callable[[Fine, EvalResult, str], None], check: Callable[[], None] = lambda: None) -> None:
    """Run ``fines`` on ``pool`` at once; as each lands, write its weights and result under ``weights`` and call
    ``landed(fine, result, file stem)`` (which journals it). ``check`` runs between polls (Ctrl-C)."""
    by_id = {}
    for fine in fines:
        job = EvalJob(job_id=f"fine:{fine.key}", genome=fine.model, task=fine.target, budget=budget,
                      seed=job_seed(seed, fine.key), want_checkpoint=True,
                      parent=ParentWeights(genome=fine.elite.genome, state=fine.elite.state, task=fine.elite.home))
        by_id[job.job_id] = fine
        pool.submit(job)
    while by_id:
        check()
        for result in pool.poll(timeout=0.5):
            fine = by_id.pop(result.job_id, None)
            if fine is None:
                continue
            stem = fine.key.replace("/", "_")
            checkpoint, result.checkpoint = result.checkpoint, None
            if checkpoint is not None:
                write_bytes_atomic(weights / f"{stem}.ckpt", checkpoint)
            write_bytes_atomic(weights / f"{stem}.json", json.dumps(result.to_dict()).encode())
            landed(fine, result, stem)


def adoption(item: dict[str, Any], weights: Path, *, operator: str) -> Adoption | None:
    """The adoption of a journaled screen or transfer (``item``: its event), or ``None`` when it failed or its
    files are gone. Its operator is ``"screen from <task>"`` or ``"transfer from <task>"`` (the family tree,
    ``ctmevo lineage`` and MLflow show where a lineage crossed tasks) and its record says where the weights came
    from (``transferred_from``: task, genome, kind)."""
    try:
        result = EvalResult.from_dict(read_json(weights / f"{item['file']}.json"))
        checkpoint = (weights / f"{item['file']}.ckpt").read_bytes()
    except (OSError, ValueError, KeyError):
        return None
    if not result.ok:
        return None
    genome = Genome.from_dict(item["genes"])
    home, _, genome_hash = str(item["agent"]).partition("/")
    # the same genome, trained on another task: the operator names the crossing in every lineage view
    proposal = Proposal(genome=genome, parents=(), operator=f"{operator} from {home}")
    return Adoption(proposal=proposal, result=replace(result, checkpoint=checkpoint),
                    extra={"transferred_from": {"task": home, "genome": genome_hash, "kind": operator}})

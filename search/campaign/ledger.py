"""The ledger of a campaign: what was asked, what is in flight, what came back. The journal's events build it.

Every journal event goes through one method here, in the live loop and on resume alike: ``ask`` (new
proposals, with their births), ``adopt`` (genomes evaluated outside the loop, e.g. transferred from another
task, whose results follow at once), ``job`` (a promotion or a repeat of a genome evaluated before), ``result`` (a
record: the scheduler, the cost and the strategy learn it). Resuming is therefore the snapshot (:mod:`.state`)
plus the events after it, applied again: asks are re-asked and must give the same genomes, promotions and
repeats are re-queued, results are re-told. For the events a snapshot covers, the scheduler and the births are
rebuilt and the strategy receives the results as its told log.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from search.campaign.rungs import JobKey, RungScheduler
from search.campaign.state import LoopState
from search.descriptors import Descriptor
from search.errors import CampaignError
from search.records import EvaluationRecord, Proposal
from search.strategies import Strategy
from search.strategies.evaluated import Revision

__all__ = ["Ledger"]


class Ledger:
    """Pending jobs, births, result counts and compute spent; the strategy and the rung scheduler it keeps in step.

    ``state`` is what the snapshot saves of it (:class:`~search.campaign.state.LoopState`); ``results`` and
    ``failures`` count the journal's results (the records themselves stay in the journal, not in memory); ``spent``
    the optimizer steps trained so far. ``journal`` names the journal in error messages.
    """

    def __init__(self, *, strategy: Strategy, rungs: RungScheduler, descriptors: list[Descriptor],
                 journal: Path) -> None:
        self.strategy = strategy
        self.rungs = rungs
        self.descriptors = descriptors
        self.journal = journal
        self.state = LoopState()
        self.births: dict[str, int] = {}  # genome hash → birth (for promotions and repeats: none when rungs.flat)
        self.results = 0
        self.failures = 0
        self.spent = 0.0

    # -- resuming ------------------------------------------------------------------------------------------
    def restore(self, events: Iterable[dict[str, Any]], snapshot: dict[str, Any] | None, *, where: str,
                point: dict[str, Any] | None = None, told: Iterable[str] = ()) -> None:
        """The snapshot (the strategy gets the results it covers as its told log), then every event after it.
        ``events`` may be a stream (:meth:`search.journal.Journal.stream`): each is read once, none is kept.
        ``point`` (:class:`~search.campaign.state.ResumePoint`): where ``events`` start instead of the journal's
        beginning, with the strategy's whole state and the counters there, and ``told`` the genomes told before."""
        events = iter(events)
        start = 0
        if point is not None and snapshot is not None:
            self.results, self.failures, self.spent = int(point["results"]), int(point["failures"]), point["spent"]
            self.rungs.load_flat_state(point["rungs"])
            start = int(point["events"])
        if snapshot is not None:
            self.state = LoopState.from_dict(snapshot, where)
            log_entries = self._covered(itertools.islice(events, self.state.events - start))
            try:
                self.strategy.load_state_dict(snapshot["strategy"], log=log_entries,
                                              start=point["strategy"] if start else None, told=told)
                for _ in log_entries:  # a state holding its own log (version 1) leaves it unread: rebuild the rest
                    pass
            except (KeyError, ValueError) as exc:
                raise CampaignError(f"{where}: {exc}; the campaign file or the journal changed since this "
                                    "snapshot") from None
        for event in events:
            self.apply(event, replay=True)

    def _covered(self, events: Iterable[dict[str, Any]]) -> Iterator[Any]:
        """Events a snapshot covers: the scheduler and births are rebuilt, the strategy's told log is yielded."""
        for event in events:
            if event["event"] in ("ask", "adopt"):
                for birth, data in zip(event["births"], event["proposals"], strict=True):
                    key = JobKey(Proposal.from_dict(data).genome_hash)
                    if not self.rungs.flat:
                        self.births[key.genome_hash] = birth
                    self.rungs.asked(key)
            elif event["event"] == "job":
                self.rungs.asked(JobKey.parse(event["job"]), cell=bool(event.get("cell")))
            elif event["event"] == "result":
                record = EvaluationRecord.from_dict(event["record"])
                entry = self._learn(record)
                yield (self.strategy.log_entry(record.proposal, record.result, self.journaled_descriptors(record))
                       if entry is None else entry)

    # -- the events ----------------------------------------------------------------------------------------
    def apply(self, event: dict[str, Any], *, replay: bool) -> None:
        if event["event"] == "ask":
            self.ask(event["births"], [Proposal.from_dict(p) for p in event["proposals"]], replay=replay)
        elif event["event"] == "adopt":
            self.adopt(event["births"], [Proposal.from_dict(p) for p in event["proposals"]])
        elif event["event"] == "job":
            self.job(JobKey.parse(event["job"]), cell=bool(event.get("cell")))
        elif event["event"] == "result":
            self.result(EvaluationRecord.from_dict(event["record"]))
        else:
            raise CampaignError(f"{self.journal}: unknown event {event['event']!r}")

    def ask(self, births: list[int], proposals: list[Proposal], *, replay: bool) -> None:
        """New genomes in flight. On replay the strategy is asked again and must give the same genomes."""
        if replay:
            again = self.strategy.ask(len(proposals))
            if [p.genome_hash for p in again] != [p.genome_hash for p in proposals]:
                raise CampaignError(
                    f"{self.journal}: replaying ask #{births[0]} gave other genomes than the journal "
                    "holds: the strategy is not deterministic, or the campaign file was edited")
        self._pending(births, proposals)
        self.state.events += 1

    def _pending(self, births: list[int], proposals: list[Proposal]) -> None:
        for birth, proposal in zip(births, proposals, strict=True):
            self.state.pending[JobKey(proposal.genome_hash).id] = (birth, proposal)
            if not self.rungs.flat:
                self.births[proposal.genome_hash] = birth
            self.rungs.asked(JobKey(proposal.genome_hash))
        self.state.births = max(self.state.births, max(births) + 1)

    def adopt(self, births: list[int], proposals: list[Proposal]) -> None:
        """Genomes the strategy did not ask for (:meth:`Strategy.adopt`), pending until their results are applied."""
        for proposal in proposals:
            self.strategy.adopt(proposal)
        self._pending(births, proposals)
        self.state.events += 1

    def job(self, key: JobKey, *, cell: bool = False) -> None:
        """A promotion or a repeat of a genome evaluated before (``cell``: a cell promotion)."""
        record = self.strategy.record(key.genome_hash)
        assert record is not None, f"a job for {key.genome_hash}, which was never evaluated"
        self.state.pending[key.id] = (self.births[key.genome_hash], record.proposal)
        self.rungs.asked(key, cell=cell)
        self.state.events += 1

    def result(self, record: EvaluationRecord) -> None:
        """A journaled result: no longer pending; booked; told to the strategy (or revised, after its first)."""
        self.state.pending.pop(JobKey(record.genome.hash, record.rung, record.repeat).id, None)
        revision = self._learn(record)
        if revision is None:
            self.strategy.tell(record.result, descriptors=self.journaled_descriptors(record))
        else:
            self.strategy.revise(revision.hash, fitness=revision.fitness, rung=revision.rung, seeds=revision.seeds)
        self.state.events += 1

    def _learn(self, record: EvaluationRecord) -> Revision | None:
        """Book one result (counts, cost, scheduler); the strategy's revision when it is not a first result."""
        key = JobKey(record.genome.hash, record.rung, record.repeat)
        fitness = record.result.fitness if record.result.ok else None
        aggregate = self.rungs.observe(key, fitness)
        self.results += 1
        self.failures += not record.result.ok
        self.spent += record.cost
        if key == JobKey(key.genome_hash):
            return None
        return Revision(hash=key.genome_hash, fitness=aggregate.mean, rung=aggregate.rung, seeds=aggregate.seeds)

    def point(self, *, offset: int) -> dict[str, Any] | None:
        """What a :class:`~search.campaign.state.ResumePoint` holds now (the journal ends at ``offset``), or None
        where the campaign cannot have one (not flat, or a strategy without a whole compact state)."""
        strategy = self.strategy.compact_state() if self.rungs.flat else None
        if strategy is None:
            return None
        return {"events": self.state.events, "offset": offset, "results": self.results, "failures": self.failures,
                "spent": self.spent, "rungs": self.rungs.flat_state(), "strategy": strategy}

    # -- reading -----------------------------------------------------------------------------------------
    def jobs_left(self, budget: Any) -> int | None:
        """How many more jobs may start under ``budget`` (``None``: no limit). Jobs in flight count against it, by
        number or by the steps they will train: a campaign ends by waiting for its last jobs, never by abandoning
        them."""
        left = None if budget.evaluations is None else budget.evaluations - self.results - len(self.state.pending)
        in_flight = self.rungs.steps - self.rungs.steps_answered  # steps of the jobs without a result yet
        return 0 if budget.steps is not None and self.spent + in_flight >= budget.steps else left

    def spent_all(self, budget: Any) -> bool:
        """``budget``'s evaluations or training steps are spent (its wall time: the loop's clock says)."""
        return ((budget.evaluations is not None and self.results >= budget.evaluations)
                or (budget.steps is not None and self.spent >= budget.steps))

    def in_flight(self) -> list[tuple[JobKey, Proposal]]:
        """The pending jobs in the order they were asked (to submit again on resume)."""
        items = sorted(self.state.pending.items(), key=lambda item: item[1][0])
        return [(JobKey.parse(job_id), proposal) for job_id, (_, proposal) in items]

    def journaled_descriptors(self, record: EvaluationRecord) -> list[float] | None:
        """The descriptor values a result event holds (all of them, in the campaign's order), else None."""
        values = record.extra.get("descriptors")
        if not isinstance(values, dict) or any(d.name not in values for d in self.descriptors):
            return None
        return [float(values[d.name]) for d in self.descriptors]

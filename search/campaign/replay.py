"""How a campaign comes back: its snapshot, then the journal's events, exactly as they happened.

The snapshot (:mod:`.state`) covers the first ``events`` journal events: for those the scheduler and the births
are rebuilt and the strategy receives the results as its told log (first results as evaluations, later ones as
revisions); every event after it is applied again (asks are re-asked and must give the same genomes, promotions
and repeats are re-queued, results are re-told). The live loop applies its own events through the same methods.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from search.campaign.progress import Progress
from search.campaign.rungs import JobKey, RungScheduler
from search.campaign.state import LoopState
from search.descriptors import Descriptor
from search.errors import CampaignError
from search.journal import Journal, read_json
from search.records import EvaluationRecord, Proposal
from search.strategies import Strategy
from search.strategies.evaluated import Revision

__all__ = ["Replay"]


class Replay:
    """Mixed into :class:`search.campaign.Campaign`: restoring and applying journal events."""

    journal: Journal
    paths: Any
    state: LoopState
    strategy: Strategy
    rungs: RungScheduler
    progress: Progress
    descriptors: list[Descriptor]
    _births: dict[str, int]
    _records: list[EvaluationRecord]
    _spent: float
    _snapshot_done: int

    def _restore(self) -> None:
        """The snapshot (the strategy gets the journal's results before it as its told log), then every journal
        event after it, exactly as they happened."""
        events = self.journal.read()
        if self.paths.state.exists():
            data = read_json(self.paths.state)
            self.state = LoopState.from_dict(data, str(self.paths.state))
            log_entries = list(self._replay_before(events[: self.state.events]))
            try:
                self.strategy.load_state_dict(data["strategy"], log=log_entries)
            except (KeyError, ValueError) as exc:
                raise CampaignError(f"{self.paths.state}: {exc}; the campaign file or the journal changed since "
                                    "this snapshot") from None
            self.progress.elapsed_before = self.state.elapsed_s
        for event in events[self.state.events:]:
            self._apply(event, replay=True)
        self._snapshot_done = len(self._records)
        self.progress.done = len(self._records)
        self.progress.failures = sum(not r.result.ok for r in self._records)
        self.progress.metrics = self.strategy.metrics()

    def _replay_before(self, events: list[dict[str, Any]]) -> Iterator[Any]:
        """Events a snapshot covers: the scheduler and births are rebuilt, the strategy's told log is yielded."""
        for event in events:
            if event["event"] == "ask":
                for birth, data in zip(event["births"], event["proposals"], strict=True):
                    key = JobKey(Proposal.from_dict(data).genome_hash)
                    self._births[key.genome_hash] = birth
                    self.rungs.asked(key)
            elif event["event"] == "job":
                self.rungs.asked(JobKey.parse(event["job"]))
            elif event["event"] == "result":
                record = EvaluationRecord.from_dict(event["record"])
                entry = self._learn(record)
                yield (self.strategy.log_entry(record.proposal, record.result, self._journaled_descriptors(record))
                       if entry is None else entry)

    def _learn(self, record: EvaluationRecord) -> Revision | None:
        """Book one result (records, cost, scheduler); the strategy's revision when it is not a first result."""
        key = JobKey(record.genome.hash, record.rung, record.repeat)
        fitness = record.result.fitness if record.result.ok else None
        aggregate = self.rungs.observe(key, fitness)
        self._records.append(record.slim())
        self._spent += record.cost
        if key == JobKey(key.genome_hash):
            return None
        return Revision(hash=key.genome_hash, fitness=aggregate.mean, rung=aggregate.rung, seeds=aggregate.seeds)

    def _apply(self, event: dict[str, Any], *, replay: bool) -> None:
        if event["event"] == "ask":
            self._apply_ask(event["births"], [Proposal.from_dict(p) for p in event["proposals"]], replay=replay)
        elif event["event"] == "job":
            self._apply_job(JobKey.parse(event["job"]))
        elif event["event"] == "result":
            self._apply_result(EvaluationRecord.from_dict(event["record"]))
        else:
            raise CampaignError(f"{self.paths.journal}: unknown event {event['event']!r}")

    def _apply_ask(self, births: list[int], proposals: list[Proposal], *, replay: bool) -> None:
        if replay:
            again = self.strategy.ask(len(proposals))
            if [p.genome_hash for p in again] != [p.genome_hash for p in proposals]:
                raise CampaignError(
                    f"{self.paths.journal}: replaying ask #{births[0]} gave other genomes than the journal "
                    "holds: the strategy is not deterministic, or the campaign file was edited")
        for birth, proposal in zip(births, proposals, strict=True):
            self.state.pending[proposal.genome_hash] = (birth, proposal)
            self._births[proposal.genome_hash] = birth
            self.rungs.asked(JobKey(proposal.genome_hash))
        self.state.births = max(self.state.births, max(births) + 1)
        self.state.events += 1

    def _apply_job(self, key: JobKey) -> None:
        """A promotion or a repeat of a genome evaluated before."""
        record = self.strategy.record(key.genome_hash)
        assert record is not None, f"a job for {key.genome_hash}, which was never evaluated"
        self.state.pending[key.id] = (self._births[key.genome_hash], record.proposal)
        self.rungs.asked(key)
        self.state.events += 1

    def _apply_result(self, record: EvaluationRecord) -> None:
        self.state.pending.pop(JobKey(record.genome.hash, record.rung, record.repeat).id, None)
        revision = self._learn(record)
        if revision is None:
            self.strategy.tell(record.result, descriptors=self._journaled_descriptors(record))
        else:
            self.strategy.revise(revision.hash, fitness=revision.fitness, rung=revision.rung, seeds=revision.seeds)
        self.state.events += 1

    def _journaled_descriptors(self, record: EvaluationRecord) -> list[float] | None:
        """The descriptor values a result event holds (all of them, in the campaign's order), else None."""
        values = record.extra.get("descriptors")
        if not isinstance(values, dict) or any(d.name not in values for d in self.descriptors):
            return None
        return [float(values[d.name]) for d in self.descriptors]


"""A campaign: the asynchronous ask → evaluate → tell loop, durable against any stop.

The loop keeps every worker slot busy::

    while budget left:
        proposals = strategy.ask(free slots)   → journal "ask" event (fsynced) → pool.submit
        result = pool.poll()                   → journal "result" event (fsynced) → strategy.tell → reporter

The journal is the source of truth. ``state.json`` is an atomic snapshot of the strategy taken every
``snapshot_every`` evaluations, with the number of journal events it includes. Resuming restores the snapshot,
replays the journal events after it (asks are re-asked and must reproduce the same genomes, results are
re-told), and re-submits the proposals that were in flight at the stop. MLflow runs are keyed by campaign and
genome hash, so re-logging after a crash finds the existing run instead of creating a duplicate.

Descriptors are computed once per evaluation, here (:func:`search.descriptors.describe_result`), journaled
with the result, and told to the strategy: the journal, the archive, MLflow and export see the same values.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ctm.result import EvalResult
from search.campaign.config import CampaignConfig, load_campaign_config
from search.campaign.paths import CampaignPaths, default_tracking_uri
from search.campaign.progress import Progress
from search.campaign.reporter import CampaignReporter, Reporter
from search.descriptors import describe_result, make_descriptors
from search.errors import CampaignError
from search.journal import Journal, read_json, write_atomic
from search.records import EvaluationRecord, Proposal
from search.strategies import Strategy, make_strategy
from workers import EvalJob, Pool, WorkersConfig, make_pool

__all__ = ["STATE_VERSION", "Campaign", "evaluation_seed", "start"]

STATE_VERSION = 1


def evaluation_seed(campaign_seed: int, genome_hash: str) -> int:
    """The training seed of one evaluation: fixed by the campaign seed and the genome, whatever the order."""
    return int(hashlib.sha256(f"{campaign_seed}:{genome_hash}".encode()).hexdigest()[:8], 16)


class Campaign:
    """One campaign directory: its config, journal, strategy snapshot, pictures and MLflow records."""

    def __init__(self, *, config: CampaignConfig, directory: Path, campaign_id: str):
        self.config = config
        self.paths = CampaignPaths(Path(directory))
        self.campaign_id = campaign_id
        self.space = config.space()
        self.descriptors = make_descriptors(config.descriptors, field="descriptors", space=self.space)
        self.strategy: Strategy = make_strategy(
            config.strategy.name, space=self.space, seed=config.seed, descriptors=self.descriptors,
            settings=dict(config.strategy.settings), field="strategy")
        self.workers_config = WorkersConfig.from_dict(config.workers)
        self.journal = Journal(self.paths.journal)
        self.progress = Progress(budget=config.budget.evaluations)
        self._events = 0  # journal events applied to self.strategy
        self._births = 0
        self._pending: dict[str, tuple[int, Proposal]] = {}  # asked, no result yet: hash → (birth, proposal)
        self._records: list[EvaluationRecord] = []

    # -- creation and resumption -------------------------------------------------------------------------
    @classmethod
    def create(cls, config: CampaignConfig, directory: Path | None = None) -> Campaign:
        root = Path(directory) if directory else config.directory()
        paths = CampaignPaths(root)
        if paths.journal.exists() or paths.meta.exists():
            raise CampaignError(f"{root} already holds a campaign: continue it with 'ctmevo resume {root}', or "
                                "choose another output_dir")
        root.mkdir(parents=True, exist_ok=True)
        campaign_id = f"{config.name}-{uuid.uuid4().hex[:8]}"
        paths.config.write_text(config.to_yaml())
        write_atomic(paths.meta, {"campaign_id": campaign_id, "created": time.time(), "state_version": STATE_VERSION})
        return cls(config=config, directory=root, campaign_id=campaign_id)

    @classmethod
    def open(cls, directory: Path) -> Campaign:
        paths = CampaignPaths(Path(directory))
        if not paths.meta.exists() or not paths.config.exists():
            raise CampaignError(f"{directory} is not a campaign directory (no campaign.json / campaign.yaml): "
                                "start one with 'ctmevo run FILE'")
        meta = read_json(paths.meta)
        campaign = cls(config=load_campaign_config(paths.config), directory=paths.root,
                       campaign_id=meta["campaign_id"])
        campaign._restore()
        return campaign

    @property
    def tracking_uri(self) -> str:
        """The MLflow store of this campaign: ``tracking.uri``, or the sqlite store inside its directory."""
        return self.config.tracking.uri or default_tracking_uri(self.paths)

    def _restore(self) -> None:
        """Snapshot first, then every journal event after it, exactly as they happened."""
        if self.paths.state.exists():
            state = read_json(self.paths.state)
            if state.get("version") != STATE_VERSION:
                raise CampaignError(f"{self.paths.state}: state version {state.get('version')} is not "
                                    f"{STATE_VERSION}; this campaign was written by another ctmevo version")
            self.strategy.load_state_dict(state["strategy"])
            self._events = state["events"]
            self._births = state["births"]
            self._pending = {h: (b, Proposal.from_dict(p)) for h, (b, p) in state["pending"].items()}
            self.progress.elapsed_before = state["elapsed_s"]
        events = self.journal.read()
        for event in events[: self._events]:
            if event["event"] == "result":
                self._records.append(EvaluationRecord.from_dict(event["record"]))
        for event in events[self._events:]:
            self._apply(event, replay=True)
        self.progress.done = len(self._records)
        self.progress.failures = sum(not r.result.ok for r in self._records)
        self.progress.metrics = self.strategy.metrics()

    def _apply(self, event: dict[str, Any], *, replay: bool) -> None:
        if event["event"] == "ask":
            proposals = [Proposal.from_dict(p) for p in event["proposals"]]
            if replay:
                again = self.strategy.ask(len(proposals))
                if [p.genome_hash for p in again] != [p.genome_hash for p in proposals]:
                    raise CampaignError(
                        f"{self.paths.journal}: replaying ask #{event['births'][0]} gave other genomes than the "
                        "journal holds: the strategy is not deterministic, or the campaign file was edited")
            for birth, proposal in zip(event["births"], proposals, strict=True):
                self._pending[proposal.genome_hash] = (birth, proposal)
            self._births = max(self._births, max(event["births"]) + 1)
        elif event["event"] == "result":
            record = EvaluationRecord.from_dict(event["record"])
            self._pending.pop(record.result.genome_hash, None)
            self.strategy.tell(record.result, descriptors=self._journaled_descriptors(record))
            self._records.append(record)
        else:
            raise CampaignError(f"{self.paths.journal}: unknown event {event['event']!r}")
        self._events += 1

    def _journaled_descriptors(self, record: EvaluationRecord) -> list[float] | None:
        """The descriptor values a result event holds (all of them, in the campaign's order), else None."""
        values = record.extra.get("descriptors")
        if not isinstance(values, dict) or any(d.name not in values for d in self.descriptors):
            return None
        return [float(values[d.name]) for d in self.descriptors]

    def snapshot(self) -> None:
        write_atomic(self.paths.state, {
            "version": STATE_VERSION, "events": self._events, "births": self._births,
            "strategy": self.strategy.state_dict(), "elapsed_s": self.progress.elapsed_s,
            "pending": {h: [b, p.to_dict()] for h, (b, p) in self._pending.items()},
        })

    # -- the loop ----------------------------------------------------------------------------------------
    @property
    def records(self) -> list[EvaluationRecord]:
        return list(self._records)

    @property
    def pending(self) -> int:
        """Proposals asked but without a result: in flight now, or re-submitted on resume."""
        return len(self._pending)

    def _budget_left(self) -> int | None:
        if self.config.budget.evaluations is None:
            return None
        return self.config.budget.evaluations - len(self._records) - len(self._pending)

    def _out_of_time(self) -> bool:
        limit = self.config.budget.wall_time_s
        return limit is not None and self.progress.elapsed_s >= limit

    def finished(self) -> bool:
        evaluations = self.config.budget.evaluations
        return (evaluations is not None and len(self._records) >= evaluations) or self._out_of_time()

    def _job(self, proposal: Proposal) -> EvalJob:
        return EvalJob(job_id=proposal.genome_hash, genome=proposal.genome, task=self.config.task.spec(),
                       budget=self.config.evaluation.budget(),
                       seed=evaluation_seed(self.config.seed, proposal.genome_hash),
                       want_checkpoint=self.config.tracking.checkpoints != "none")

    def run(self, *, on_progress: Callable[[Progress], None] | None = None, pool: Pool | None = None,
            reporter: Reporter | None = None, offline_ok: bool = False) -> Progress:
        """Run until the budget is spent (or forever); KeyboardInterrupt stops gracefully and re-raises.

        ``reporter`` receives every record (default: :class:`CampaignReporter`: live view, pictures, MLflow).
        ``offline_ok``: start even if the tracking server cannot be reached (records are spooled for
        ``ctmevo sync``); otherwise an unreachable server is an error before any evaluation starts.
        """
        with self._lock():
            reporter = reporter or CampaignReporter(self, offline_ok=offline_ok)
            reporter.start()
            own_pool = pool is None
            pool = pool or make_pool(self.workers_config)
            return self._loop(pool, own_pool, reporter, on_progress)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """One process per campaign directory: a second ``run``/``resume`` is refused, not interleaved."""
        with lock_campaign(self.paths.root):
            yield

    def _loop(self, pool: Pool, own_pool: bool, reporter: Reporter,
              on_progress: Callable[[Progress], None] | None) -> Progress:
        try:
            for proposal in [p for _, p in sorted(self._pending.values(), key=lambda bp: bp[0])]:
                pool.submit(self._job(proposal))  # in flight at the last stop: evaluate again
            while not self.finished():
                self._fill(pool)
                if not pool.in_flight and self.strategy.exhausted:
                    break
                for result in pool.poll(timeout=0.5):
                    self._record(result, reporter)
                self.progress.in_flight = len(pool.in_flight)
                if on_progress:
                    on_progress(self.progress)
                reporter.tick()
            self.snapshot()
            reporter.finish()
        except BaseException:
            self._stop(pool if own_pool else None)
            reporter.close()
            raise
        else:
            if own_pool:
                pool.shutdown()
            reporter.close()
        return self.progress

    def _fill(self, pool: Pool) -> None:
        free = pool.free_slots
        left = self._budget_left()
        if left is not None:
            free = min(free, left)
        if free <= 0 or self._out_of_time():
            return
        proposals = self.strategy.ask(free)
        if not proposals:
            return
        births = list(range(self._births, self._births + len(proposals)))
        event = {"event": "ask", "births": births, "proposals": [p.to_dict() for p in proposals]}
        self.journal.append(event)
        self._apply(event, replay=False)
        for proposal in proposals:
            pool.submit(self._job(proposal))

    def _record(self, result: EvalResult, reporter: Reporter) -> None:
        if result.genome_hash not in self._pending:
            return  # a duplicate delivery (e.g. a retried job that also finished): already recorded
        birth, proposal = self._pending[result.genome_hash]
        checkpoint, result.checkpoint = result.checkpoint, None
        values, problem = describe_result(self.descriptors, proposal.genome, result)
        extra: dict[str, Any] = {}
        if values is not None:
            extra["descriptors"] = {d.name: v for d, v in zip(self.descriptors, values, strict=True)}
        elif problem is not None:
            extra["descriptor_error"] = problem
        record = EvaluationRecord(campaign=self.campaign_id, birth=birth, proposal=proposal, result=result,
                                  finished_at=time.time(), extra=extra)
        event = {"event": "result", "record": record.to_dict()}
        self.journal.append(event)  # on disk before anything depends on it
        self._apply(event, replay=False)
        if checkpoint is not None:
            self.paths.checkpoints.mkdir(exist_ok=True)
            write_atomic(self.paths.checkpoint(proposal.genome_hash), checkpoint)
        self.progress.done = len(self._records)
        self.progress.in_flight = len(self._pending)
        self.progress.failures += not result.ok
        self.progress.metrics = self.strategy.metrics()
        if len(self._records) % self.config.snapshot_every == 0:
            self.snapshot()
        reporter.recorded(record)

    def _stop(self, pool: Pool | None) -> None:
        """Graceful stop: cancel in-flight work (it is re-submitted on resume) and save the state."""
        if pool is not None:
            pool.shutdown()
        self.snapshot()


@contextlib.contextmanager
def lock_campaign(root: Path) -> Iterator[None]:
    """Hold the lock of the campaign directory ``root``; :class:`CampaignError` if another process holds it."""
    with CampaignPaths(root).lock.open("a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CampaignError(f"{root} is being run by another ctmevo process right now") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def start(config_path: Path, *, directory: Path | None = None, fresh: bool = False) -> Campaign:
    """A new campaign from a file; ``fresh`` deletes an earlier campaign in the same directory first."""
    config = load_campaign_config(config_path)
    root = Path(directory) if directory else config.directory()
    if fresh and root.exists():
        shutil.rmtree(root)
    return Campaign.create(config, root)

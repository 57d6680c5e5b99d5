"""A campaign: the asynchronous ask → evaluate → tell loop, durable against any stop, cheap per evaluation.

The hot loop does only what dispatch needs::

    proposals = strategy.ask(free slots)   → journal "ask" event (fsync)          → pool.submit
    results   = pool.poll()                → checkpoints (fsync) → journal "result" events (ONE fsync for the
                                             batch: group commit) → strategy.tell each → reporter.recorded

Everything a person looks at (MLflow runs, pictures, tables) is derived from the journal beside the loop by
consumers (:mod:`.reporter`, :mod:`.consumers`), never on the loop's thread. The journal is the source of
truth; a result's weights are on disk before the journal refers to them. ``state.json`` (:mod:`.state`) is a
small snapshot taken every ``snapshot_every`` evaluations and at every stop; resuming restores it, hands the
journal's results to the strategy as its told log, replays the events after the snapshot (asks are re-asked
and must reproduce the same genomes, results are re-told) and re-submits the proposals that were in flight.

Descriptors are computed once per evaluation, here, journaled with their archive cell, and told to the
strategy. A failed write (disk full, read-only directory) stops the campaign with a
:class:`~search.errors.CampaignStorageError` naming the path; the journal keeps every result before it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

from ctm.result import EvalResult
from genome.io import write_bytes_atomic
from search.campaign.config import CampaignConfig, load_campaign_config
from search.campaign.paths import CampaignPaths, default_tracking_uri, lock_campaign
from search.campaign.progress import Progress
from search.campaign.reporter import CampaignReporter, Reporter
from search.campaign.state import STATE_VERSION, LoopState, results_before, strategy_log
from search.descriptors import describe_result, make_descriptors
from search.errors import CampaignError, CampaignStorageError
from search.journal import Journal, read_json, write_atomic
from search.records import EvaluationRecord, Proposal
from search.strategies import Strategy, make_strategy
from workers import EvalJob, Pool, WorkersConfig, make_pool

__all__ = ["Campaign", "evaluation_seed", "start"]

log = logging.getLogger("ctmevo.campaign")
REPAIR = "#weights"  # job id suffix of an evaluation run again only for its lost weights


def evaluation_seed(campaign_seed: int, genome_hash: str) -> int:
    """The training seed of one evaluation: fixed by the campaign seed and the genome, whatever the order."""
    return int(hashlib.sha256(f"{campaign_seed}:{genome_hash}".encode()).hexdigest()[:8], 16)


class Campaign:
    """One campaign directory: its config, journal, snapshot, and the loop that runs it."""

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
        self.state = LoopState()
        self._records: list[EvaluationRecord] = []  # slim copies (no loss curves): the journal has the rest
        self._lock: IO[str] | None = None
        self._held: contextlib.ExitStack | None = None  # a lock taken by start(fresh=True)
        self._repairs: set[str] = set()  # jobs in flight that evaluate again for lost weights
        self._snapshot_done = 0

    # -- creation and resumption -------------------------------------------------------------------------
    @classmethod
    def create(cls, config: CampaignConfig, directory: Path | None = None, *, lock: IO[str] | None = None
               ) -> Campaign:
        root = Path(directory) if directory else config.directory()
        paths = CampaignPaths(root)
        if paths.journal.exists() or paths.meta.exists():
            raise CampaignError(f"{root} already holds a campaign: continue it with 'ctmevo resume {root}', or "
                                "start over with 'ctmevo run FILE --fresh'")
        campaign_id = f"{config.name}-{uuid.uuid4().hex[:8]}"
        try:
            root.mkdir(parents=True, exist_ok=True)
            paths.config.write_text(config.to_yaml())
            write_atomic(paths.meta, {"campaign_id": campaign_id, "created": time.time(),
                                      "state_version": STATE_VERSION})
        except OSError as exc:
            raise CampaignStorageError(Path(exc.filename or root), exc) from None
        campaign = cls(config=config, directory=root, campaign_id=campaign_id)
        campaign._lock = lock
        return campaign

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
        """The snapshot (the strategy gets the journal's results before it as its told log), then every journal
        event after it, exactly as they happened."""
        events = self.journal.read()
        if self.paths.state.exists():
            data = read_json(self.paths.state)
            self.state = LoopState.from_dict(data, str(self.paths.state))
            before = list(results_before(events, self.state.events))
            try:
                self.strategy.load_state_dict(data["strategy"], log=strategy_log(self.strategy, before,
                                                                                 self._journaled_descriptors))
            except (KeyError, ValueError) as exc:
                raise CampaignError(f"{self.paths.state}: {exc}; the campaign file or the journal changed since "
                                    "this snapshot") from None
            self._records = [r.slim() for r in before]
            self.progress.elapsed_before = self.state.elapsed_s
        for event in events[self.state.events:]:
            self._apply(event, replay=True)
        self._snapshot_done = len(self._records)
        self.progress.done = len(self._records)
        self.progress.failures = sum(not r.result.ok for r in self._records)
        self.progress.metrics = self.strategy.metrics()

    def _apply(self, event: dict[str, Any], *, replay: bool) -> None:
        if event["event"] == "ask":
            self._apply_ask(event["births"], [Proposal.from_dict(p) for p in event["proposals"]], replay=replay)
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
        self.state.births = max(self.state.births, max(births) + 1)
        self.state.events += 1

    def _apply_result(self, record: EvaluationRecord) -> None:
        self.state.pending.pop(record.result.genome_hash, None)
        self.strategy.tell(record.result, descriptors=self._journaled_descriptors(record))
        self._records.append(record.slim())
        self.state.events += 1

    def _journaled_descriptors(self, record: EvaluationRecord) -> list[float] | None:
        """The descriptor values a result event holds (all of them, in the campaign's order), else None."""
        values = record.extra.get("descriptors")
        if not isinstance(values, dict) or any(d.name not in values for d in self.descriptors):
            return None
        return [float(values[d.name]) for d in self.descriptors]

    def snapshot(self) -> None:
        """Write ``state.json`` (small; see :mod:`.state`)."""
        self.state.elapsed_s = self.progress.elapsed_s
        self._write(self.paths.state, lambda: write_atomic(self.paths.state, self.state.to_dict(self.strategy)))
        self._snapshot_done = len(self._records)

    # -- views ---------------------------------------------------------------------------------------------
    @property
    def records(self) -> list[EvaluationRecord]:
        """Every result so far, in journal order (without loss curves and per-tick arrays: see the journal)."""
        return list(self._records)

    @property
    def pending(self) -> int:
        """Proposals asked but without a result: in flight now, or re-submitted on resume."""
        return len(self.state.pending)

    def _budget_left(self) -> int | None:
        if self.config.budget.evaluations is None:
            return None
        return self.config.budget.evaluations - len(self._records) - len(self.state.pending)

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

    # -- the loop ----------------------------------------------------------------------------------------
    def run(self, *, on_progress: Callable[[Progress], None] | None = None, pool: Pool | None = None,
            reporter: Reporter | None = None, offline_ok: bool = False) -> Progress:
        """Run until the budget is spent (or forever); KeyboardInterrupt stops gracefully and re-raises.

        ``reporter`` receives every batch of records (default: :class:`CampaignReporter`: MLflow, pictures and
        the live view beside the loop). ``offline_ok``: start even if the tracking server cannot be reached
        (the records wait in the journal for ``ctmevo sync``); otherwise that is an error before any evaluation.
        """
        with self._locked():
            reporter = reporter or CampaignReporter(self, offline_ok=offline_ok)
            reporter.start()
            own_pool = pool is None
            try:
                pool = pool or make_pool(self.workers_config)
            except BaseException:
                reporter.finish("FAILED")
                reporter.close()
                raise
            return self._loop(pool, own_pool, reporter, on_progress)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One process per campaign directory: a second ``run``/``resume`` is refused, not interleaved."""
        if self._held is not None:  # taken by start(fresh=True) before it cleared the directory
            try:
                yield
            finally:
                self._held.close()
                self._held, self._lock = None, None
            return
        with lock_campaign(self.paths.root) as lock:
            self._lock = lock
            try:
                yield
            finally:
                self._lock = None

    def _loop(self, pool: Pool, own_pool: bool, reporter: Reporter,
              on_progress: Callable[[Progress], None] | None) -> Progress:
        status = "FAILED"
        try:
            for proposal in [p for _, p in sorted(self.state.pending.values(), key=lambda bp: bp[0])]:
                pool.submit(self._job(proposal))  # in flight at the last stop: evaluate again
            for proposal in self._missing_weights():
                pool.submit(replace(self._job(proposal), job_id=proposal.genome_hash + REPAIR, want_checkpoint=True))
                self._repairs.add(proposal.genome_hash + REPAIR)
            while not self.finished() or self._repairs:
                self._fill(pool)
                if not pool.in_flight and self.strategy.exhausted:
                    break
                results = pool.poll(timeout=0.5)
                if results:
                    self._record(results, reporter)
                self.progress.in_flight = len(pool.in_flight)
                if on_progress:
                    on_progress(self.progress)
                reporter.tick()
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            if own_pool:
                with contextlib.suppress(Exception):
                    pool.shutdown()  # in flight: re-submitted on resume
            with contextlib.suppress(CampaignStorageError):
                self.snapshot()
            try:
                reporter.finish(status)
            finally:
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
        births = list(range(self.state.births, self.state.births + len(proposals)))
        event = {"event": "ask", "births": births, "proposals": [p.to_dict() for p in proposals]}
        self._write(self.paths.journal, lambda: self.journal.append(event))
        self._apply_ask(births, proposals, replay=False)
        for proposal in proposals:
            pool.submit(self._job(proposal))

    def _record(self, results: Sequence[EvalResult], reporter: Reporter) -> None:
        """One batch: weights first, then the journal (one fsync), then the strategy, then the reporter."""
        events, records, seen = [], [], set()
        for result in results:
            if result.genome_hash in self._repairs:
                self._repaired(result)
                continue
            if result.genome_hash not in self.state.pending or result.genome_hash in seen:
                continue  # a duplicate delivery (e.g. a retried job that also finished): already recorded
            seen.add(result.genome_hash)
            birth, proposal = self.state.pending[result.genome_hash]
            checkpoint, result.checkpoint = result.checkpoint, None
            if checkpoint is not None:
                path = self.paths.checkpoint(proposal.genome_hash)
                self._write(path, lambda p=path, c=checkpoint: write_bytes_atomic(p, c))
            record = EvaluationRecord(campaign=self.campaign_id, birth=birth, proposal=proposal, result=result,
                                      finished_at=time.time(), extra=self._extra(proposal, result))
            records.append(record)
            events.append({"event": "result", "record": record.to_dict()})
        if not events:
            return
        self._write(self.paths.journal, lambda: self.journal.extend(events))  # on disk before anything uses it
        for record in records:
            self._apply_result(record)
        self.progress.done = len(self._records)
        self.progress.in_flight = len(self.state.pending)
        self.progress.failures += sum(not r.result.ok for r in records)
        self.progress.metrics = self.strategy.metrics()
        if len(self._records) - self._snapshot_done >= self.config.snapshot_every:
            self.snapshot()
        reporter.recorded(records)

    def _missing_weights(self) -> list[Proposal]:
        """Elites and the best genome whose weights should be on disk and are not (an older ctmevo's crash, a
        deleted file), to evaluate again: a pure function of genome, task, budget and seed (bit for bit on CPU)."""
        if self.config.tracking.checkpoints == "none":
            return []
        best = max((r for r in self._records if r.result.ok and r.result.fitness is not None),
                   key=lambda r: (r.result.fitness, -r.birth), default=None)
        wanted = dict.fromkeys([*self.strategy.elite_hashes(), *([best.genome.hash] if best else [])])
        by_hash = {r.genome.hash: r for r in self._records}
        return [by_hash[h].proposal for h in wanted if h in by_hash and not self.paths.checkpoint(h).exists()]

    def _repaired(self, result: EvalResult) -> None:
        self._repairs.discard(result.genome_hash)
        genome_hash = result.genome_hash.removesuffix(REPAIR)
        if result.ok and result.checkpoint is not None:
            path = self.paths.checkpoint(genome_hash)
            self._write(path, lambda: write_bytes_atomic(path, result.checkpoint))
            log.warning("weights of %s were missing; evaluated again and written to %s", genome_hash, path)
        else:
            log.warning("weights of %s are missing and evaluating it again failed (%s)", genome_hash, result.status)

    def _extra(self, proposal: Proposal, result: EvalResult) -> dict[str, Any]:
        """The descriptor values (or why there are none) and the archive cell they fall in."""
        values, problem = describe_result(self.descriptors, proposal.genome, result)
        extra: dict[str, Any] = {}
        if values is not None:
            extra["descriptors"] = {d.name: v for d, v in zip(self.descriptors, values, strict=True)}
            cell = self.strategy.cell_for(values)
            if cell is not None:
                extra["cell"] = cell
        elif problem is not None:
            extra["descriptor_error"] = problem
        return extra

    def _write(self, path: Path, write: Callable[[], object]) -> None:
        try:
            write()
        except OSError as exc:
            raise CampaignStorageError(Path(exc.filename) if exc.filename else path, exc) from None


def start(config_path: Path, *, directory: Path | None = None, fresh: bool = False) -> Campaign:
    """A new campaign from a file. ``fresh`` deletes an earlier campaign in the same directory first, holding
    its lock (refused while another process runs it); the new campaign keeps that lock until it has run."""
    config = load_campaign_config(config_path)
    root = Path(directory) if directory else config.directory()
    if not fresh:
        return Campaign.create(config, root)
    stack = contextlib.ExitStack()
    lock = stack.enter_context(lock_campaign(root))
    try:
        for entry in root.iterdir():
            if entry.name == CampaignPaths(root).lock.name:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        campaign = Campaign.create(config, root, lock=lock)
    except OSError as exc:
        stack.close()
        raise CampaignStorageError(Path(exc.filename or root), exc) from None
    except BaseException:
        stack.close()
        raise
    campaign._held = stack  # released when the campaign has run
    return campaign

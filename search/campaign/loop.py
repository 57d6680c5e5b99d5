"""A campaign: the asynchronous ask → evaluate → tell loop, durable against any stop, cheap per evaluation.

The hot loop does only what dispatch needs::

    jobs      = promotions and repeats (rungs.next_job), else strategy.ask(free slots)
                                           → journal "job" / "ask" event (written)  → pool.submit
    results   = pool.poll()                → checkpoints (fsync) → journal "result" events (ONE fsync for the
                                             batch and every ask before it: group commit) → strategy.tell /
                                             revise → reporter.recorded

An ask is written to the journal before its evaluation is submitted but not fsynced on its own: a killed
process loses nothing (the OS has the line), and the fsync of the next results (or of a snapshot) makes it
durable before anything depends on it. A power cut can lose only asks whose evaluations had not finished;
resume then asks again and, the strategy being a pure function of the journal, gets the same genomes.

With fidelity rungs (:mod:`.rungs`) a genome is first trained to the lowest rung; the best of each rung are
promoted and continue training from their own checkpoint; the best genomes are evaluated again with fresh
seeds; the strategy learns each new measurement (``Strategy.revise``).

Everything a person looks at (MLflow runs, pictures, tables) is derived from the journal beside the loop by
consumers (:mod:`search.views`), never on the loop's thread. The journal is the source of
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
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import IO

from ctm.result import EvalResult
from genome.genome import Genome
from genome.io import write_bytes_atomic
from search.campaign import sidecar
from search.campaign.config import CampaignConfig, load_campaign_config
from search.campaign.jobs import Adoption, JobMaker, evaluation_seed, result_extra
from search.campaign.ledger import Ledger
from search.campaign.repair import WeightRepair, kept_weights
from search.campaign.rungs import JobKey, RungScheduler
from search.campaign.signals import Interrupts, deferred_interrupts
from search.campaign.state import STATE_VERSION, ResumePoint
from search.errors import CampaignError, CampaignStorageError
from search.journal import Journal, read_json, write_atomic
from search.paths import CampaignPaths, default_tracking_uri, lock_campaign
from search.records import EvaluationRecord
from search.views.lookups import indexed_genome
from search.views.progress import Progress, spent_text
from search.views.reporter import CampaignReporter, Reporter
from workers import Pool, WorkersConfig, make_pool

__all__ = ["Campaign", "evaluation_seed"]  # evaluation_seed: see search.campaign.jobs


class Campaign:
    """One campaign directory: its config, journal, snapshot, and the loop that runs it.

    Its collaborators: the ``strategy`` (ask/tell), the ``rungs`` scheduler (promotions and repeats), the
    ``ledger`` (pending jobs, births, records: what the journal's events build, live and on resume), ``jobs``
    (the evaluation job of a genome at a rung and seed) and ``repair`` (lost weights evaluated again).
    """

    def __init__(self, *, config: CampaignConfig, directory: Path, campaign_id: str):
        self.config = config
        self.paths = CampaignPaths(Path(directory))
        self.campaign_id = campaign_id
        self.space, self.descriptors, self.strategy = config.searcher()
        self.workers_config = WorkersConfig.from_dict(config.workers)
        self.journal = Journal(self.paths.journal)
        self.progress = Progress(budget=config.budget.evaluations)
        self.jobs = JobMaker(config, self.paths, genome_of=self._genome_of)
        repeats = config.evaluation.repeats
        fidelity = config.evaluation.fidelity
        self.rungs = RungScheduler(rungs=self.jobs.rungs, eta=fidelity.eta if fidelity else 3.0,
                                   seeds=repeats.seeds if repeats else 1, share=repeats.share if repeats else 0.0,
                                   fresh=self.jobs.fresh, cell_share=fidelity.cell_share if fidelity else 0.0)
        self.strategy.configure_rungs(len(self.jobs.rungs) - 1)
        if self.rungs.flat:  # no promotion or repeat ever needs an old genome's record
            self.strategy.compact_history()
        self.ledger = Ledger(strategy=self.strategy, rungs=self.rungs, descriptors=self.descriptors,
                             journal=self.paths.journal)
        self.repair = WeightRepair(jobs=self.jobs, write=self._write)
        self._interrupts = Interrupts()
        self._lock: IO[str] | None = None
        self._held: contextlib.ExitStack | None = None  # a lock taken by start(fresh=True)
        self._snapshot_done = 0
        self._extra: dict[str, dict] = {}  # what adopted results' records carry beside their result (see _adopt)
        self._point = ResumePoint(self.paths.point, campaign_id)

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
    def open(cls, directory: Path, *, config: CampaignConfig | None = None) -> Campaign:
        """The campaign in ``directory``, restored; ``config`` replaces its file's (an open-ended campaign moves
        its tasks' budgets this way; the rest must be the file's, or the journal will not replay)."""
        paths = CampaignPaths(Path(directory))
        if not paths.meta.exists() or not paths.config.exists():
            raise CampaignError(f"{directory} is not a campaign directory (no campaign.json / campaign.yaml): "
                                "start one with 'ctmevo run FILE'")
        meta = read_json(paths.meta)
        campaign = cls(config=config or load_campaign_config(paths.config), directory=paths.root,
                       campaign_id=meta["campaign_id"])
        campaign._restore()
        return campaign

    def _restore(self) -> None:
        """The snapshot and the journal's events after it (:class:`~search.campaign.ledger.Ledger`), from the
        resume point (:class:`~search.campaign.state.ResumePoint`) where there is one."""
        snapshot = read_json(self.paths.state) if self.paths.state.exists() else None
        point, told = self._point.read(snapshot, self.paths.journal) if self.rungs.flat else (None, [])
        events = self.journal.stream(point["offset"], point["events"]) if point else self.journal.stream()
        self.ledger.restore(events, snapshot, where=str(self.paths.state), point=point, told=told)
        if snapshot is not None:
            self.progress.elapsed_before = self.ledger.state.elapsed_s
        self._snapshot_done = self.progress.done = self.ledger.results
        self.progress.failures = self.ledger.failures
        self.progress.metrics = self.strategy.metrics()

    @property
    def tracking_uri(self) -> str:
        """The MLflow store of this campaign: ``tracking.uri``, or the sqlite store inside its directory."""
        return self.config.tracking.uri or default_tracking_uri(self.paths)

    def snapshot(self, *, final: bool = False) -> None:
        """Write ``state.json`` (small; see :mod:`.state`), and a resume point when one is due."""
        state = self.ledger.state
        state.elapsed_s = self.progress.elapsed_s
        self._write(self.paths.journal, self.journal.sync)  # the snapshot never runs ahead of the journal on disk
        self._write(self.paths.state, lambda: write_atomic(self.paths.state, state.to_dict(self.strategy)))
        self._snapshot_done = self.ledger.results
        if self._point.due(self.ledger.results, final=final) and (
                point := self.ledger.point(offset=self.paths.journal.stat().st_size)) is not None:
            self._write(self._point.path, lambda: self._point.write(**point))

    # -- views ---------------------------------------------------------------------------------------------
    @property
    def records(self) -> list[EvaluationRecord]:
        """Every result so far, in journal order (without loss curves and per-tick arrays), read from the journal:
        a campaign keeps counts in memory, not its history."""
        return [record.slim() for record in self.journal.records()]

    @property
    def pending(self) -> int:
        """Proposals asked but without a result: in flight now, or re-submitted on resume."""
        return len(self.ledger.state.pending)

    def _budget_left(self) -> int | None:
        """How many more jobs may start now (``None``: no limit; :meth:`Ledger.jobs_left`)."""
        return self.ledger.jobs_left(self.config.budget)

    def _finishing(self, pool: Pool) -> bool:
        """Steps spent, but jobs started within them still run: wait for them (a wall-time limit does not)."""
        return self.config.budget.steps is not None and bool(pool.in_flight) and not self._out_of_time()

    def spent(self) -> str:
        """What the campaign has spent, against each limit of its budget (for messages)."""
        b = self.config.budget
        return spent_text(done=self.ledger.results, evaluations=b.evaluations, steps_spent=self.ledger.spent,
                          steps=b.steps, elapsed_s=self.progress.elapsed_s, wall_time_s=b.wall_time_s)

    def _out_of_time(self) -> bool:
        limit = self.config.budget.wall_time_s
        return limit is not None and self.progress.elapsed_s >= limit

    def finished(self) -> bool:
        """The budget is spent: evaluations, training steps (compute) or wall time."""
        return self.ledger.spent_all(self.config.budget) or self._out_of_time()

    # -- the loop ----------------------------------------------------------------------------------------
    def run(self, *, on_progress: Callable[[Progress], None] | None = None, pool: Pool | None = None,
            reporter: Reporter | None = None, offline_ok: bool = False, adopt: Sequence[Adoption] = ()) -> Progress:
        """Run until the budget is spent (or forever); Ctrl-C stops at the next safe point and re-raises
        KeyboardInterrupt.

        ``reporter`` receives every batch of records (default: :class:`CampaignReporter`: MLflow, pictures and
        the live view beside the loop). ``offline_ok``: start even if the tracking server cannot be reached
        (the records wait in the journal for ``ctmevo sync``); otherwise that is an error before any evaluation.
        ``adopt``: evaluations made outside the loop, taken in first (:class:`~search.campaign.jobs.Adoption`).
        """
        with self._locked(), deferred_interrupts() as interrupts:
            self._interrupts = interrupts
            self.progress.budget = self.config.budget.evaluations  # an open-ended slice extends it between runs
            reporter = reporter or CampaignReporter(self, offline_ok=offline_ok, sidecar=sidecar.command(
                self.config, self.paths.root))
            own_pool = pool is None
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ctmevo-start") as starting:
                started = starting.submit(reporter.start)  # MLflow's store opens while the pool (Ray) starts
                try:
                    pool = pool or make_pool(self.workers_config)
                except BaseException:
                    if started.exception() is None:
                        reporter.finish("FAILED")
                        reporter.close()
                    raise
                try:
                    started.result()
                except BaseException:
                    if own_pool:
                        with contextlib.suppress(Exception):
                            pool.shutdown()
                    raise
            return self._loop(pool, own_pool, reporter, on_progress, adopt)

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
              on_progress: Callable[[Progress], None] | None, adopt: Sequence[Adoption]) -> Progress:
        status, consistent = "FAILED", True
        try:
            self._adopt(adopt, reporter)
            for key, proposal in self.ledger.in_flight():
                pool.submit(self.jobs.job(proposal, key))  # in flight at the last stop: again
            if self.config.tracking.checkpoints != "none":
                self.repair.submit(pool, kept_weights(self.strategy, self.rungs))  # lost weights: evaluated again
            while not self.finished() or self.repair.pending or self._finishing(pool):
                self._interrupts.check()  # a safe point: journal, loop state and strategy agree
                consistent = False
                self._fill(pool)
                if not pool.in_flight and self.strategy.exhausted and self.rungs.next_job() is None:
                    consistent = True
                    break
                results = pool.poll(timeout=0.5)
                if results:
                    self._record(results, reporter)
                consistent = True
                self.progress.in_flight = len(pool.in_flight)
                if on_progress:
                    on_progress(self.progress)
                reporter.tick()
            status = "FINISHED"
            self.progress.metrics = {**self.progress.metrics, **self.rungs.best_metrics(self.ledger.spent, exact=True)}
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            if own_pool:
                with contextlib.suppress(Exception):
                    pool.shutdown()  # in flight: re-submitted on resume
            if consistent:  # else the journal is the truth and resume replays it
                with contextlib.suppress(CampaignStorageError):
                    self.snapshot(final=True)
            try:
                reporter.finish(status)
            finally:
                reporter.close()
        return self.progress

    def _fill(self, pool: Pool) -> None:
        """Promotions and repeats first (:meth:`RungScheduler.next_job`), then new genomes from the strategy."""
        free = pool.free_slots
        left = self._budget_left()
        if left is not None:
            free = min(free, left)
        if free <= 0 or self._out_of_time() or self.finished():
            return
        while free > 0 and (job := self._next_job()) is not None:
            key, cell = job
            record = self.strategy.record(key.genome_hash)
            assert record is not None
            event = {"event": "job", "job": key.id} | ({"cell": True} if cell else {})
            self._write(self.paths.journal, lambda e=event: self.journal.append(e, sync=False))
            self.ledger.job(key, cell=cell)
            pool.submit(self.jobs.job(record.proposal, key))
            free -= 1
        proposals = self.strategy.ask(free) if free > 0 else []
        if not proposals:
            return
        births = list(range(self.ledger.state.births, self.ledger.state.births + len(proposals)))
        event = {"event": "ask", "births": births, "proposals": [p.to_dict() for p in proposals]}
        self._write(self.paths.journal, lambda: self.journal.append(event, sync=False))  # see the module doc
        self.ledger.ask(births, proposals, replay=False)
        for proposal in proposals:
            pool.submit(self.jobs.job(proposal, JobKey(proposal.genome_hash)))

    def _adopt(self, adoptions: Sequence[Adoption], reporter: Reporter) -> None:
        """Journal the genomes (an ``adopt`` event), then record their results as this campaign's own; a genome
        evaluated or pending here already is left out (adopting again after a stop changes nothing)."""
        new: dict[str, Adoption] = {}  # the first of each genome
        for a in adoptions:
            h = a.proposal.genome_hash
            if not self.strategy.told(h) and JobKey(h).id not in self.ledger.state.pending:
                new.setdefault(h, a)
        if not new:
            return
        births = list(range(self.ledger.state.births, self.ledger.state.births + len(new)))
        event = {"event": "adopt", "births": births, "proposals": [a.proposal.to_dict() for a in new.values()]}
        self._write(self.paths.journal, lambda: self.journal.append(event, sync=False))
        self.ledger.adopt(births, [a.proposal for a in new.values()])
        self._extra = {JobKey(h).id: dict(a.extra) for h, a in new.items()}
        self._record([replace(a.result, job_id=JobKey(h).id) for h, a in new.items()], reporter)
        self._extra = {}

    def _next_job(self) -> tuple[JobKey, bool] | None:
        """The scheduler's next promotion or repeat that the strategy allows, else a cell promotion; with
        whether it is a cell promotion."""
        while (key := self.rungs.next_job(quota=not self.strategy.decides_promotions)) is not None:
            if key.repeat or self.strategy.may_promote(key.genome_hash):
                return key, False
            self.rungs.veto(key)  # never promoted (not journaled: the strategy vetoes it again on resume)
        if (key := self.rungs.cell_promotion(self.strategy.cell_elites)) is not None:
            return key, True
        return None

    def _record(self, results: Sequence[EvalResult], reporter: Reporter) -> None:
        """One batch: weights first, then the journal (one fsync), then the strategy, then the reporter."""
        events, records, seen = [], [], set()
        for result in results:
            if self.repair.owns(result):
                self.repair.done(result)
                continue
            job_id = result.job_id
            if job_id not in self.ledger.state.pending or job_id in seen:
                continue  # a duplicate delivery (e.g. a retried job that also finished): already recorded
            seen.add(job_id)
            birth, proposal = self.ledger.state.pending[job_id]
            key = JobKey.parse(job_id)  # the ids are ours (JobKey.id): rung and repeat
            checkpoint, result.checkpoint = result.checkpoint, None
            if checkpoint is not None:
                path = self.jobs.checkpoint(key)
                self._write(path, lambda p=path, c=checkpoint: write_bytes_atomic(p, c))
            extra = result_extra(proposal, result, descriptors=self.descriptors, cell_for=self.strategy.cell_for,
                                 genome_of=self._genome_of) | self._extra.get(job_id, {})
            if key != JobKey(key.genome_hash) or len(self.jobs.rungs) > 1:  # the genome's standing after it
                agg = self.rungs.preview(key, result.fitness if result.ok else None)
                extra.update(fitness_mean=agg.mean, seeds=agg.seeds, top_rung=agg.rung)
            record = EvaluationRecord(campaign=self.campaign_id, birth=birth, proposal=proposal, result=result,
                                      finished_at=time.time(), extra=extra, rung=key.rung, repeat=key.repeat)
            records.append(record)
            events.append({"event": "result", "record": record.to_dict()})
        if not events:
            return
        self._write(self.paths.journal, lambda: self.journal.extend(events))  # on disk before anything uses it
        for record in records:
            self.ledger.result(record)
        self.progress.done = self.ledger.results
        self.progress.in_flight = len(self.ledger.state.pending)
        self.progress.failures = self.ledger.failures
        self.progress.metrics = {**self.strategy.metrics(), **self.rungs.best_metrics(self.ledger.spent)}
        if self.ledger.results - self._snapshot_done >= self.config.snapshot_every:
            self.snapshot()
        reporter.recorded(records)

    def _genome_of(self, genome_hash: str) -> Genome | None:
        """An evaluated genome (a parent's, for inheritance): from the strategy, else (a compact history let its
        record go) from the campaign index."""
        record = self.strategy.record(genome_hash)
        if record is None and self.strategy.told(genome_hash):
            return indexed_genome(self.paths.root, self.campaign_id, genome_hash)
        return record.proposal.genome if record is not None else None

    def _write(self, path: Path, write: Callable[[], object]) -> None:
        try:
            write()
        except OSError as exc:
            raise CampaignStorageError(Path(exc.filename) if exc.filename else path, exc) from None

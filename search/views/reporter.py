"""What a running campaign reports to: the metric history, the live view, and the consumers of its journal.

The loop calls a :class:`Reporter`: ``start`` (before the first evaluation), ``recorded(records)`` after every
batch of journaled results, ``tick`` after every poll, ``finish(status)`` when the loop ends (``FINISHED``,
``KILLED`` after Ctrl-C, ``FAILED`` after a crash), ``close`` always. :class:`CampaignReporter` does only cheap
things on the loop's thread (one line appended to ``metrics.jsonl`` per batch, a wake-up call, a view
refresh at most four times a second); MLflow and pictures run beside it as consumers of the journal
(:mod:`.consumers`, :mod:`.observers`) and may lag in a burst, then catch up. At the end it waits for them,
boundedly, with a progress line; what is left is said, and ``ctmevo sync`` sends it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any, Protocol

from rich.console import Console

from search.descriptors import Descriptor
from search.journal import write_atomic
from search.paths import CampaignPaths
from search.records import EvaluationRecord
from search.strategies import Strategy
from search.views.consumers import ConsumerRunner
from search.views.index import IndexKeeper
from search.views.live import LiveView
from search.views.lookups import IndexLookup
from search.views.progress import Progress

__all__ = ["CampaignReporter", "CampaignView", "KeptReporter", "QuietReporter", "Reporter", "consumer_runners",
           "mlflow_archiver", "mlflow_runner", "sync"]

log = logging.getLogger(__name__)
DRAIN_MIN_S = 60.0  # the end of a run waits at least this long for MLflow to catch up (and at most 10x)
STOP_WAIT_S = 30.0  # then, at most this long for each consumer to put down what it has in hand
DRAIN_KILLED_S = 10.0  # after Ctrl-C: a short wait; what is left goes out on resume or with `ctmevo sync`
VIEW_EVERY_S = 0.25


class CampaignView(Protocol):
    """What a reporter reads of a campaign (:class:`search.campaign.Campaign` provides it). ``config`` is its
    :class:`search.campaign.CampaignConfig` (typed loosely: views sit below the campaign room and read only
    ``name``, ``seed``, ``plot_every_s``, ``tracking.*`` and ``model_dump``)."""

    config: Any
    paths: CampaignPaths
    campaign_id: str
    progress: Progress
    strategy: Strategy
    descriptors: list[Descriptor]

    @property
    def tracking_uri(self) -> str: ...


class Reporter(Protocol):
    """The hooks the loop calls (see the module docstring)."""

    def start(self) -> None: ...

    def recorded(self, records: Sequence[EvaluationRecord]) -> None: ...

    def tick(self) -> None: ...

    def finish(self, status: str) -> None: ...

    def close(self) -> None: ...


class QuietReporter:
    """A reporter that shows and sends nothing: for simulated campaigns (CTM-Bench), where thousands of
    evaluations a second need no live view, MLflow or pictures (the journal still holds every result)."""

    def start(self) -> None:
        pass

    def recorded(self, records: Sequence[EvaluationRecord]) -> None:
        pass

    def tick(self) -> None:
        pass

    def finish(self, status: str) -> None:
        pass

    def close(self) -> None:
        pass


def mlflow_archiver(campaign: CampaignView) -> Any:
    """The campaign's :class:`~search.tracking.archiver.MlflowArchiver` (not yet connected)."""
    from search.tracking.archiver import MlflowArchiver

    c = campaign
    return MlflowArchiver(tracking_uri=c.tracking_uri, experiment_name=c.config.tracking.experiment or c.config.name,
                          campaign_id=c.campaign_id, config=json.loads(json.dumps(c.config.model_dump(mode="json"))),
                          checkpoints=c.config.tracking.checkpoints, checkpoint_of=c.paths.checkpoint,
                          flat=c.config.evaluation.flat, lookup=IndexLookup(c.paths.root, c.campaign_id))


def mlflow_runner(campaign: CampaignView, archiver: Any, *, first_wait_s: float | None = None,
                  poll_s: float | None = None) -> ConsumerRunner:
    """A runner of the MLflow consumer with its durable cursor (``consumers/mlflow.json``)."""
    from search.views.observers import MlflowConsumer

    rejected = campaign.paths.consumer_cursor("mlflow-rejected").with_suffix(".jsonl")
    consumer = MlflowConsumer(archiver, log_every=campaign.config.tracking.log_every, rejected=rejected,
                              index=campaign.paths.root)
    made = [False]

    def make() -> MlflowConsumer:
        if made[0]:  # a restart after a crash: a fresh archiver, connected again
            return MlflowConsumer(mlflow_archiver(campaign), log_every=campaign.config.tracking.log_every,
                                  rejected=rejected, index=campaign.paths.root)
        made[0] = True
        return consumer

    wait = campaign.config.tracking.retry_after_s if first_wait_s is None else first_wait_s
    runner = ConsumerRunner("mlflow", make, journal=campaign.paths.journal, metrics=campaign.paths.metrics,
                            cursor=campaign.paths.consumer_cursor("mlflow"), first_wait_s=wait, poll_s=poll_s)
    runner.consumer = consumer  # type: ignore[attr-defined]
    return runner


def consumer_runners(campaign: CampaignView, *, offline_ok: bool, poll_s: float | None = None) -> list[ConsumerRunner]:
    """The picture and MLflow consumers of ``campaign`` (not started; pictures first: their last refresh is
    uploaded by MLflow's). MLflow is connected first: an unreachable server raises
    :class:`~search.tracking.errors.TrackingURIError` unless ``offline_ok`` (then the consumer retries).
    ``poll_s``: how often MLflow's runner looks at the journal when nothing wakes it (the consumers' process)."""
    from search.tracking.errors import TrackingUnavailable, TrackingURIError
    from search.views.observers import PictureConsumer

    c = campaign
    archiver = mlflow_archiver(c)
    try:
        archiver.connect()
    except TrackingUnavailable as exc:
        if not offline_ok:
            raise TrackingURIError(c.tracking_uri, str(exc)) from None
        log.warning("%s; the campaign runs and the records wait in its journal (ctmevo sync sends them)", exc)
    mlflow = mlflow_runner(c, archiver, poll_s=poll_s)
    qd = getattr(c.strategy, "qd", None)
    mlflow_consumer = mlflow.consumer  # type: ignore[attr-defined]
    pictures = ConsumerRunner("pictures", lambda: PictureConsumer(
        paths=c.paths, campaign_id=c.campaign_id, descriptors=c.descriptors,
        archive_config=qd.config() if qd is not None else None,
        codec=c.strategy.codec, every_s=c.config.plot_every_s, upload=mlflow_consumer.add_artifacts,
        seed=c.config.seed, tracking_uri=c.tracking_uri, run_ids=mlflow_consumer.archiver.run_ids,
        experiment_id=lambda: mlflow_consumer.archiver.experiment_id,
        asset_run=lambda: mlflow_consumer.archiver.asset_run_id, flat=c.config.evaluation.flat),
        journal=c.paths.journal, metrics=c.paths.metrics, cursor=None, tick_every_s=1.0)
    return [pictures, mlflow]


def sync(campaign: CampaignView, *, finished: bool, timeout_s: float | None = None) -> tuple[int, str | None]:
    """Send what MLflow lacks of ``campaign`` (from the MLflow consumer's cursor to the end of the journal) now.

    Returns (results still not in MLflow, the last error); raises
    :class:`~search.tracking.archiver.TrackingUnavailable` when the server does not answer at all."""
    archiver = mlflow_archiver(campaign)
    archiver.connect()
    runner = mlflow_runner(campaign, archiver, first_wait_s=5.0)
    runner.start()
    runner.stop(status="FINISHED" if finished else "KILLED", final=True, timeout=timeout_s,
                give_up_after=DRAIN_MIN_S if timeout_s is None else timeout_s)
    return runner.behind(campaign.progress.done), runner.error


class KeptReporter:
    """A reporter kept across several ``Campaign.run`` calls (the slices of an open-ended campaign's task):
    started at the first, ended by :meth:`end` (MLflow drained, pictures drawn, the campaign run closed)."""

    def __init__(self, inner: Reporter) -> None:
        self.inner, self.started = inner, False

    def start(self) -> None:
        if not self.started:
            self.inner.start()
            self.started = True

    def recorded(self, records: Sequence[EvaluationRecord]) -> None:
        self.inner.recorded(records)

    def tick(self) -> None:
        self.inner.tick()

    def finish(self, status: str) -> None:
        pass  # a slice ended, not the task's campaign

    def close(self) -> None:
        pass

    def end(self, status: str) -> None:
        if self.started:
            try:
                self.inner.finish(status)
            finally:
                self.inner.close()
            self.started = False


class CampaignReporter:
    """Metric history + live view + the MLflow and picture consumers (see the module docstring)."""

    def __init__(self, campaign: CampaignView, *, console: Console | None = None, offline_ok: bool = False,
                 sidecar: Sequence[str] | None = None):
        self.campaign = campaign
        self.offline_ok = offline_ok
        self.sidecar = sidecar  # the command of a process to run the consumers in (None: threads of this one)
        self._process: Any = None
        self.view = LiveView(name=campaign.config.name, progress=campaign.progress, console=console,
                             status=self.status_lines)
        self.runners: list[Any] = []  # ConsumerRunner, or RemoteRunner with a sidecar
        self.mlflow: Any = None
        self.index: IndexKeeper | None = None
        self._metrics_file: Any = None
        self._last_view = 0.0
        self.drained: dict[str, Any] = {}  # how the end of the run went: MLflow lag then, and the time to drain it

    # -- life cycle ---------------------------------------------------------------------------------------
    def start(self) -> None:
        """Connect to MLflow (an unreachable server is an error unless ``offline_ok``), start the consumers
        (on threads here, or in the ``sidecar`` process: :mod:`.sidecar`)."""
        c = self.campaign
        if self.sidecar:
            from search.views.sidecar import ConsumerProcess

            self._process = ConsumerProcess(self.sidecar, names=("pictures", "mlflow"), uri=c.tracking_uri,
                                            offline_ok=self.offline_ok)
            self.runners = list(self._process.start())
        else:
            self.runners = consumer_runners(c, offline_ok=self.offline_ok)
            for runner in self.runners:
                runner.start()
        self.mlflow = self.runners[-1]
        self.index = IndexKeeper(c.paths.root, c.campaign_id)
        self.index.start()
        self._metrics_file = c.paths.metrics.open("a")
        self.view.start()

    def recorded(self, records: Sequence[EvaluationRecord]) -> None:
        p = self.campaign.progress
        self._write_metrics({**p.metrics, "evaluations": p.done, "failures": p.failures})
        for runner in self.runners:
            runner.wake()

    def _write_metrics(self, point: dict[str, Any]) -> None:
        if self._metrics_file is not None:
            self._metrics_file.write(json.dumps({**point, "time": round(time.time(), 3)}) + "\n")
            self._metrics_file.flush()  # no fsync: the history is derived data

    def tick(self) -> None:
        now = time.monotonic()
        if now - self._last_view >= VIEW_EVERY_S:
            self._last_view = now
            self.view.update()

    def finish(self, status: str) -> None:
        """Final metrics and pictures; wait (boundedly) for MLflow to catch up; end the campaign run."""
        p = self.campaign.progress
        self._write_metrics({**p.metrics, "evaluations": p.done, "failures": p.failures, "final": True})
        if self._metrics_file is not None:
            self._metrics_file.close()
            self._metrics_file = None
        self.view.stop()
        limit = {"FINISHED": min(10 * DRAIN_MIN_S, max(DRAIN_MIN_S, 0.25 * p.elapsed_s)), "KILLED": DRAIN_KILLED_S
                 }.get(status, DRAIN_MIN_S)
        started = time.monotonic()
        deadline = started + limit
        behind = self.mlflow_behind()
        for runner in self.runners:  # in order: the pictures' last refresh is uploaded by the MLflow consumer
            runner.stop(status=status, final=True, timeout=0, give_up_after=max(0.0, deadline - time.monotonic()))
            said = time.monotonic()
            while not runner.finished.wait(min(5.0, max(0.0, deadline - time.monotonic()))):
                if time.monotonic() >= deadline:
                    break
                if runner is self.mlflow and time.monotonic() - said >= 5.0:
                    said = time.monotonic()
                    print(f"[{self.campaign.config.name}] finishing: MLflow {runner.behind(p.done):,} record(s) "
                          f"behind" + (f" ({runner.error})" if runner.error else ""), file=sys.stderr, flush=True)
        for runner in self.runners:  # past the deadline a consumer may still be drawing or writing: an interpreter
            runner.finished.wait(STOP_WAIT_S)  # that exits under a daemon thread inside C++ code can abort (SIGABRT)
        self.drained = {"status": status, "evaluations": p.done, "dispatch_s": p.elapsed_s,
                        "mlflow_behind_at_end": behind, "mlflow_left": self.mlflow_behind(),
                        "drain_s": time.monotonic() - started}
        with contextlib.suppress(OSError):  # for ctmevo's summary and benchmarks; nothing depends on it
            write_atomic(self.campaign.paths.consumer_cursor("finish"), self.drained)
        self._stop_index()

    def _stop_index(self) -> None:
        if self.index is not None:
            self.index.stop()  # its last update: status, lineage and resume read the index, not the journal
            self.index = None

    def close(self) -> None:
        self._stop_index()
        self.view.stop()
        if self._process is not None:
            self._process.close()
            self._process = None
        if self._metrics_file is not None:
            self._metrics_file.close()
            self._metrics_file = None

    # -- what the view shows ---------------------------------------------------------------------------
    def mlflow_behind(self) -> int:
        return self.mlflow.behind(self.campaign.progress.done) if self.mlflow else 0

    def status_lines(self) -> list[tuple[str, str]]:
        lines = [("MLflow", f"{self.mlflow_behind():,} record(s) behind" if self.mlflow else "–")]
        for runner in self.runners:
            if runner.error:
                lines.append((runner.name, runner.error[:160]))
        return lines

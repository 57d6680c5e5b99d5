"""What a running campaign shows and archives: the live view, pictures, the archive table and MLflow records.

The loop calls a :class:`Reporter` (``start``, ``recorded`` after every journaled result, ``tick`` after every
poll, ``finish`` at the end of the budget, ``close`` always). :class:`CampaignReporter` is the default one;
it sees the campaign only through :class:`CampaignView` (so this module never imports the loop). Nothing here
can stop a campaign: MLflow failures are spooled by the tracker and replayed later, and a picture that fails
to render is skipped with a warning.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from rich.console import Console

from search.campaign.config import CampaignConfig
from search.campaign.live import LiveView
from search.campaign.paths import CampaignPaths
from search.campaign.progress import Progress
from search.descriptors import Descriptor
from search.records import EvaluationRecord, best_record
from search.strategies import Strategy

if TYPE_CHECKING:  # imported when a campaign starts: MLflow and matplotlib take seconds to import
    from search.tracking.tracker import Tracker

__all__ = ["CampaignReporter", "CampaignView", "Reporter"]

log = logging.getLogger(__name__)
REPLAY_EVERY_S = 30.0


class CampaignView(Protocol):
    """What a reporter reads of a campaign (:class:`search.campaign.Campaign` provides it)."""

    config: CampaignConfig
    paths: CampaignPaths
    campaign_id: str
    progress: Progress
    strategy: Strategy
    descriptors: list[Descriptor]

    @property
    def records(self) -> list[EvaluationRecord]: ...

    @property
    def tracking_uri(self) -> str: ...

    def finished(self) -> bool: ...


class Reporter(Protocol):
    """The hooks the loop calls (see the module docstring)."""

    def start(self) -> None: ...

    def recorded(self, record: EvaluationRecord) -> None: ...

    def tick(self) -> None: ...

    def finish(self) -> None: ...

    def close(self) -> None: ...


class CampaignReporter:
    """Live view + MLflow (one child run per evaluation, campaign metrics and artifacts) + pictures."""

    def __init__(self, campaign: CampaignView, *, console: Console | None = None, offline_ok: bool = False):
        self.campaign = campaign
        self.offline_ok = offline_ok
        self.tracker: Tracker | None = None
        self.history: list[dict[str, float]] = []
        self.view = LiveView(name=campaign.config.name, progress=campaign.progress, console=console,
                             spooled=lambda: self.tracker.pending() if self.tracker else 0)
        self._last_replay = time.monotonic()

    # -- life cycle ---------------------------------------------------------------------------------------
    def start(self) -> None:
        from search.tracking.tracker import Tracker

        c = self.campaign
        self.tracker = Tracker(tracking_uri=c.tracking_uri, experiment_name=c.config.tracking.experiment
                               or c.config.name, campaign_id=c.campaign_id, spool_dir=c.paths.spool,
                               offline_ok=self.offline_ok)
        self.tracker.start_campaign(config=json.loads(json.dumps(c.config.model_dump(mode="json"))))
        self._load_history()
        for record in c.records:  # journaled before a stop but perhaps never logged: idempotent, no duplicates
            self._log(record)
        self.view.start()

    def recorded(self, record: EvaluationRecord) -> None:
        c = self.campaign
        assert self.tracker is not None
        self._log(record)
        metrics = dict(c.progress.metrics)
        metrics["evaluations"] = c.progress.done
        metrics["failures"] = c.progress.failures
        self.history.append(metrics)
        self._append_history(metrics)
        if c.progress.done % c.config.tracking.log_every == 0:
            self.tracker.log_campaign_metrics(step=c.progress.done, metrics=metrics)
        if c.progress.done % c.config.plot_every == 0:
            self.refresh_pictures()
        if not self.view.console.is_terminal:
            self.view.update(final=c.finished())

    def tick(self) -> None:
        assert self.tracker is not None
        if self.view.console.is_terminal:
            self.view.update()
        if self.tracker.pending() and time.monotonic() - self._last_replay > REPLAY_EVERY_S:
            self._last_replay = time.monotonic()
            self.tracker.replay()

    def finish(self) -> None:
        assert self.tracker is not None
        self.refresh_pictures()
        if self.tracker.pending():
            self.tracker.replay()

    def close(self) -> None:
        self.view.stop()

    # -- MLflow ---------------------------------------------------------------------------------------------
    def _log(self, record: EvaluationRecord) -> None:
        c = self.campaign
        assert self.tracker is not None
        h = record.result.genome_hash
        checkpoint = c.paths.checkpoint(h)
        keep = c.config.tracking.checkpoints == "all" or (
            c.config.tracking.checkpoints == "elites" and h in set(c.strategy.elite_hashes()))
        self.tracker.log_evaluation(record, cell=c.strategy.cell_of(h),
                                    checkpoint_path=str(checkpoint) if keep and checkpoint.exists() else None)

    # -- pictures and tables ----------------------------------------------------------------------------
    def refresh_pictures(self) -> list[Path]:
        from search.campaign.pictures import archive_heatmap, metrics_over_evaluations, write_archive_csv

        c = self.campaign
        c.paths.plots.mkdir(parents=True, exist_ok=True)
        made: list[Path] = []
        write_archive_csv(c.strategy.archive_rows(), c.paths.archive_csv)
        made.append(c.paths.archive_csv)
        has_archive = getattr(c.strategy, "qd", None) is not None and len(c.descriptors) >= 1
        for name, draw in (("archive.png", lambda p: has_archive and archive_heatmap(c.strategy, p)),
                           ("metrics.png", lambda p: metrics_over_evaluations(self.history, p)),
                           ("lineage.png", self._lineage_png)):
            path = c.paths.plots / name
            try:
                if draw(path) is not False and path.exists():
                    made.append(path)
            except Exception as exc:  # a picture must never stop a campaign
                log.warning("could not draw %s: %s", path, exc)
        if self.tracker is not None:
            self.tracker.log_campaign_artifacts([str(p) for p in made])
        return made

    def _lineage_png(self, path: Path) -> bool:
        from search.tracking.lineages import lineage

        best = best_record(self.campaign.records)
        if best is None or self.tracker is None or self.tracker.pending():
            return False
        lineage(self.campaign.tracking_uri, best.result.genome_hash,
                campaign=self.campaign.campaign_id).to_png(path)
        return True

    def _append_history(self, metrics: dict[str, float]) -> None:
        with self.campaign.paths.metrics.open("a") as fh:
            fh.write(json.dumps(metrics) + "\n")

    def _load_history(self) -> None:
        path = self.campaign.paths.metrics
        if path.exists():
            self.history = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

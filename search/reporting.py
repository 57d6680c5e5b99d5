"""What a running campaign shows and archives: the live view, pictures, the archive table and MLflow records.

Nothing here can stop a campaign: MLflow failures are spooled by the tracker and replayed later, and a
picture that fails to render is skipped with a warning.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from genome.io import write_bytes_atomic
from search.records import EvaluationRecord

if TYPE_CHECKING:
    from search.campaign import Campaign

log = logging.getLogger(__name__)
REPLAY_EVERY_S = 30.0


def tracking_uri_for(campaign: Campaign) -> str:
    return campaign.config.tracking.uri or f"sqlite:///{campaign.paths.mlflow_db.resolve()}"


class CampaignReporter:
    def __init__(self, campaign: Campaign, *, console: Console | None = None, offline_ok: bool = False):
        self.campaign = campaign
        self.offline_ok = offline_ok
        self.console = console or Console(stderr=True)
        self.tracker: Any = None
        self.history: list[dict[str, float]] = []
        self._live: Live | None = None
        self._bar: Progress | None = None
        self._task_id: Any = None
        self._last_replay = time.monotonic()
        self._last_plain = 0.0

    # -- life cycle ---------------------------------------------------------------------------------------
    def start(self) -> None:
        from search.tracking import Tracker

        c = self.campaign
        self.tracker = Tracker(tracking_uri=tracking_uri_for(c), experiment_name=c.config.tracking.experiment
                               or c.config.name, campaign_id=c.campaign_id, spool_dir=c.paths.spool,
                               offline_ok=self.offline_ok)
        self.tracker.start_campaign(config=json.loads(json.dumps(c.config.model_dump(mode="json"))))
        self._load_history()
        for record in c.records:  # journaled before a stop but perhaps never logged: idempotent, no duplicates
            self._log(record)
        if self.console.is_terminal:
            self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=self.console)
            self._task_id = self._bar.add_task(c.config.name, total=c.config.budget.evaluations,
                                               completed=c.progress.done)
            self._live = Live(self._view(), console=self.console, refresh_per_second=4, transient=False)
            self._live.start()

    def recorded(self, record: EvaluationRecord) -> None:
        c = self.campaign
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
        if self._live is None and (time.monotonic() - self._last_plain > 5 or c.finished()):
            self._last_plain = time.monotonic()
            print(self._plain_line(), file=sys.stderr, flush=True)

    def tick(self) -> None:
        if self._live is not None:
            self._bar.update(self._task_id, completed=self.campaign.progress.done)
            self._live.update(self._view())
        if self.tracker.pending() and time.monotonic() - self._last_replay > REPLAY_EVERY_S:
            self._last_replay = time.monotonic()
            self.tracker.replay()

    def finish(self) -> None:
        self.refresh_pictures()
        if self.tracker.pending():
            self.tracker.replay()

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    # -- MLflow ---------------------------------------------------------------------------------------------
    def _log(self, record: EvaluationRecord) -> None:
        c = self.campaign
        h = record.result.genome_hash
        checkpoint = c.paths.checkpoints / f"{h}.safetensors"
        keep = c.config.tracking.checkpoints == "all" or (
            c.config.tracking.checkpoints == "elites" and h in set(c.strategy.elite_hashes()))
        self.tracker.log_evaluation(record, cell=c.strategy.cell_of(h),
                                    checkpoint_path=str(checkpoint) if keep and checkpoint.exists() else None)

    # -- pictures and tables ----------------------------------------------------------------------------
    def refresh_pictures(self) -> list[Path]:
        from search import plots

        c = self.campaign
        c.paths.plots.mkdir(parents=True, exist_ok=True)
        made: list[Path] = []
        table = c.paths.plots / "archive.csv"
        write_archive_csv(c.strategy.archive_rows(), table)
        made.append(table)
        has_archive = getattr(c.strategy, "qd", None) is not None and len(self.campaign.descriptors) >= 1
        for name, draw in (("archive.png", lambda p: has_archive and plots.archive_heatmap(c.strategy, p)),
                           ("metrics.png", lambda p: plots.metrics_over_evaluations(self.history, p)),
                           ("lineage.png", self._lineage_png)):
            path = c.paths.plots / name
            try:
                if draw(path) is not False and path.exists():
                    made.append(path)
            except Exception as exc:  # a picture must never stop a campaign
                log.warning("could not draw %s: %s", path, exc)
        self.tracker.log_campaign_artifacts([str(p) for p in made])
        return made

    def _lineage_png(self, path: Path) -> bool:
        from search.lineage import lineage

        best = best_record(self.campaign.records)
        if best is None or self.tracker.pending():
            return False
        lineage(tracking_uri_for(self.campaign), best.result.genome_hash,
                campaign=self.campaign.campaign_id).to_png(path)
        return True

    def _append_history(self, metrics: dict[str, float]) -> None:
        with (self.campaign.paths.root / "metrics.jsonl").open("a") as fh:
            fh.write(json.dumps(metrics) + "\n")

    def _load_history(self) -> None:
        path = self.campaign.paths.root / "metrics.jsonl"
        if path.exists():
            self.history = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    # -- the live view ----------------------------------------------------------------------------------
    def _view(self) -> Group:
        p = self.campaign.progress
        m = p.metrics
        table = Table.grid(padding=(0, 2))
        for label, value in (
            ("done / in flight / failed", f"{p.done} / {p.in_flight} / {p.failures}"),
            ("best fitness", _fmt(m.get("best_fitness"))),
            ("coverage", _fmt(m.get("coverage"))),
            ("QD-score", _fmt(m.get("qd_score"))),
            ("archive size", _fmt(m.get("archive_size"))),
            ("evaluations / hour", f"{p.per_hour:,.0f}"),
            ("MLflow records spooled", str(self.tracker.pending() if self.tracker else 0)),
        ):
            table.add_row(f"[dim]{label}", value)
        return Group(self._bar, table)

    def _plain_line(self) -> str:
        p = self.campaign.progress
        m = p.metrics
        total = f"/{p.budget}" if p.budget else ""
        return (f"[{self.campaign.config.name}] {p.done}{total} done, {p.in_flight} in flight, {p.failures} failed,"
                f" best {_fmt(m.get('best_fitness'))}, coverage {_fmt(m.get('coverage'))}, "
                f"QD-score {_fmt(m.get('qd_score'))}, {p.per_hour:,.0f}/h")


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def best_record(records: list[EvaluationRecord]) -> EvaluationRecord | None:
    ok = [r for r in records if r.result.ok and r.result.fitness is not None]
    return max(ok, key=lambda r: (r.result.fitness, -r.birth)) if ok else None


def write_archive_csv(rows: list[dict[str, Any]], path: Path) -> None:
    flat = [_flatten(r) for r in rows]
    columns = sorted({k for r in flat for k in r}, key=lambda k: (k not in ("hash", "cell", "fitness"), k))
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns)
    writer.writeheader()
    writer.writerows(flat)
    write_bytes_atomic(path, text.getvalue().encode())


def _flatten(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out

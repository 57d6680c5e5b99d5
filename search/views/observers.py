"""The two consumers of a campaign's journal: its MLflow archive and its pictures (see :mod:`.consumers`)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from genome import VectorCodec
from search.archive import QDArchive
from search.descriptors import Descriptor
from search.journal import JsonLines
from search.paths import CampaignPaths
from search.records import EvaluationRecord, reported_fitness
from search.tracking.errors import TrackingUnavailable
from search.views.analysis import BestSoFar, genes_sample, write_analysis
from search.views.index import CampaignIndex, record_run_ids

__all__ = ["MlflowConsumer", "PictureConsumer"]

log = logging.getLogger("ctmevo.consumers")
METRICS_EVERY_S = 1.0  # at most one campaign-metrics point per second of the campaign goes to MLflow
HISTORY_POINTS = 4000  # campaign metric points the pictures keep (one a batch: thinned evenly beyond that)
ANALYSIS_EVERY_S = 300.0  # the analysis pages (seconds of drawing at thousands of genomes) at most this often


class MlflowConsumer:
    """Journal results → evaluation runs; metric lines → campaign metrics (every ``log_every`` evaluations);
    refreshed pictures → campaign artifacts."""

    def __init__(self, archiver: Any, *, log_every: int = 1, rejected: Path | None = None,
                 index: Path | None = None) -> None:
        self.archiver, self.log_every, self.rejected, self.index = archiver, log_every, rejected, index
        self._artifacts: list[Path] = []
        self._lock = threading.Lock()
        self._last_step, self._last_time = -1, float("-inf")

    def add_artifacts(self, paths: Sequence[Path]) -> None:
        """Called by the picture consumer (another thread): upload these at the next tick."""
        with self._lock:
            self._artifacts = list(dict.fromkeys([*self._artifacts, *paths]))

    def open(self) -> None:
        if not self.archiver.connected:
            self.archiver.connect()

    def observe(self, index: int, record: EvaluationRecord) -> None:
        self.archiver.observe(index, record)

    def results(self, items: list[tuple[int, EvaluationRecord]]) -> None:
        """One batch; if MLflow refuses it (not a connection problem), record by record, and a record it
        refuses on its own is set aside in ``rejected`` (with the error) so that it blocks nothing after it."""
        try:
            self.archiver.write_results(items)
        except TrackingUnavailable:
            raise
        except Exception as exc:
            if len(items) == 1:
                self._reject(items[0], exc)
                return
            self._write_one_by_one(items)
        self._index_runs(items)

    def _index_runs(self, items: list[tuple[int, EvaluationRecord]]) -> None:
        """The runs just written, in the campaign index (``ctmevo lineage --campaign`` links them from there)."""
        if self.index is not None:
            ids = {r.genome.hash: rid for _, r in items if (rid := self.archiver.run_id_of(r.genome.hash))}
            record_run_ids(self.index, ids, experiment_id=self.archiver.experiment_id)

    def _write_one_by_one(self, items: list[tuple[int, EvaluationRecord]]) -> None:
        for item in items:
            try:
                self.archiver.write_results([item])
            except TrackingUnavailable:
                raise
            except Exception as exc:
                self._reject(item, exc)

    def _reject(self, item: tuple[int, EvaluationRecord], exc: Exception) -> None:
        index, record = item
        from search.tracking.client import first_line

        log.warning("MLflow refused evaluation %s (result %d): %s; set aside in %s", record.genome.hash, index,
                    first_line(exc), self.rejected)
        if self.rejected is not None:
            with JsonLines(self.rejected) as lines:
                lines.append({"index": index, "genome_hash": record.genome.hash, "error": first_line(exc)})

    def metrics(self, points: list[dict[str, Any]]) -> None:
        """Campaign metrics: a point every ``log_every`` evaluations and at most one per
        :data:`METRICS_EVERY_S` seconds of the campaign (at thousands of evaluations a second, a point per
        batch would cost MLflow more than the evaluation runs), and the final one."""
        due = []
        for point in points:
            step = int(point.get("evaluations", 0))
            at = float(point.get("time", 0.0))
            crossed = step // self.log_every > self._last_step // self.log_every
            if (crossed and at - self._last_time >= METRICS_EVERY_S) or point.get("final"):
                due.append((step, {k: v for k, v in point.items() if k not in ("final", "time")}))
                self._last_step, self._last_time = step, at
        self.archiver.write_metrics(due)

    def tick(self, final: bool) -> None:
        self.archiver.write_campaign_note()
        with self._lock:
            paths, self._artifacts = self._artifacts, []
        try:
            self.archiver.write_artifacts(paths)
        except Exception:
            self.add_artifacts(paths)  # keep them for the next attempt
            raise

    def close(self, status: str) -> None:
        self.archiver.settle_scores()  # the whole runs table in the order of `ctmevo status`
        self.archiver.close(status)


class PictureConsumer:
    """Keeps a replica of the archive (the same rule as the strategy's) and the metric history, and redraws
    ``plots/`` (archive.png, metrics.png, lineage.png of the best genome, archive.csv, and the interactive
    family_tree.html and archive_view.html whose nodes link to MLflow runs) every ``every_s`` seconds and at
    the end, never on the loop's thread.

    Its memory is bounded by the archive: the genomes a picture shows (the best, their ancestors, the elites'
    genes, the genes page's sample) are read from the campaign index (:mod:`.index`) when it draws, not kept.
    """

    def __init__(self, *, paths: CampaignPaths, campaign_id: str, descriptors: Sequence[Descriptor],
                 archive_config: dict | None, codec: VectorCodec, every_s: float = 60.0,
                 upload: Callable[[list[Path]], None] | None = None, seed: int = 0, tracking_uri: str = "",
                 run_ids: Callable[[], dict[str, str]] = dict, experiment_id: Callable[[], str | None] = lambda: None,
                 asset_run: Callable[[], str | None] = lambda: None, flat: bool = False) -> None:
        self.paths, self.campaign_id, self.descriptors, self.codec = paths, campaign_id, list(descriptors), codec
        self.archive_config, self.every_s, self.upload, self.seed = archive_config, every_s, upload, seed
        self.tracking_uri, self.run_ids, self.experiment_id = tracking_uri, run_ids, experiment_id
        self.asset_run = asset_run
        self.progress = BestSoFar(flat=flat)  # the best so far against compute (the progress page)
        self.qd: QDArchive | None = None
        self.history: list[dict[str, Any]] = []  # thinned: at most HISTORY_POINTS, evenly over the campaign
        self._history_stride = 1  # keep one metric point in this many (doubles each time the history fills up)
        self._history_seen = 0
        self._changed = True
        self._last_draw = float("-inf")
        self._last_analysis = float("-inf")

    def open(self) -> None:
        c = self.archive_config
        if c and self.descriptors:
            self.qd = QDArchive(descriptors=self.descriptors, solution_dim=self.codec.dim, kind=c["kind"],
                                centroids=c.get("centroids"), seed=self.seed, qd_offset=float(c["qd_offset"]))

    def observe(self, index: int, record: EvaluationRecord) -> None:
        self._add(record)

    def results(self, items: list[tuple[int, EvaluationRecord]]) -> None:
        for _, record in items:
            self._add(record)

    def _add(self, record: EvaluationRecord) -> None:
        self.progress.add(record)
        values = record.extra.get("descriptors")
        fitness = reported_fitness(record)
        usable = self.qd is not None and record.result.ok and isinstance(values, dict) and fitness is not None
        if usable and all(d.name in values for d in self.descriptors):  # the strategy's rule: rung, then mean
            self.qd.add(record.genome.hash, self.codec.encode(record.genome), float(fitness),
                        [float(values[d.name]) for d in self.descriptors], rung=int(record.extra.get("top_rung", 0)),
                        seeds=int(record.extra.get("seeds", 1)))
        self._changed = True

    def metrics(self, points: list[dict[str, Any]]) -> None:
        for point in points:  # a curve over the whole campaign in bounded memory, the last point always kept
            if self._history_seen % self._history_stride == 0 or point.get("final"):
                self.history.append(point)
            self._history_seen += 1
            if len(self.history) >= HISTORY_POINTS:
                self.history = self.history[::2]
                self._history_stride *= 2
        self._changed = True

    def tick(self, final: bool) -> None:
        now = time.monotonic()
        if not (final or (self._changed and now - self._last_draw >= self.every_s)):
            return
        self._last_draw, self._changed = now, False
        made = self.draw(final=final)
        if self.upload is not None and made:
            self.upload(made)

    def close(self, status: str) -> None:
        return None

    def draw(self, *, final: bool = True) -> list[Path]:
        """Write every picture and the archive table now (the analysis pages at most every
        :data:`ANALYSIS_EVERY_S`, and when ``final``); a picture that fails is skipped with a warning."""
        with CampaignIndex(self.paths.root, self.campaign_id) as index:
            index.update()  # at least as far as this consumer has read
            return self._draw(index, final)

    def _draw(self, index: CampaignIndex, final: bool) -> list[Path]:
        from search.lineage import lineage_from_records
        from search.views.pictures import archive_heatmap, metrics_over_evaluations, write_archive_csv

        self.paths.plots.mkdir(parents=True, exist_ok=True)
        rows = self.qd.rows() if self.qd is not None else []
        genomes = {r.genome.hash: r.genome for r in index.records([row["hash"] for row in rows])}
        rows = [row for row in rows if row["hash"] in genomes]
        for row in rows:
            row["genes"] = genomes[row["hash"]].to_dict()
        write_archive_csv(rows, self.paths.archive_csv)
        made = [self.paths.archive_csv]
        ranked = index.ranked_by_reported()
        family, total = _family(index, ranked)
        best = index.best(1)
        drawings: list[tuple[str, Callable[[Path], Any]]] = []
        if self.history:
            drawings.append(("metrics.png", lambda p: metrics_over_evaluations(self.history, p)))
        if self.qd is not None and len(self.qd):
            drawings.append(("archive.png", lambda p: archive_heatmap(self.qd, p)))
        if best:
            drawings.append(("lineage.png", lambda p: lineage_from_records(family, best[0]["hash"]).to_png(p)))
        for name, draw in drawings:
            path = self.paths.plots / name
            try:
                draw(path)
                made.append(path)
            except Exception as exc:  # a picture must never stop a campaign
                log.warning("could not draw %s: %s", path, exc)
        shown = [r.genome.hash for r in family] + [row["hash"] for row in rows]
        run_ids = {**index.run_ids(shown), **self.run_ids()}  # the MLflow consumer's latest, not yet in the index
        try:
            made += self._family_views(family, total, rows, run_ids)
        except Exception as exc:
            log.warning("could not write the family tree: %s", exc)
        now = time.monotonic()
        if not final and now - self._last_analysis < ANALYSIS_EVERY_S:
            return made
        self._last_analysis = now
        try:
            write_analysis(self.paths.plots / "analysis", progress=self.progress, records=index.records(
                genes_sample(ranked)), elites=rows, history=self.history, asset_run=self.asset_run())
            made.append(self.paths.plots / "analysis")
        except Exception as exc:
            log.warning("could not write the analysis pages: %s", exc)
        return made

    def _family_views(self, records: list[EvaluationRecord], total: int, rows: list[dict[str, Any]],
                      run_ids: dict[str, str]) -> list[Path]:
        from search.tracking.family import write_family_views

        cells = {r.genome.hash: r.extra.get("cell") for r in records}
        return write_family_views(self.paths.plots, records=records, run_ids=run_ids,
                                  tracking_uri=self.tracking_uri, experiment_id=self.experiment_id(), cells=cells,
                                  archive_rows=rows, descriptors=[d.to_config() for d in self.descriptors],
                                  archive_kind=self.qd.kind if self.qd is not None else "grid", total=total)


def _family(index: CampaignIndex, ranked: list[str]) -> tuple[list[EvaluationRecord], int]:
    """The genomes of the family tree and lineage picture, and how many genomes the campaign has: all of them up
    to :data:`~search.tracking.family.FAMILY_TREE_MAX`, else the :data:`~search.tracking.family.FAMILY_TREE_ROOTS`
    best and their ancestors, breadth-first from the best (at most ``FAMILY_TREE_MAX``)."""
    from search.tracking.family import FAMILY_TREE_MAX, FAMILY_TREE_ROOTS

    total = index.genome_count()
    if total <= FAMILY_TREE_MAX:
        return index.records(index.hashes()), total
    keep: dict[str, None] = {}
    level = ranked[:FAMILY_TREE_ROOTS]
    while level and len(keep) < FAMILY_TREE_MAX:
        rows = index.genomes([h for h in dict.fromkeys(level) if h not in keep])
        parents: list[str] = []
        for h in level:
            if len(keep) >= FAMILY_TREE_MAX:
                break
            if h in rows and h not in keep:
                keep[h] = None
                parents += rows[h]["parents"]
        level = parents
    return index.records(list(keep)), total

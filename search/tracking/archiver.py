"""The MLflow archive of a campaign, written in batches by a consumer of the journal.

One experiment, one campaign run (``ctmevo.kind = campaign``: config, QD metrics, pictures), one child run per
evaluated genome (``mlflow.parentRunId`` = the campaign run; content from :mod:`search.tracking.payload`).
:class:`MlflowArchiver` receives journal results in order (``write_results([(index, record), ...])``) and
writes a whole batch at once (:mod:`search.tracking.writers`). It never blocks a campaign: it runs beside the
loop, and when the server is away it raises :class:`TrackingUnavailable` and its caller retries the same batch
later, the records waiting in the journal meanwhile (nothing is lost, the lag grows and shrinks again).

Exactly one run per evaluation: runs are keyed by (campaign, genome hash); each run remembers the index of the
last journal result it holds (``ctmevo.result_index``), so a batch sent twice (a crash between writing and
saving the consumer's cursor) is skipped the second time. The archive's elites are mirrored here with the
archive's own rule (a cell's first success, then any strictly better one), so ``checkpoints: elites`` uploads
the weights of each genome that entered the archive as an elite.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mlflow.entities import Metric

import search.tracking.notes as notes
import search.tracking.payload as mp
from search.paths import shown_files
from search.records import EvaluationRecord
from search.tracking.assets import plotly_run
from search.tracking.client import campaign_run, ensure_experiment, first_line, is_transient, paged_runs
from search.tracking.client import client as mlflow_client
from search.tracking.errors import TrackingUnavailable, TrackingURIError
from search.tracking.relatives import Family, FamilyLookup
from search.tracking.scores import ScoreBoard
from search.tracking.writers import RunWrite, Writer, make_writer

__all__ = ["MlflowArchiver", "TrackingURIError", "TrackingUnavailable"]

log = logging.getLogger("ctmevo.tracking")
_ID_RE = re.compile(r"^[A-Za-z0-9_.:\-]{1,200}$")
_DONE = ("FINISHED", "FAILED", "KILLED")
KNOWN_KEPT = 50_000  # flat campaigns: the runs kept in memory (a batch re-sent after a failure is among them)
NOTES_EVERY_S = 10.0  # a parent's note is rewritten with its new children at most this often (all at the end)


@dataclass
class _Known:
    run_id: str
    index: int  # the last journal result the run holds (-1: created, not yet written)
    status: str


class MlflowArchiver:
    """Writes one campaign's records to MLflow (see the module docstring).

    Args:
        tracking_uri: an MLflow tracking URI (``sqlite:///…/mlflow.db``, ``http://host:port``, …).
        experiment_name: the campaign's experiment (created if missing).
        campaign_id: the key of all the campaign's runs (letters, digits, ``_ . : -``).
        config: the campaign file as plain data (params and ``config.yaml`` of the campaign run).
        checkpoints: ``none``, ``elites`` or ``all``: whose weights to upload.
        checkpoint_of: genome hash → the local checkpoint file (it may not exist).
        flat: the campaign has one rung and one seed (no genome is measured twice): scores never change.
        lookup: where the run notes' family reads what it let go (with ``flat``: it keeps the latest genomes only).
    """

    def __init__(self, *, tracking_uri: str, experiment_name: str, campaign_id: str, config: Mapping[str, Any],
                 checkpoints: str = "none", checkpoint_of: Any = None, flat: bool = False,
                 lookup: FamilyLookup | None = None) -> None:
        if not _ID_RE.match(campaign_id):
            raise ValueError(f"campaign_id = {campaign_id!r}: allowed are 1-200 letters, digits, '_', '.', ':' "
                             "or '-'")
        self.tracking_uri, self.experiment_name, self.campaign_id = tracking_uri, experiment_name, campaign_id
        self.config = dict(config)
        self.checkpoints = checkpoints
        self.checkpoint_of = checkpoint_of
        self.experiment_id: str | None = None
        self.campaign_run_id: str | None = None
        self.asset_run_id: str | None = None  # the store's shared plotly.js (search.tracking.assets)
        self._known: dict[str, _Known] = {}
        self._stale_notes: set[str] = set()  # parents with children their note does not list yet
        self._notes_at: dict[str, float] = {}  # parent → when its note was last rewritten (time.monotonic)
        self._cell_best: dict[str, float] = {}
        self._family = Family(lookup=lookup if flat else None)  # the notes' nodes (flat: the latest only)
        self._nodes = self._family.nodes
        self._board = ScoreBoard(flat=flat)  # rank_score of every run in status's order (search.tracking.scores)
        self._counts = notes.CampaignCounts()
        self._metric_keys: set[str] = set()  # every metric of the evaluation runs (the chart view hides them)
        self._genes: list[str] = []
        self._view: dict[str, str] = {}
        self._campaign_note = ""
        self._resent_checked = False
        try:
            self._client = mlflow_client(tracking_uri)
        except Exception as exc:
            raise TrackingURIError(tracking_uri, first_line(exc)) from exc
        self._writer: Writer | None = None

    @property
    def connected(self) -> bool:
        return self.campaign_run_id is not None

    # -- connection ----------------------------------------------------------------------------------------
    def connect(self) -> None:
        """Find or create the experiment and the campaign run (marked RUNNING), and the runs written so far.

        Raises :class:`TrackingUnavailable` when the store does not answer, :class:`TrackingURIError` when it
        refuses (e.g. an unwritable database)."""
        try:
            self._connect()
        except Exception as exc:
            if is_transient(exc):
                raise TrackingUnavailable(f"MLflow at {self.tracking_uri}: {first_line(exc)}") from exc
            raise TrackingURIError(self.tracking_uri, first_line(exc)) from exc

    def _connect(self) -> None:
        client = self._client
        self.experiment_id = ensure_experiment(client, self.tracking_uri, self.experiment_name)
        run_id = campaign_run(client, self.experiment_id, self.campaign_id, self.config)
        if self._family.lookup is None:  # flat: only the runs a re-sent batch may hold, at its first write
            self._load_known()
        self._write_view(run_id)
        for h, node in self._nodes.items():  # observed before connecting: now their runs are known
            if node.run_id is None and h in self._known:
                self._nodes[h] = replace(node, run_id=self._known[h].run_id)
        self._writer = make_writer(client, self.tracking_uri)
        try:
            self.asset_run_id = plotly_run(client, self.tracking_uri)
        except Exception as exc:  # the pages then look for plotly.js beside them; the campaign goes on
            log.warning("could not store plotly.js for the analysis pages in %s: %s", self.tracking_uri,
                        first_line(exc))
        self.campaign_run_id = run_id

    def _load_known(self, since_ms: int | None = None) -> None:
        """Every evaluation run of the campaign (one paged search): genome hash → run id, last result index; only
        those started at ``since_ms`` or later when given."""
        since = "" if since_ms is None else f" and attributes.start_time >= {int(since_ms)}"
        for run in paged_runs(self._client, self.experiment_id, f"tags.`{mp.TAG_CAMPAIGN}` = '{self.campaign_id}' "
                              f"and tags.`{mp.TAG_KIND}` = 'evaluation'{since}"):
            h = run.data.tags.get(mp.TAG_HASH)
            index = int(run.data.tags.get(mp.TAG_RESULT_INDEX, "-1"))
            self._metric_keys.update(run.data.metrics)
            self._genes = self._genes or list(run.data.params)
            if h and (h not in self._known or index > self._known[h].index):
                self._known[h] = _Known(run.info.run_id, index, run.info.status)
                if "rank_score" in run.data.metrics:
                    self._board.logged({h: run.data.metrics["rank_score"]})

    def run_id_of(self, genome_hash: str) -> str | None:
        """The run of an evaluated genome (flat: the latest :data:`KNOWN_KEPT` are kept, the rest in the lookup)."""
        known = self._known.get(genome_hash)
        if known is None and self._family.lookup is not None:
            return self._family.lookup.rows([genome_hash]).get(genome_hash, {}).get("run_id")
        return known.run_id if known else None

    # -- evaluations ----------------------------------------------------------------------------------------
    def observe(self, index: int, record: EvaluationRecord) -> None:
        """Follow a result written earlier (before this process started) without writing it: the elite mirror
        and the family the notes are made from."""
        self._is_new_elite(record, [])
        self._remember(record, self.run_id_of(record.genome.hash) if self._family.lookup is None else None)
        self._board.add(record, pending=False)
        self._count(record)

    def _is_new_elite(self, record: EvaluationRecord, undo: list[tuple[str, float | None]]) -> bool:
        cell, fitness = record.extra.get("cell"), record.result.fitness
        if not record.result.ok or cell is None or fitness is None:
            return False
        best = self._cell_best.get(str(cell))
        if best is not None and not fitness > best:
            return False
        undo.append((str(cell), best))
        self._cell_best[str(cell)] = float(fitness)
        return True

    def write_results(self, items: Sequence[tuple[int, EvaluationRecord]]) -> int:
        """Write the runs of journal results ``items`` (index, record), in order, as one batch; returns how many
        runs were written (results already held by their runs are skipped). Each run's note links its parents
        and children; the notes of parents outside the batch are rewritten with their new children."""
        if not self.connected:
            self.connect()
        assert self._writer is not None and self.experiment_id is not None
        if self._family.lookup is not None and not self._resent_checked and items:
            # flat: the runs of a batch re-sent after a stop (the cursor is saved after each batch) started no
            # earlier than its first record; every older run is in the lookup
            since = min(_start_ms(r) for _, r in items)
            self._guard(lambda: self._load_known(since))
            self._resent_checked = True
        if self._family.lookup is not None:
            self._family.refresh()  # the batch's genomes are children of their parents there
        undo: list[tuple[str, float | None]] = []
        elites = {index: self._is_new_elite(record, undo) for index, record in items}
        runs: list[RunWrite] = []
        try:
            reserved = [(index, record, *slot) for index, record in items if (slot := self._reserve(index, record))]
            for _, record, run_id, _ in reserved:
                self._remember(record, run_id)
                self._board.add(record)
            written = {record.genome.hash for _, record, _, _ in reserved}
            scores = self._board.due(written) if reserved else {}
            runs = [self._run_write(index, record, run_id, new, elite=elites[index])
                    for index, record, run_id, new in reserved]
            parents = {p for _, record, _, _ in reserved for p in record.proposal.parents} - written
            stale = self._stale_notes | {p for p in parents if self._family.lookup is not None or (
                p in self._known and p in self._nodes)}
            now = time.monotonic()
            due = sorted(p for p in stale if runs and now - self._notes_at.get(p, float("-inf")) >= NOTES_EVERY_S)
            parent_notes = {run_id: self._note(p) for p in due if (run_id := self.run_id_of(p))}
            if runs:
                detail = mp.detail_path(reserved[0][0], reserved[-1][0])
                for run in runs:
                    run.tags[mp.TAG_DETAIL] = detail
                self._writer.write(runs, self.experiment_id, notes=parent_notes, metrics=self._score_points(scores),
                                   texts={(str(self.campaign_run_id), detail):
                                          mp.detail_text((i, r) for i, r, _, _ in reserved)})
                self._board.logged(scores)
        except Exception as exc:
            for cell, best in reversed(undo):  # the batch will come again: the mirror forgets it
                if best is None:
                    self._cell_best.pop(cell, None)
                else:
                    self._cell_best[cell] = best
            if is_transient(exc):
                raise TrackingUnavailable(f"MLflow at {self.tracking_uri}: {first_line(exc)}") from exc
            raise
        for run in runs:
            self._known[run.tags[mp.TAG_HASH]] = _Known(run.run_id, int(run.tags[mp.TAG_RESULT_INDEX]), run.status)
        while self._family.lookup is not None and len(self._known) > KNOWN_KEPT:  # flat: the rest in the lookup
            del self._known[next(iter(self._known))]
        self._stale_notes = stale - set(due)  # an elite's note listed its children again on every batch: O(children)
        self._notes_at = {p: t for p, t in self._notes_at.items() if now - t < NOTES_EVERY_S} | dict.fromkeys(due, now)
        keys = {m.key for run in runs for m in run.metrics} | {"rank_score"}
        self._genes = self._genes or [g for run in runs[:1] for g in run.params]
        if not keys <= self._metric_keys:
            self._metric_keys |= keys
            self._guard(self._write_view)
        for _, record, _, _ in reserved:
            self._count(record)
        return len(runs)

    def _write_view(self, campaign_run_id: str | None = None) -> None:
        """The experiment's tags (:func:`search.tracking.notes.experiment_tags`), written where they changed."""
        wanted = notes.experiment_tags(campaign=self.campaign_id, experiment_id=str(self.experiment_id),
                                       campaign_run_id=campaign_run_id or self.campaign_run_id,
                                       metric_keys=self._metric_keys, genes=self._genes)
        if not self._view:
            self._view = dict(self._client.get_experiment(self.experiment_id).tags)
        for key, value in wanted.items():
            if self._view.get(key) != value:
                self._client.set_experiment_tag(self.experiment_id, key, value)
                self._view[key] = value

    def _count(self, record: EvaluationRecord) -> None:
        self._counts = self._counts.after(record, runs=self._family.runs)

    def write_campaign_note(self) -> bool:
        """Describe the campaign run (:func:`search.tracking.notes.campaign_note`) when the description
        changed; returns whether it was written."""
        if not self.connected:
            self.connect()
        best = self._board.best()
        node = self._family.node(best[0]) if best else None
        standing = notes.BestStanding.of(node, *best[1:4]) if best and node else None
        note = notes.campaign_note(campaign=self.campaign_id, experiment_id=str(self.experiment_id),
                                   campaign_run_id=str(self.campaign_run_id), best=standing, counts=self._counts)
        if note == self._campaign_note:
            return False
        self._guard(lambda: self._client.set_tag(self.campaign_run_id, mp.TAG_NOTE, note))
        self._campaign_note = note
        return True

    def _reserve(self, index: int, record: EvaluationRecord) -> tuple[str, bool] | None:
        """(run id, new?) for ``record``'s run, or None when the run already holds this result."""
        assert self._writer is not None and self.experiment_id is not None
        genome_hash = record.genome.hash
        known = self._known.get(genome_hash)
        if known is not None and known.index >= index:
            return None  # already written (a re-sent batch)
        if known is not None:
            return known.run_id, known.index < 0
        identity = {mp.TAG_KIND: "evaluation", mp.TAG_CAMPAIGN: self.campaign_id, mp.TAG_HASH: genome_hash,
                    mp.TAG_PARENT_RUN: str(self.campaign_run_id)}
        run_id = self._writer.new_run_id(self.experiment_id, genome_hash, _start_ms(record), identity)
        self._known[genome_hash] = _Known(run_id, -1, "RUNNING")
        return run_id, True

    def _score_points(self, scores: Mapping[str, float]) -> dict[str, list[Metric]]:
        return self._board.points(scores, {h: k.run_id for h in scores if (k := self._known.get(h)) is not None})

    def settle_scores(self) -> int:
        """Log ``rank_score`` again for every run whose score changed since (the end of a campaign: the whole
        runs table in ``ctmevo status``'s order), and rewrite the parents' notes that wait for their last children
        (:data:`NOTES_EVERY_S`); returns how many runs' scores were updated."""
        if not self.connected:
            self.connect()
        assert self._writer is not None and self.experiment_id is not None
        if self._family.lookup is not None:
            self._family.refresh()
        scores = {h: v for h, v in self._board.due(everything=True).items() if h in self._known}
        metrics = self._score_points(scores)
        stale = sorted(self._stale_notes)  # and the parents' notes not rewritten yet with their last children
        parent_notes = {run_id: self._note(p) for p in stale if (run_id := self.run_id_of(p))}
        if metrics or parent_notes:
            self._guard(lambda: self._writer.write([], str(self.experiment_id), metrics=metrics, notes=parent_notes))
        self._stale_notes -= set(stale)
        self._board.logged(scores)
        return len(metrics)

    def _run_write(self, index: int, record: EvaluationRecord, run_id: str, new: bool, *, elite: bool) -> RunWrite:
        genome_hash = record.genome.hash
        parent_ids = [rid for p in dict.fromkeys(record.proposal.parents) if (rid := self.run_id_of(p))]
        cell = record.extra.get("cell")
        tags, params, metrics = mp.evaluation_payload(record, campaign=self.campaign_id,
                                                      cell=None if cell is None else str(cell),
                                                      campaign_run_id=self.campaign_run_id, parent_run_ids=parent_ids,
                                                      generation=self._nodes[genome_hash].generation,
                                                      note=self._note(genome_hash))
        files = {}
        checkpoint = self.checkpoint_of(genome_hash) if self.checkpoint_of else None
        wanted = self.checkpoints == "all" or (self.checkpoints == "elites" and elite)
        if wanted and checkpoint is not None and Path(checkpoint).is_file():
            files["checkpoint"] = Path(checkpoint)
        tag_map = {t.key: t.value for t in tags}
        tag_map[mp.TAG_RESULT_INDEX] = str(index)
        ok = record.result.ok
        return RunWrite(run_id=run_id, new=new, run_name=genome_hash,
                        start_ms=_start_ms(record), end_ms=int(record.finished_at * 1000),
                        status="FINISHED" if ok else "FAILED", tags=tag_map, params={p.key: p.value for p in params},
                        metrics=metrics, files=files,
                        delete_tags=(mp.TAG_FAILURE,) if ok and not new else ())

    def _remember(self, record: EvaluationRecord, run_id: str | None) -> None:
        self._family.remember(record, run_id)

    def _note(self, genome_hash: str) -> str:
        return self._family.note(genome_hash, experiment_id=str(self.experiment_id),
                                 campaign_run_id=self.campaign_run_id)

    def run_ids(self) -> dict[str, str]:
        """Genome hash → run id of the evaluation runs known (flat: the latest :data:`KNOWN_KEPT`; a copy)."""
        return {h: k.run_id for h, k in list(self._known.items())}

    # -- the campaign run -----------------------------------------------------------------------------------
    def write_metrics(self, points: Sequence[tuple[int, Mapping[str, Any]]]) -> None:
        """Campaign metrics (coverage, QD-score, best fitness, ...) at steps (evaluations done)."""
        if not points:
            return
        if not self.connected:
            self.connect()
        ts = int(time.time() * 1000)
        metrics = [Metric(mp.metric_key(k), x, ts, int(step)) for step, values in points
                   for k, v in values.items() if (x := mp.as_number(v)) is not None]
        self._guard(lambda: [self._client.log_batch(self.campaign_run_id, metrics=m)
                             for m, _, _ in mp.batches(metrics)])

    def write_artifacts(self, paths: Iterable[Path]) -> None:
        """Upload (refresh) files or folders to the campaign run: heatmap, metrics plot, lineage, archive table."""
        if not self.connected:
            self.connect()

        def upload() -> None:
            for path in map(Path, paths):
                files = shown_files(path) if path.is_dir() else [(path, None)] if path.is_file() else []
                for file, folder in files:
                    try:
                        self._client.log_artifact(self.campaign_run_id, str(file), folder)
                    except FileNotFoundError:  # replaced or removed since the walk: the next refresh sends it
                        continue

        self._guard(upload)

    def close(self, status: str = "FINISHED") -> None:
        """Mark the campaign run ``status`` (FINISHED at the end of the budget, KILLED after Ctrl-C, FAILED)."""
        if self.connected:
            self._guard(lambda: self._client.set_terminated(self.campaign_run_id, status))
            analyse = getattr(self._writer, "analyse", None)
            if analyse is not None:  # a SQL store: its query planner up to date for the runs table (see SqlWriter)
                self._guard(analyse)

    def _guard(self, fn: Any) -> None:
        try:
            fn()
        except Exception as exc:
            if is_transient(exc):
                raise TrackingUnavailable(f"MLflow at {self.tracking_uri}: {first_line(exc)}") from exc
            raise


def _start_ms(record: EvaluationRecord) -> int:
    """When an evaluation's run started (ms): its finish less its wall time (a re-sent batch's runs start here)."""
    return int((record.finished_at - float(record.result.metrics.get("wall_time_s") or 0.0)) * 1000)

"""The MLflow archive of a campaign: one experiment, one campaign run, one child run per evaluation.

The campaign run (``ctmevo.kind = campaign``) holds the config, the QD metrics and refreshed artifacts; each
evaluation run (``mlflow.parentRunId`` = the campaign run) is built by :mod:`search.tracking.payload`, whose
``TAG_*`` constants name the tags (see docs/mlflow.md). Evaluation runs are keyed by (campaign, genome hash):
a terminated run is returned as is, a run half-written by a crash is completed, so resumes, replays and
``ctmevo sync`` re-send records safely.

Each evaluation run's description (``mlflow.note.content``, :func:`~search.tracking.payload.evaluation_note`)
links its parents' and children's runs: written with the run, and each parent's is rewritten when a child
arrives. At connection the experiment gets :func:`~search.tracking.payload.experiment_tags`.

Tracking failures never stop a campaign: a failed call is spooled (``spool_dir/mlflow-spool.jsonl``) and the
tracker stays offline for ``retry_interval_s`` (doubling while failures persist, up to :data:`MAX_OFFLINE_S`),
spooling without touching the network; then the next call replays the spool first, in order, so parents reach
MLflow before their children. :data:`~search.tracking.client.HTTP_DEFAULTS` lower MLflow's HTTP retries so a
dead server costs about two seconds. Entries MLflow rejects outright are set aside after :data:`MAX_ATTEMPTS` attempts.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from mlflow.entities import Metric, Param, Run, RunTag

import search.tracking.payload as mp
import search.tracking.run_notes as notes
from genome.io import to_yaml
from search.records import EvaluationRecord
from search.tracking.client import client as mlflow_client
from search.tracking.client import ensure_experiment, first_line, is_transient
from search.tracking.spool import Spool

__all__ = ["MAX_ATTEMPTS", "MAX_OFFLINE_S", "Tracker", "TrackingURIError"]

log = logging.getLogger("ctmevo.tracking")

MAX_OFFLINE_S = 600.0  # longest wait between connection attempts while the server stays away
MAX_ATTEMPTS = 3  # replays of an entry MLflow rejects (not a connection problem) before it is set aside
_DONE = ("FINISHED", "FAILED", "KILLED")
_ID_RE = re.compile(r"^[A-Za-z0-9_.:\-]{1,200}$")


class TrackingURIError(RuntimeError):
    """The tracking URI cannot be used at start-up (bad scheme, unreachable server, unwritable store)."""

    def __init__(self, uri: str, reason: str) -> None:
        self.uri, self.reason = uri, reason
        super().__init__(f"MLflow tracking URI {uri!r} is unusable: {reason}. Check tracking.uri in the "
                         "campaign file (e.g. sqlite:///<dir>/mlflow.db or http://host:port) and that the "
                         "server is up.")


class Tracker:
    """Logs one campaign to MLflow; every public method swallows tracking failures (spooling instead).

    Args:
        tracking_uri: an MLflow tracking URI (``sqlite:///…/mlflow.db``, ``http://host:port``, …).
        experiment_name: the campaign's experiment (created if missing).
        campaign_id: the campaign's identifier (letters, digits, ``_ . : -``), the key of all its runs.
        spool_dir: where records wait while the server is away (the campaign directory).
        offline_ok: if the server cannot be reached at start-up, start offline (spooling) instead of raising
            :class:`TrackingURIError` (a bad URI scheme still raises).
        retry_interval_s: how long to stay offline (spooling without trying) after a connection failure;
            doubled after each further failure, up to :data:`MAX_OFFLINE_S`.
    """

    def __init__(self, *, tracking_uri: str, experiment_name: str, campaign_id: str, spool_dir: str | Path,
                 offline_ok: bool = False, retry_interval_s: float = 30.0) -> None:
        if not _ID_RE.match(campaign_id):
            raise ValueError(f"campaign_id = {campaign_id!r}: allowed are 1-200 letters, digits, '_', '.', ':' "
                             "or '-'")
        self.tracking_uri, self.experiment_name, self.campaign_id = tracking_uri, experiment_name, campaign_id
        self.retry_interval_s = retry_interval_s
        self._spool = Spool(spool_dir)
        self._config: dict[str, Any] | None = None
        self._config_pending = False  # start_campaign's config not yet accepted by MLflow
        self._lock = threading.RLock()
        self._offline_until = 0.0
        self._warned = False
        self._outages = 0  # consecutive connection failures
        self._experiment_id: str | None = None
        self._campaign_run_id: str | None = None
        self._done: dict[str, tuple[str, str]] = {}  # genome hash -> (run id, status) of terminated runs
        try:
            self._client = mlflow_client(tracking_uri)
        except Exception as exc:
            raise TrackingURIError(tracking_uri, f"{type(exc).__name__}: {exc}") from exc
        try:
            self._connect()
        except Exception as exc:
            if not (offline_ok and is_transient(exc)):
                raise TrackingURIError(tracking_uri, first_line(exc)) from exc
            self._went_offline(exc, "start-up")

    # -- state ---------------------------------------------------------------------------------------------
    @property
    def experiment_id(self) -> str | None:
        return self._experiment_id

    @property
    def campaign_run_id(self) -> str | None:
        """The campaign run's id (``None`` while the tracker started offline and has not yet connected)."""
        return self._campaign_run_id

    @property
    def online(self) -> bool:
        return self._campaign_run_id is not None and time.monotonic() >= self._offline_until

    def run_ids(self) -> dict[str, str]:
        """Genome hash → run id of every evaluation run this tracker has written or found (for the family views)."""
        return {h: run_id for h, (run_id, _) in self._done.items()}

    def pending(self) -> int:
        """How many spooled entries (evaluations, campaign metrics, artifact refreshes) await MLflow."""
        return len(self._spool.entries())

    # -- public logging API ----------------------------------------------------------------------------------
    def log_evaluation(self, record: EvaluationRecord, *, cell: str | None,
                       checkpoint_path: str | Path | None = None) -> str | None:
        """Archive ``record`` as a child run; returns its run id, or ``None`` if it was spooled."""
        entry = {"kind": "evaluation", "record": record.to_dict(), "cell": None if cell is None else str(cell),
                 "checkpoint_path": str(Path(checkpoint_path).resolve()) if checkpoint_path else None}
        return self._deliver(entry, f"evaluation {record.genome.hash}")

    def log_campaign_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        """Log QD metrics (coverage, QD-score, best fitness, ...) at ``step`` (evaluations done)."""
        entry = {"kind": "metrics", "step": int(step), "timestamp": int(time.time() * 1000),
                 "metrics": {k: x for k, v in metrics.items() if (x := mp.as_number(v)) is not None}}
        self._deliver(entry, f"campaign metrics at step {step}")

    def log_campaign_artifacts(self, paths: Iterable[str | Path]) -> None:
        """Upload (refresh) files or folders to the campaign run: heatmap, metrics plot, lineage, archive CSV."""
        entry = {"kind": "artifacts", "paths": [str(Path(p).resolve()) for p in paths]}
        self._deliver(entry, "campaign artifacts")

    def start_campaign(self, *, config: Mapping[str, Any]) -> None:
        """Log the campaign config to the campaign run (params, and ``config.yaml``, refreshed on resume).

        Kept in memory and sent on reconnection if the server is away. MLflow params cannot change, so a
        value edited since the first start stays as first logged (a warning says so); ``config.yaml`` is current.
        """
        with self._lock:
            self._config, self._config_pending = dict(config), True
            self._send_config_if_pending()

    def replay(self, *, force: bool = False) -> int:
        """Re-send spooled entries in order; returns how many MLflow accepted (stops at a connection error).

        While the tracker is offline after a failure this does nothing unless ``force`` (``ctmevo sync``).
        """
        with self._lock:
            entries = self._spool.entries()
            if not entries or (not force and time.monotonic() < self._offline_until):
                return 0
            if self._campaign_run_id is None:
                try:
                    self._connect()
                except Exception as exc:
                    self._failed(exc, "reconnection")
                    return 0
            done: set[str] = set()
            attempts: dict[str, int] = {}
            rejected: list[dict[str, Any]] = []
            later_paths = set()
            for entry in reversed(entries):  # an artifact refresh superseded by a later one is done already
                if entry["kind"] == "artifacts":
                    if set(entry["paths"]) <= later_paths:
                        done.add(entry["id"])
                    later_paths |= set(entry["paths"])
            for entry in entries:
                if entry["id"] in done:
                    continue
                try:
                    self._send(entry)
                except Exception as exc:
                    if is_transient(exc):
                        self._went_offline(exc, "replay")
                        break
                    tries = int(entry.get("attempts", 0)) + 1
                    log.warning("MLflow rejected spooled %s (attempt %d of %d): %s", entry["kind"], tries,
                                MAX_ATTEMPTS, first_line(exc))
                    if tries >= MAX_ATTEMPTS:
                        rejected.append({**entry, "attempts": tries, "error": first_line(exc)})
                    else:
                        attempts[entry["id"]] = tries
                    continue
                done.add(entry["id"])
            else:
                self._offline_until, self._outages = 0.0, 0
                if self._warned:
                    log.warning("MLflow at %s answers again; spooled records re-sent", self.tracking_uri)
                self._warned = False
            self._spool.settle(done, attempts, rejected)
            sent = len(done)
            if sent:
                log.info("re-sent %d spooled entries to %s (%d still pending)", sent, self.tracking_uri,
                         len(entries) - sent - len(rejected))
            return sent

    def close(self, status: str = "FINISHED") -> None:
        """Send what is spooled if the server answers, and mark the campaign run ``status``."""
        with self._lock:
            if self._spool:
                self.replay()
            if self.online:
                try:
                    self._client.set_terminated(self._campaign_run_id, status)
                except Exception as exc:
                    self._failed(exc, "closing the campaign run")

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        self.close("FINISHED" if exc_type is None else "KILLED")

    # -- delivery -------------------------------------------------------------------------------------------
    def _deliver(self, entry: dict[str, Any], what: str) -> Any:
        with self._lock:
            if time.monotonic() >= self._offline_until and self._spool:
                self.replay()  # older entries first: parents reach MLflow before their children
            if time.monotonic() >= self._offline_until and self._campaign_run_id is None:
                try:
                    self._connect()
                except Exception as exc:
                    self._failed(exc, "reconnection")
            self._send_config_if_pending()
            if self.online:
                try:
                    result = self._send(entry)
                    self._outages = 0
                    return result
                except Exception as exc:
                    self._failed(exc, what)
            self._spool.add(entry)
            return None

    def _failed(self, exc: BaseException, what: str) -> None:
        if is_transient(exc):
            self._went_offline(exc, what)
        else:
            log.warning("MLflow rejected %s (kept in the spool, %s): %s", what, self._spool.path,
                        first_line(exc))

    def _went_offline(self, exc: BaseException, what: str) -> None:
        self._outages += 1
        wait = min(self.retry_interval_s * 2 ** (self._outages - 1), max(MAX_OFFLINE_S, self.retry_interval_s))
        self._offline_until = time.monotonic() + wait
        if not self._warned:
            log.warning("MLflow at %s is unavailable during %s (%s); records are spooled to %s and re-sent "
                        "when it answers (or by `ctmevo sync`)", self.tracking_uri, what, first_line(exc),
                        self._spool.path)
        self._warned = True

    def _send(self, entry: dict[str, Any]) -> Any:
        kind = entry["kind"]
        if kind == "evaluation":
            return self._send_evaluation(EvaluationRecord.from_dict(entry["record"]), cell=entry.get("cell"),
                                         checkpoint_path=entry.get("checkpoint_path"))
        if kind == "metrics":
            ts, step = int(entry["timestamp"]), int(entry["step"])
            metrics = [Metric(mp.metric_key(k), float(v), ts, step) for k, v in entry["metrics"].items()]
            self._log_batch(self._campaign_run_id, metrics=metrics)
        elif kind == "artifacts":
            for raw in entry["paths"]:
                path = Path(raw)
                if path.is_dir():
                    self._client.log_artifacts(self._campaign_run_id, str(path), path.name)
                elif path.is_file():
                    self._client.log_artifact(self._campaign_run_id, str(path))
        else:
            raise ValueError(f"spool entry kind = {kind!r}: allowed is evaluation, metrics or artifacts")
        return None

    # -- MLflow operations ------------------------------------------------------------------------------------
    def _connect(self) -> None:
        client = self._client
        self._experiment_id = ensure_experiment(client, self.tracking_uri, self.experiment_name)
        runs = client.search_runs([self._experiment_id], f"tags.`{mp.TAG_KIND}` = 'campaign' and "
                                  f"tags.`{mp.TAG_CAMPAIGN}` = '{self.campaign_id}'",
                                  order_by=["attributes.start_time ASC"], max_results=5)
        if runs:
            run_id = runs[0].info.run_id
            if runs[0].info.status != "RUNNING":  # a resumed campaign
                client.update_run(run_id, status="RUNNING")
        else:
            tags = {mp.TAG_KIND: "campaign", mp.TAG_CAMPAIGN: self.campaign_id}
            run_id = client.create_run(self._experiment_id, run_name=self.campaign_id, tags=tags).info.run_id
        notes.set_experiment_tags(client, str(self._experiment_id), self.campaign_id, run_id)
        self._load_done()
        self._campaign_run_id = run_id

    def _send_config_if_pending(self) -> None:
        if self._config_pending and self.online:
            try:
                self._send_config()
                self._config_pending = False
            except Exception as exc:
                self._failed(exc, "campaign config")

    def _send_config(self) -> None:
        run_id = self._campaign_run_id
        existing = self._client.get_run(run_id).data.params
        flat = mp.flatten_config(self._config or {})
        changed = sorted(k for k, v in flat.items() if k in existing and existing[k] != v)
        if changed:
            log.warning("campaign config changed since it was first logged (%s); MLflow params cannot change, "
                        "see config.yaml for the current values", ", ".join(changed[:10]))
        self._log_batch(run_id, params=[Param(k, v) for k, v in flat.items() if k not in existing])
        text = yaml.safe_dump(json.loads(json.dumps(self._config, default=str)), sort_keys=False)
        self._client.log_text(run_id, text, "config.yaml")

    def _find_runs(self, genome_hash: str) -> list[Run]:
        return self._client.search_runs(
            [self._experiment_id], f"tags.`{mp.TAG_CAMPAIGN}` = '{self.campaign_id}' and "
            f"tags.`{mp.TAG_HASH}` = '{genome_hash}'", order_by=["attributes.start_time ASC"], max_results=20)

    def _load_done(self) -> None:
        """Remember the campaign's finished runs (one paged search), so a resume re-logs without a query each."""
        token = None
        while True:
            page = self._client.search_runs(
                [self._experiment_id], f"tags.`{mp.TAG_CAMPAIGN}` = '{self.campaign_id}' and "
                f"tags.`{mp.TAG_KIND}` = 'evaluation'", max_results=1000, page_token=token)
            for run in page:
                self._remember(run)
            token = page.token
            if not token:
                return

    def _send_evaluation(self, record: EvaluationRecord, *, cell: str | None,
                         checkpoint_path: str | None) -> str:
        genome_hash = record.genome.hash
        ok = record.result.ok
        hit = self._done.get(genome_hash)
        if hit and (hit[1] == "FINISHED" or not ok):  # idempotent: this (campaign, hash) is archived already
            return hit[0]
        runs = self._find_runs(genome_hash)
        for run in runs:
            self._remember(run)
        hit = self._done.get(genome_hash)
        if hit and (hit[1] == "FINISHED" or not ok):
            return hit[0]
        wall = float(record.result.metrics.get("wall_time_s") or 0.0)
        if hit:  # a success replaces an earlier failure of the same genome (e.g. a timeout, retried later)
            run_id = hit[0]
            if mp.TAG_FAILURE in self._client.get_run(run_id).data.tags:
                self._client.delete_tag(run_id, mp.TAG_FAILURE)
        elif runs:  # half-written by a crash: complete it
            run_id = runs[0].info.run_id
        else:
            run_id = self._client.create_run(
                self._experiment_id, run_name=genome_hash, start_time=int((record.finished_at - wall) * 1000),
                tags={mp.TAG_KIND: "evaluation", mp.TAG_CAMPAIGN: self.campaign_id, mp.TAG_HASH: genome_hash,
                      mp.TAG_PARENT_RUN: self._campaign_run_id}).info.run_id
        parents = notes.parent_runs(self._client, str(self._experiment_id), self.campaign_id, record.proposal.parents,
                                    [self._done[p][0] for p in record.proposal.parents if p in self._done])
        parent_ids = [run.info.run_id for run in parents.values() if run is not None]
        generation = mp.generation_of([mp.Relative.of_run(r).generation if r else None for r in parents.values()]
                                      ) if record.proposal.parents else 0
        me = mp.Relative.of_record(record, run_id=run_id, generation=generation, cell=cell)
        note = notes.note_of(self._client, str(self._experiment_id), self.campaign_id, self._campaign_run_id, me,
                             parents)
        tags, params, metrics = mp.evaluation_payload(record, campaign=self.campaign_id, cell=cell,
                                                   campaign_run_id=self._campaign_run_id,
                                                   parent_run_ids=parent_ids, generation=generation, note=note)
        self._log_batch(run_id, metrics=metrics, params=params, tags=tags)
        self._client.log_text(run_id, to_yaml(record.genome), "genome.yaml")
        if checkpoint_path:
            if Path(checkpoint_path).is_file():
                self._client.log_artifact(run_id, checkpoint_path, "checkpoint")
            else:
                log.warning("checkpoint %s of %s is gone; run logged without it", checkpoint_path, genome_hash)
        self._client.set_terminated(run_id, "FINISHED" if ok else "FAILED",
                                    end_time=int(record.finished_at * 1000))
        self._done[genome_hash] = (run_id, "FINISHED" if ok else "FAILED")
        notes.refresh_parent_notes(self._client, str(self._experiment_id), self.campaign_id,  # they list it now
                                   self._campaign_run_id, parents)
        return run_id

    def _remember(self, run: Run) -> None:
        """Note a terminated run of this campaign (a FINISHED one wins over a FAILED one)."""
        genome_hash, status = run.data.tags.get(mp.TAG_HASH), run.info.status
        if genome_hash and status in _DONE and (status == "FINISHED" or genome_hash not in self._done):
            self._done[genome_hash] = (run.info.run_id, status)

    def _log_batch(self, run_id: str | None, *, metrics: Sequence[Metric] = (), params: Sequence[Param] = (),
                   tags: Sequence[RunTag] = ()) -> None:
        for m, p, t in mp.batches(metrics, params, tags):
            self._client.log_batch(run_id, metrics=m, params=p, tags=t)

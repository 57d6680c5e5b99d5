"""Locating an evaluation on an MLflow tracking server alone: find evaluation runs, fetch their artifacts.

Evaluation runs are the ones :mod:`search.tracking.archiver` writes (tags in :mod:`search.tracking.payload`):
the genes as params, (for kept elites) ``checkpoint/<hash>.safetensors`` as an artifact; the genome and its
curves in the campaign run's detail file the run's ``ctmevo.detail`` tag names (stores written before ctmevo kept
them there: ``genome.yaml`` and metric histories on the run itself); the campaign's ``config.yaml`` on the
parent campaign run.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from ctm.result import TaskSpec
from genome.errors import GenomeError, SchemaError
from genome.textio import FileReadError, parse_yaml
from search.export.located import ExportError, Located, genome_from_text, record_from_run
from search.lineage import LineageError
from search.records import Proposal, parse_by
from search.tracking.client import active_experiments
from search.tracking.client import client as _client
from search.tracking.lineages import lineage
from search.tracking.payload import (
    TAG_CAMPAIGN,
    TAG_CELL,
    TAG_DETAIL,
    TAG_HASH,
    TAG_KIND,
    TAG_PARENT_RUN,
    TAG_STATUS,
)

log = logging.getLogger("ctmevo.export")


def _get_run(client: MlflowClient, uri: str, run_id: str) -> Run:
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise ExportError(f"no run with id {run_id} in {uri} ({exc.error_code})") from None
    if run.data.tags.get(TAG_KIND) != "evaluation" or TAG_HASH not in run.data.tags:
        raise ExportError(f"run {run_id} in {uri} is not a ctmevo evaluation run (tag {TAG_KIND} = "
                          f"{run.data.tags.get(TAG_KIND)!r})")
    return run


def hash_of_run(uri: str, run_id: str) -> str:
    return _get_run(_client(uri), uri, run_id).data.tags[TAG_HASH]


def _text_artifact(client: MlflowClient, run_id: str, path: str) -> str | None:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = client.download_artifacts(run_id, path, tmp)
        except Exception:  # absent artifact: MLflow raises various errors depending on the store
            return None
        return Path(local).read_text()


def _bytes_artifact(client: MlflowClient, run_id: str, path: str) -> bytes | None:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            return Path(client.download_artifacts(run_id, path, tmp)).read_bytes()
        except Exception:
            return None


def _curve(client: MlflowClient, run_id: str, key: str) -> list[float]:
    return [m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


def _checkpoint(client: MlflowClient, run: Run) -> tuple[bytes, str] | None:
    try:
        listed = client.list_artifacts(run.info.run_id, "checkpoint")
    except Exception:
        return None
    for item in listed:
        if item.path.endswith(".safetensors"):
            data = _bytes_artifact(client, run.info.run_id, item.path)
            if data is not None:
                return data, f"runs:/{run.info.run_id}/{item.path}"
    return None


def locate_in_mlflow(uri: str, *, key: str | None, best: bool, by: str | None, cell: str | None) -> Located:
    """One evaluation run of a tracking server, by run id / hash prefix, best by a metric, or archive cell."""
    client = _client(uri)
    ok = f"tags.`{TAG_KIND}` = 'evaluation' and tags.`{TAG_STATUS}` = 'ok'"
    if key is not None:
        key = key.strip().lower()
        if len(key) == 32:
            run = _get_run(client, uri, key)
        else:
            try:
                graph = lineage(uri, key, depth=0)
            except LineageError as exc:
                raise ExportError(str(exc)) from None
            run = _get_run(client, uri, str(graph.nodes[graph.root].run_id))
    elif best:
        metric, maximise = parse_by(by)
        run = None
        ranked_first = ("rank_score",) if (metric, maximise) == ("fitness", True) else ()  # status's order
        for name in (*ranked_first, metric, f"descriptor.{metric}"):
            runs = client.search_runs(active_experiments(client), ok, order_by=[
                f"metrics.`{name}` {'DESC' if maximise else 'ASC'}"], max_results=1)
            if runs and name in runs[0].data.metrics:
                run = runs[0]
                break
        if run is None:
            raise ExportError(f"--by {metric}: no successful evaluation run in {uri} has this metric")
    else:
        runs = client.search_runs(active_experiments(client), f"{ok} and tags.`{TAG_CELL}` = '{cell}'",
                                  order_by=["metrics.`fitness` DESC"], max_results=1)
        if not runs:
            raise ExportError(f"--cell {cell}: no evaluation run in {uri} landed in that cell")
        run = runs[0]
    return _located_from_run(client, uri, run)


def _detail(client: MlflowClient, run: Run) -> dict | None:
    """The run's latest row in the campaign run's detail file (:func:`search.tracking.payload.detail_row`)."""
    path, parent = run.data.tags.get(TAG_DETAIL), run.data.tags.get(TAG_PARENT_RUN)
    text = _text_artifact(client, parent, path) if path and parent else None
    rows = [json.loads(line) for line in (text or "").splitlines() if line.strip()]
    mine = [r for r in rows if r.get("genome_hash") == run.data.tags.get(TAG_HASH)]
    return mine[-1] if mine else None


def _located_from_run(client: MlflowClient, uri: str, run: Run) -> Located:
    run_id = run.info.run_id
    detail = _detail(client, run)
    if detail is not None:
        try:
            genome = Proposal.from_dict({"genes": detail["genes"], "schema": detail.get("schema", 1), "parents": [],
                                         "operator": ""}).genome
        except (GenomeError, SchemaError) as exc:
            raise ExportError(f"runs:/{run_id}: its genome in {run.data.tags.get(TAG_DETAIL)}: {exc}") from None
        ticks, certainty = list(detail.get("tick_accuracy") or []), list(detail.get("tick_certainty") or [])
    else:  # a store written before the detail files: genome.yaml and metric histories on the run
        text = _text_artifact(client, run_id, "genome.yaml")
        if text is None:
            raise ExportError(f"run {run_id} in {uri} has neither a detail file nor a genome.yaml artifact; export "
                              "from the campaign directory instead (--campaign DIR)")
        genome = genome_from_text(text, f"runs:/{run_id}/genome.yaml")
        ticks, certainty = _curve(client, run_id, "tick_accuracy"), _curve(client, run_id, "tick_certainty")
    record = record_from_run(run, genome, ticks=ticks, certainty=certainty)
    parent = run.data.tags.get(TAG_PARENT_RUN)
    config_text = _text_artifact(client, parent, "config.yaml") if parent else None
    try:
        config = parse_yaml(config_text, source=f"runs:/{parent}/config.yaml") if config_text else None
    except FileReadError as exc:
        raise ExportError(str(exc)) from None
    if not isinstance(config, dict) or "task" not in config:
        raise ExportError(f"run {run_id}: its campaign run has no config.yaml naming the task; export from the "
                          "campaign directory instead (--campaign DIR)")
    found = Located(record=record, task=TaskSpec.from_dict(config["task"]), run_id=run_id, tracking_uri=uri,
                    experiment_id=run.info.experiment_id, cell=run.data.tags.get(TAG_CELL),
                    exit_threshold=float((config.get("evaluation") or {}).get("exit_threshold", 0.8)))
    checkpoint = _checkpoint(client, run)
    if checkpoint is not None:
        found.checkpoint, found.checkpoint_source = checkpoint
    return found


def enrich_from_mlflow(found: Located) -> None:
    """Add the evaluation's run id, experiment, cell and (if none on disk) checkpoint from MLflow, if it has them.

    MLflow being away is not an error here: the bundle is made from the journal alone and the card says so.
    """
    uri = str(found.tracking_uri)
    try:
        client = _client(uri)
        if found.run_id is not None:
            run = client.get_run(found.run_id)
        else:
            query = (f"tags.`{TAG_KIND}` = 'evaluation' and tags.`{TAG_HASH}` = '{found.genome.hash}' and "
                     f"tags.`{TAG_CAMPAIGN}` = '{found.record.campaign}'")
            runs = client.search_runs(active_experiments(client), query, order_by=["attributes.start_time ASC"],
                                      max_results=1)
            if not runs:
                return
            run = runs[0]
    except Exception as exc:
        log.warning("MLflow at %s could not be read (%s); exporting from the journal alone", uri, exc)
        return
    found.run_id, found.experiment_id = run.info.run_id, run.info.experiment_id
    found.cell = found.cell or run.data.tags.get(TAG_CELL)
    if found.checkpoint is None:
        checkpoint = _checkpoint(client, run)
        if checkpoint is not None:
            found.checkpoint, found.checkpoint_source = checkpoint


__all__ = ["enrich_from_mlflow", "hash_of_run", "locate_in_mlflow"]

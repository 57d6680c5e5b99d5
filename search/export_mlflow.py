"""The MLflow side of ``ctmevo export``: find evaluation runs, fetch their artifacts, log the bundle's model.

Evaluation runs are the ones :mod:`search.tracking` writes (tags in :mod:`search.mlflow_payload`): the genes as
params, ``genome.yaml`` and (for kept elites) ``checkpoint/<hash>.safetensors`` as artifacts, the campaign's
``config.yaml`` on the parent campaign run. The logged model goes into an ``export`` run of the source run's
experiment, tagged ``ctmevo.source_run_id``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import yaml
from mlflow import MlflowClient
from mlflow.entities import Run, ViewType
from mlflow.exceptions import MlflowException

from ctm.result import TaskSpec
from search.export import (
    TAG_EXPORT_CAMPAIGN,
    TAG_EXPORT_HASH,
    TAG_SOURCE_RUN,
    ExportError,
    Located,
    genome_from_text,
    parse_by,
    record_from_run,
)
from search.mlflow_payload import TAG_CAMPAIGN, TAG_CELL, TAG_HASH, TAG_KIND, TAG_PARENT_RUN, TAG_STATUS
from search.tracking import configure_http_defaults

log = logging.getLogger("ctmevo.export")
EXPORT_EXPERIMENT = "ctmevo-exports"


def _client(uri: str) -> MlflowClient:
    configure_http_defaults()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no download bars in the CLI
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _experiments(client: MlflowClient) -> list[str]:
    return [e.experiment_id for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY)]


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
            from search.lineage import LineageError, lineage

            try:
                graph = lineage(uri, key, depth=0)
            except LineageError as exc:
                raise ExportError(str(exc)) from None
            run = _get_run(client, uri, str(graph.nodes[graph.root].run_id))
    elif best:
        metric, maximise = parse_by(by)
        run = None
        for name in (metric, f"descriptor.{metric}"):
            runs = client.search_runs(_experiments(client), ok, order_by=[
                f"metrics.`{name}` {'DESC' if maximise else 'ASC'}"], max_results=1)
            if runs and name in runs[0].data.metrics:
                run = runs[0]
                break
        if run is None:
            raise ExportError(f"--by {metric}: no successful evaluation run in {uri} has this metric")
    else:
        runs = client.search_runs(_experiments(client), f"{ok} and tags.`{TAG_CELL}` = '{cell}'",
                                  order_by=["metrics.`fitness` DESC"], max_results=1)
        if not runs:
            raise ExportError(f"--cell {cell}: no evaluation run in {uri} landed in that cell")
        run = runs[0]
    return _located_from_run(client, uri, run)


def _located_from_run(client: MlflowClient, uri: str, run: Run) -> Located:
    run_id = run.info.run_id
    text = _text_artifact(client, run_id, "genome.yaml")
    if text is None:
        raise ExportError(f"run {run_id} in {uri} has no genome.yaml artifact; export from the campaign directory "
                          "instead (--campaign DIR)")
    genome = genome_from_text(text, f"runs:/{run_id}/genome.yaml")
    record = record_from_run(run, genome, ticks=_curve(client, run_id, "tick_accuracy"),
                             certainty=_curve(client, run_id, "tick_certainty"))
    parent = run.data.tags.get(TAG_PARENT_RUN)
    config_text = _text_artifact(client, parent, "config.yaml") if parent else None
    config = yaml.safe_load(config_text) if config_text else None
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
            runs = client.search_runs(_experiments(client), query, order_by=["attributes.start_time ASC"],
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


def _export_experiment(client: MlflowClient, uri: str) -> str:
    experiment = client.get_experiment_by_name(EXPORT_EXPERIMENT)
    if experiment is not None:
        return experiment.experiment_id
    root = None
    if uri.startswith("sqlite:///"):  # artifacts beside the database, as search.tracking does
        root = (Path(uri[len("sqlite:///"):]).expanduser().resolve().parent / "mlartifacts").as_uri()
    return client.create_experiment(EXPORT_EXPERIMENT, root)


def log_bundle_model(out: Path, found: Located, *, registered_name: str | None = None) -> tuple[str, str]:
    """Log the bundle's model with ``mlflow.pytorch.log_model`` (genes as params, the evaluation's metrics
    linked to the logged model, the bundle files as artifacts); returns (export run id, model URI)."""
    import mlflow
    import mlflow.pytorch
    import torch

    from ctm.bundle import load_bundle

    uri = str(found.tracking_uri)
    bundle = load_bundle(out)
    client = _client(uri)
    experiment_id = found.experiment_id or _export_experiment(client, uri)
    genome = found.genome
    metrics = {k: float(v) for k, v in {"fitness": found.record.result.fitness, **found.record.result.metrics}.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
    tags = {TAG_KIND: "export", TAG_EXPORT_HASH: genome.hash, TAG_EXPORT_CAMPAIGN: found.record.campaign,
            TAG_SOURCE_RUN: found.run_id or "", "mlflow.note.content":
            f"Exported CTM {genome.hash} ({found.task.name}); bundle written to {out.resolve()}"}
    run_name = f"export-{genome.hash}"
    with scoped_tracking_uri(uri), mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags) as run:
        info = mlflow.pytorch.log_model(
            bundle.model, name="ctm", params={k: str(v) for k, v in genome.to_dict().items()},
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "numpy", "pyyaml", "safetensors"],
            metadata={"genome_hash": genome.hash, "task": found.task.to_dict(),
                      "note": "needs the ctm and genome packages of ctmevo importable"},
            registered_model_name=registered_name, serialization_format="pickle")
        if metrics:
            mlflow.log_metrics(metrics, model_id=info.model_id)
        mlflow.log_params({f"task.{k}": str(v) for k, v in {"name": found.task.name,
                                                              **found.task.params}.items()})
        mlflow.log_artifacts(str(out), artifact_path="bundle")
    return run.info.run_id, info.model_uri


@contextlib.contextmanager
def scoped_tracking_uri(uri: str) -> Iterator[None]:
    """Point MLflow's fluent API at ``uri`` for a block, then restore it and ``MLFLOW_TRACKING_URI``.

    ``mlflow.set_tracking_uri`` also writes the environment variable, which child processes inherit; without
    the restore, a later ``ctmevo`` subprocess would silently track into another store.
    """
    import mlflow

    env_before = os.environ.get("MLFLOW_TRACKING_URI")
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)
        if env_before is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = env_before


def attach_file(uri: str, run_id: str, path: Path, artifact_dir: str = "bundle") -> None:
    _client(uri).log_artifact(run_id, str(path), artifact_dir)


def run_link(uri: str | None, experiment_id: str | None, run_id: str | None) -> str | None:
    """A browser link for http(s) tracking servers; None for local stores."""
    if not (uri and run_id and experiment_id) or not uri.startswith(("http://", "https://")):
        return None
    return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


__all__ = ["attach_file", "enrich_from_mlflow", "hash_of_run", "locate_in_mlflow", "log_bundle_model", "run_link"]

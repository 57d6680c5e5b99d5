"""Registering an exported bundle in MLflow as a PyTorch model, in an ``export`` run of the source experiment."""

from __future__ import annotations

import math
from pathlib import Path

from mlflow import MlflowClient

from search.export.located import Located
from search.tracking.client import client as _client
from search.tracking.client import ensure_experiment, scoped_tracking_uri
from search.tracking.payload import TAG_EXPORT_CAMPAIGN, TAG_EXPORT_HASH, TAG_KIND, TAG_SOURCE_RUN

__all__ = ["EXPORT_EXPERIMENT", "attach_file", "log_bundle_model"]

EXPORT_EXPERIMENT = "ctmevo-exports"


def _export_experiment(client: MlflowClient, uri: str) -> str:
    return ensure_experiment(client, uri, EXPORT_EXPERIMENT)


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


def attach_file(uri: str, run_id: str, path: Path, artifact_dir: str = "bundle") -> None:
    _client(uri).log_artifact(run_id, str(path), artifact_dir)

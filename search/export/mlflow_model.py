"""Registering an exported bundle in MLflow as a PyTorch model, in an ``export`` run of its own experiment.

Export runs live in the experiment ``ctmevo-exports``, never among a campaign's evaluation runs (whose list,
sorted by fitness, must show each genome once); each links to its source evaluation run (tag
``ctmevo.source_run_id`` and its description). The logged model is MLflow's pytorch flavour, a pickled module:
MLflow's warning about pickles is kept out of the terminal and said once, in the model card, instead; the
bundle's ``weights.safetensors`` is the form to share.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from pathlib import Path

from mlflow import MlflowClient

from search.export.located import Located
from search.tracking.client import client as _client
from search.tracking.client import ensure_experiment, scoped_tracking_uri
from search.tracking.notes import run_url
from search.tracking.payload import TAG_EXPORT_CAMPAIGN, TAG_EXPORT_HASH, TAG_KIND, TAG_NOTE, TAG_SOURCE_RUN

__all__ = ["EXPORT_EXPERIMENT", "attach_file", "log_bundle_model"]

EXPORT_EXPERIMENT = "ctmevo-exports"


def _export_experiment(client: MlflowClient, uri: str) -> str:
    return ensure_experiment(client, uri, EXPORT_EXPERIMENT)


class _NoPickleWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Saving pytorch model by Pickle")


@contextlib.contextmanager
def _quiet_pickle_warning() -> Iterator[None]:
    """Drop mlflow.pytorch's pickle warning (the model card says it instead), nothing else."""
    logger, quiet = logging.getLogger("mlflow.pytorch"), _NoPickleWarning()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


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
    experiment_id = _export_experiment(client, uri)
    genome = found.genome
    metrics = {k: float(v) for k, v in {"fitness": found.record.result.fitness, **found.record.result.metrics}.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
    source = (f"[{found.run_id}]({run_url(found.experiment_id, found.run_id)})"
              if found.run_id and found.experiment_id else "not in MLflow")
    tags = {TAG_KIND: "export", TAG_EXPORT_HASH: genome.hash, TAG_EXPORT_CAMPAIGN: found.record.campaign,
            TAG_SOURCE_RUN: found.run_id or "", TAG_NOTE:
            f"Exported CTM `{genome.hash}` ({found.task.name}) of campaign `{found.record.campaign}`; source "
            f"evaluation run: {source}; bundle written to `{out.resolve()}`."}
    run_name = f"export-{genome.hash}"
    with scoped_tracking_uri(uri), _quiet_pickle_warning(), mlflow.start_run(experiment_id=experiment_id,
                                                                              run_name=run_name, tags=tags) as run:
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

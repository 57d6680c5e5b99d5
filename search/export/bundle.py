"""Writing an export bundle: genome, model, the search's weights when kept, the model card; MLflow logging."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ctm.bundle import CARD_FILE, BundleError, BundleExistsError, read_manifest, write_bundle
from ctm.result import TaskSpec
from genome.io import write_bytes_atomic
from search.export.card import model_card
from search.export.located import ExportError, Located

__all__ = ["Exported", "export", "train_command"]


@dataclass
class Exported:
    bundle: Path
    located: Located
    export_run_id: str | None = None
    model_uri: str | None = None
    warning: str | None = None


def train_command(out: Path, task: TaskSpec) -> str:
    params = " ".join(f"--param {k}={v}" for k, v in task.params.items())
    return f"ctmevo train {out} --task {task.name} {params} --steps 10000 --device cuda".replace("  ", " ")


def export(found: Located, out: str | Path, *, register: bool = True, overwrite: bool = False,
           registered_name: str | None = None) -> Exported:
    """Write the bundle for ``found`` to ``out`` and (``register``) log it to MLflow as a PyTorch model."""
    out = Path(out)
    source = {"campaign": found.record.campaign, "campaign_dir": str(found.campaign_dir or ""),
              "run_id": found.run_id, "tracking_uri": found.tracking_uri, "experiment_id": found.experiment_id,
              "fitness": found.record.result.fitness, "mean_fitness": found.mean_fitness, "seeds": found.seeds,
              "cell": found.cell, "birth": found.record.birth,
              "checkpoint": found.checkpoint_source}
    try:
        write_bundle(out, genome=found.genome, task_spec=found.task, weights=found.checkpoint,
                     model_seed=found.record.result.seed, source=source, overwrite=overwrite)
    except BundleExistsError as exc:
        raise ExportError(f"--out {exc.path}: the directory is not empty; choose another --out, or add --force to "
                          "replace what is there (overwrite=True in Python)") from None
    except BundleError as exc:
        raise ExportError(str(exc)) from None
    result = Exported(bundle=out, located=found)
    if register and found.tracking_uri:
        from search.export.mlflow_model import log_bundle_model

        try:
            result.export_run_id, result.model_uri = log_bundle_model(out, found, registered_name=registered_name)
        except Exception as exc:  # the bundle stands on its own; MLflow being away must not lose it
            result.warning = f"the model was not registered in MLflow at {found.tracking_uri}: {exc}"
    card = model_card(found, read_manifest(out), out=out, train=train_command(out, found.task),
                      export_run_id=result.export_run_id, model_uri=result.model_uri)
    write_bytes_atomic(out / CARD_FILE, card.encode())
    if result.export_run_id:
        from search.export.mlflow_model import attach_file

        attach_file(str(found.tracking_uri), result.export_run_id, out / CARD_FILE)
    return result



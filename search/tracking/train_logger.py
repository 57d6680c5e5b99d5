"""Logs a ``ctmevo train`` run to MLflow, linked to the evaluation its bundle came from."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param

from search.tracking.client import client as mlflow_client
from search.tracking.client import ensure_experiment
from search.tracking.notes import run_url
from search.tracking.payload import TAG_KIND, TAG_NOTE, TAG_SOURCE_RUN

__all__ = ["MLFLOW_STATE", "MlflowTrainLogger"]

log = logging.getLogger("ctmevo.train")
MLFLOW_STATE = "mlflow_run.json"


class MlflowTrainLogger:
    """Logs a training run to MLflow, linked to the source evaluation (the :class:`ctm.train.TrainCallback` hooks,
    duck-typed so that this module does not import torch before the command runs).

    Tags: ``ctmevo.kind = training``, ``ctmevo.train.genome_hash``, ``ctmevo.source_run_id``. A resumed
    training continues the same MLflow run (its id is kept in ``OUT/mlflow_run.json``). MLflow failures are
    logged as warnings and never stop training.
    """

    FLUSH_EVERY = 200

    def __init__(self, uri: str, *, experiment: str, out_dir: Path, source: dict[str, Any]):
        self.uri, self.experiment, self.out_dir, self.source = uri, experiment, Path(out_dir), source
        self.run_id: str | None = None
        self.experiment_id: str | None = None
        self._client: Any = None
        self._buffer: list[Any] = []

    def _safe(self, what: str, fn: Any, *a: Any, **kw: Any) -> Any:
        if self._client is None:
            return None
        try:
            return fn(*a, **kw)
        except Exception as exc:
            log.warning("MLflow %s failed (%s); training goes on without MLflow", what, exc)
            self._client = None
            return None

    def on_start(self, info: dict[str, Any]) -> None:
        self._client = mlflow_client(self.uri)
        state_file = self.out_dir / MLFLOW_STATE
        state = json.loads(state_file.read_text()) if state_file.is_file() else {}
        if info["start_step"] > 0 and state.get("tracking_uri") == self.uri and state.get("run_id"):
            self.run_id = state["run_id"]
            self._safe("resume", self._client.update_run, self.run_id, status="RUNNING")
            return
        exp = self.experiment_id = self._safe("experiment", self._experiment)
        genome = info["genome"]
        tags = {TAG_KIND: "training", "ctmevo.train.genome_hash": genome.hash,
                TAG_SOURCE_RUN: str(self.source.get("run_id") or ""),
                "ctmevo.source_campaign": str(self.source.get("campaign") or ""),
                "ctmevo.task": json.dumps(info["task"].to_dict()), TAG_NOTE: self._note(genome.hash, info)}
        run = self._safe("create run", self._client.create_run, exp, run_name=f"train-{genome.hash}",
                         tags=tags) if exp else None
        if run is None:
            return
        self.run_id = run.info.run_id
        params = {**{k: str(v) for k, v in genome.to_dict().items()},
                  **{f"train.{k}": str(v) for k, v in info["config"].to_dict().items()}}
        self._safe("params", self._client.log_batch, self.run_id, params=[Param(k, v) for k, v in params.items()])
        state_file.parent.mkdir(parents=True, exist_ok=True)
        state_file.write_text(json.dumps({"tracking_uri": self.uri, "run_id": self.run_id}))

    def _note(self, genome_hash: str, info: dict[str, Any]) -> str:
        run, exp = self.source.get("run_id"), self.source.get("experiment_id")
        same = self.source.get("tracking_uri") == self.uri
        link = f"[{run}]({run_url(str(exp), str(run))})" if run and exp and same else f"`{run}`" if run else "none"
        return (f"Full training of CTM `{genome_hash}` on `{info['task'].name}` for {info['config'].steps} steps "
                f"(`ctmevo train`). Source evaluation run: {link}"
                + (f" in campaign `{self.source['campaign']}`" if self.source.get("campaign") else "")
                + (f" at `{self.source.get('tracking_uri')}`" if run and not same else "") + ".")

    def _experiment(self) -> str:
        return ensure_experiment(self._client, self.uri, self.experiment)

    def _metrics(self, step: int, values: dict[str, float]) -> None:
        ts = int(time.time() * 1000)
        self._buffer += [Metric(k, float(v), ts, step) for k, v in values.items() if v == v]

    def _flush(self) -> None:
        if self._buffer and self.run_id:
            batch, self._buffer = self._buffer, []
            for i in range(0, len(batch), 1000):
                self._safe("metrics", self._client.log_batch, self.run_id, metrics=batch[i:i + 1000])

    def on_log(self, step: int, metrics: dict[str, float]) -> None:
        self._metrics(step, metrics)
        if len(self._buffer) >= self.FLUSH_EVERY:
            self._flush()

    def on_eval(self, step: int, metrics: dict[str, float], per_tick_accuracy: list[float]) -> None:
        self._metrics(step, metrics)
        self._flush()

    def on_checkpoint(self, step: int, path: Path) -> None:
        self._flush()

    def on_end(self, result: Any, status: str) -> None:
        if self._client is None or self.run_id is None:
            return
        final = result.final
        for name, key in (("tick_accuracy", "per_tick_accuracy"), ("tick_certainty", "per_tick_certainty")):
            for tick, value in enumerate(final.get(key) or [], start=1):
                self._metrics(tick, {name: value})
        self._flush()
        if result.bundle is not None:
            self._safe("artifacts", self._client.log_artifacts, self.run_id, str(result.bundle), "bundle")
        mlflow_status = {"finished": "FINISHED", "interrupted": "KILLED"}.get(status, "FAILED")
        self._safe("status", self._client.set_terminated, self.run_id, mlflow_status)

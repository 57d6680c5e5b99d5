"""The open-ended campaign in MLflow: one run (``ctmevo.kind = open-ended``) beside the task campaigns' runs.

Per round it logs the measures (``annecs``, ``tasks_solved``, ``hardest_solved_<axis>``, ``transfers_tried``,
``transfers_accepted``, ``train_steps_spent``) and each task's best (``best.<task id>``); its description is the
table of tasks (parameters, parent, best, solved in round, active or retired) and the campaign runs of the
tasks carry the tag ``ctmevo.task``. The run's id is kept in ``open_ended_run.json`` so a resumed campaign logs
into the same run, and at the end the campaign's picture (``plots/open_ended.png``) is attached under ``plots/``.
MLflow being away costs a warning, never the campaign: the journal has everything.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

from search.journal import read_json, write_atomic
from search.open_ended.state import OpenEndedState, task_table
from search.tracking.client import client, ensure_experiment, first_line
from search.tracking.payload import TAG_CAMPAIGN, TAG_KIND

__all__ = ["TAG_TASK", "MeasuresRun"]

TAG_TASK = "ctmevo.task"
log = logging.getLogger("ctmevo.open_ended")


class MeasuresRun:
    """Logs an open-ended campaign's measures into its MLflow run (see the module doc)."""

    def __init__(self, *, uri: str, experiment: str, name: str, root: Path) -> None:
        """The run of the open-ended campaign ``name`` in directory ``root`` (created, or found again)."""
        self.uri, self.root = uri, root
        self.file = root / "open_ended_run.json"
        self.run_id: str | None = None
        self._tagged: set[str] = set()
        self._warned = False
        try:
            self.client = client(uri)
            self.experiment_id = ensure_experiment(self.client, uri, experiment)
            if self.file.exists():
                self.run_id = str(read_json(self.file)["run_id"])
                self.client.update_run(self.run_id, status="RUNNING")
            else:
                run = self.client.create_run(self.experiment_id, run_name=f"{name} (open-ended)",
                                             tags={TAG_KIND: "open-ended"})
                self.run_id = run.info.run_id
                write_atomic(self.file, {"run_id": self.run_id})
        except Exception as exc:  # MLflow away: the journal has everything (ctmevo status reads it)
            self._away(exc)

    def _away(self, exc: BaseException) -> None:
        if not self._warned:
            log.warning("MLflow (%s): %s; the open-ended measures stay in the journal", self.uri, first_line(exc))
        self._warned = True
        self.run_id = None

    def log(self, round_: int, measures: dict[str, float], state: OpenEndedState, axes: Sequence[str]) -> None:
        """The ``measures`` of round ``round_`` (step = the round), each task's best and the table of tasks."""
        if self.run_id is None:
            return
        now = int(time.time() * 1000)
        values: dict[str, float] = dict(measures)
        values.update({f"best.{t.id}": t.best for t in state.tasks.values() if t.best is not None})
        try:
            from mlflow.entities import Metric, RunTag

            self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, round_) for k, v in values.items()],
                                  tags=[RunTag("mlflow.note.content", task_table(state, axes))])
            self._tag_tasks(state)
        except Exception as exc:
            self._away(exc)

    def _tag_tasks(self, state: OpenEndedState) -> None:
        """Tag each task's campaign run with its task id (found by the campaign id the task campaign wrote)."""
        for task in state.tasks.values():
            if task.id in self._tagged:
                continue
            meta = self.root / "tasks" / task.id / "campaign.json"
            if not meta.exists():
                continue
            campaign_id = read_json(meta)["campaign_id"]
            runs = self.client.search_runs([self.experiment_id], f"tags.`{TAG_CAMPAIGN}` = '{campaign_id}' and "
                                           f"tags.`{TAG_KIND}` = 'campaign'", max_results=1)
            for run in runs:
                self.client.set_tag(run.info.run_id, TAG_TASK, task.id)
                self.client.set_tag(run.info.run_id, "mlflow.parentRunId", self.run_id or "")
                self._tagged.add(task.id)

    def finish(self, status: str, *, picture: Path | None = None) -> None:
        """End the run with ``status``, with the campaign's ``picture`` (``plots/open_ended.png``) attached."""
        if self.run_id is None:
            return
        try:
            if picture is not None and picture.exists():
                self.client.log_artifact(self.run_id, str(picture), "plots")
            self.client.set_terminated(self.run_id, status=status)
        except Exception as exc:
            self._away(exc)

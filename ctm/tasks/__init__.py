"""Tasks: built-ins by name (``parity``, ``maze``, ``pomaze``, ``sort``, ``array``) or a user's ``module:Class``."""

from __future__ import annotations

from typing import Any

from ctm.result import TaskSpec
from ctm.tasks.array import ArrayTask
from ctm.tasks.base import ClassificationTask, Scores, Task, TaskError, TaskMismatch
from ctm.tasks.maze import MazeTask
from ctm.tasks.parity import ParityTask
from ctm.tasks.pomaze import PartialMazeTask
from ctm.tasks.sort import SortTask
from ctm.tasks.user import load_user_task

BUILTIN_TASKS: dict[str, Any] = {"parity": ParityTask, "maze": MazeTask, "pomaze": PartialMazeTask, "sort": SortTask,
                                  "array": ArrayTask}


def make_task(spec: TaskSpec | dict[str, Any]) -> Any:
    """Build a task from a :class:`ctm.result.TaskSpec` (or its dict form)."""
    if isinstance(spec, dict):
        if "name" not in spec:
            raise TaskError(f"task = {spec!r}: allowed is a mapping with a 'name' (and optional 'params')")
        spec = TaskSpec.from_dict(spec)
    if not isinstance(spec.params, dict):
        raise TaskError(f"task.params = {spec.params!r}: allowed is a mapping of parameter name to value")
    if not isinstance(spec.name, str):
        raise TaskError(f"task.name = {spec.name!r}: allowed is one of {sorted(BUILTIN_TASKS)} or 'module:Class'")
    if ":" in spec.name:
        return load_user_task(spec.name, spec.params)
    if spec.name not in BUILTIN_TASKS:
        raise TaskError(f"task.name = {spec.name!r}: allowed is one of {sorted(BUILTIN_TASKS)} or 'module:Class'")
    return BUILTIN_TASKS[spec.name].from_params(spec.params)


__all__ = ["BUILTIN_TASKS", "ArrayTask", "ClassificationTask", "MazeTask", "ParityTask", "PartialMazeTask", "Scores",
           "SortTask", "Task", "TaskError", "TaskMismatch", "make_task"]

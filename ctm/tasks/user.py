"""User tasks named ``module:Class``: the class is imported and built as ``Class(**params)``.

The object must follow the task interface (``ctm.tasks.base``): a ``shape`` (``genome.cost.TaskShape``) and
callables ``batch``, ``loss`` and ``score``. Subclassing ``ctm.tasks.base.ClassificationTask`` gives ``loss``
and ``score`` for per-position classification, so a user needs only ``shape`` and ``batch``.
"""

from __future__ import annotations

import importlib
from typing import Any

from ctm.tasks.base import TaskError
from genome.cost import TaskShape

REQUIRED_METHODS = ("batch", "loss", "score")


def load_user_task(name: str, params: dict[str, Any]) -> Any:
    module_name, _, class_name = name.partition(":")
    if not module_name or not class_name:
        raise TaskError(f"task.name = {name!r}: allowed is a built-in task or 'module:Class'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TaskError(f"task.name = {name!r}: module {module_name!r} cannot be imported ({exc})") from exc
    cls = getattr(module, class_name, None)
    if cls is None or not callable(cls):
        raise TaskError(f"task.name = {name!r}: module {module_name!r} has no class {class_name!r}")
    try:
        task = cls(**params)
    except TypeError as exc:
        raise TaskError(f"task {name!r}: params = {params!r} do not fit {class_name}(...): {exc}") from exc
    missing = [m for m in REQUIRED_METHODS if not callable(getattr(task, m, None))]
    if missing or not isinstance(getattr(task, "shape", None), TaskShape):
        what = ", ".join(missing + ([] if isinstance(getattr(task, "shape", None), TaskShape) else ["shape"]))
        raise TaskError(f"task.name = {name!r}: {class_name} lacks {what}: allowed is an object with a "
                        "genome.cost.TaskShape `shape` and methods batch, loss and score (see ctm.tasks.base)")
    return task

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
from genome.errors import quoted

REQUIRED_METHODS = ("batch", "loss", "score")


def load_user_task(name: str, params: dict[str, Any]) -> Any:
    """``Class(**params)`` from ``module:Class``; :class:`TaskError` naming the task for anything that goes wrong
    (a module that does not import, a syntax error in it, a missing class, a constructor that raises)."""
    module_name, _, class_name = name.partition(":")
    if not module_name or not class_name:
        raise TaskError(f"task.name = {quoted(name)}: allowed is a built-in task or 'module:Class'")
    try:
        module = importlib.import_module(module_name)
    except SyntaxError as exc:
        where = f"{exc.filename}, line {exc.lineno}" if exc.filename else f"line {exc.lineno}"
        raise TaskError(f"task.name = {quoted(name)}: module {module_name!r} has a syntax error ({where}: "
                        f"{exc.msg}); fix the module, then check it with: python -c 'import {module_name}'") from None
    except ImportError as exc:
        raise TaskError(f"task.name = {quoted(name)}: module {module_name!r} cannot be imported ({exc}); it must "
                        "be importable from the directory you run ctmevo in (or on PYTHONPATH)") from None
    except Exception as exc:  # the module's own code raised while importing
        raise TaskError(f"task.name = {quoted(name)}: importing module {module_name!r} raised "
                        f"{_first_line(exc)}; fix the module, then check it with: python -c 'import "
                        f"{module_name}'") from None
    cls = getattr(module, class_name, None)
    if cls is None or not callable(cls):
        raise TaskError(f"task.name = {quoted(name)}: module {module_name!r} has no class {class_name!r}")
    try:
        task = cls(**params)
    except TypeError as exc:
        raise TaskError(f"task.params = {quoted(params)}: allowed is what {class_name}(...) accepts: "
                        f"{_first_line(exc)}") from None
    except Exception as exc:
        raise TaskError(f"task.params = {quoted(params)}: {class_name}(**params) raised {_first_line(exc)}; "
                        f"check the params of task {name!r}") from None
    missing = [m for m in REQUIRED_METHODS if not callable(getattr(task, m, None))]
    if missing or not isinstance(getattr(task, "shape", None), TaskShape):
        what = ", ".join(missing + ([] if isinstance(getattr(task, "shape", None), TaskShape) else ["shape"]))
        raise TaskError(f"task.name = {quoted(name)}: {class_name} lacks {what}: allowed is an object with a "
                        "genome.cost.TaskShape `shape` and methods batch, loss and score (see ctm.tasks.base)")
    return task


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:300]}" if lines else type(exc).__name__

"""ctmevo's Continuous Thought Machine: the model, its tasks and the fitness evaluation.

``build_model``, ``make_task``, ``evaluate``, ``inherit`` (a child's start from its parent's weights:
:mod:`ctm.inherit`), ``load_bundle`` and the evaluation-state functions
(``pack_state``, ``unpack_state``, ``weights_only``: :mod:`ctm.eval_state`) load torch on first use, so
``import ctm.result`` (plain data, used by workers and search) never imports torch.
"""

from __future__ import annotations

from typing import Any

from ctm.result import BEHAVIOUR_POINTS, EvalBudget, EvalResult, Failure, ParentWeights, TaskSpec

_LAZY = {"build_model": "ctm.build", "make_task": "ctm.tasks", "evaluate": "ctm.evaluation",
         "load_bundle": "ctm.bundle", "EvalState": "ctm.eval_state", "EvalStateError": "ctm.eval_state",
         "pack_state": "ctm.eval_state", "unpack_state": "ctm.eval_state", "weights_only": "ctm.eval_state",
         "load_reference_checkpoint": "ctm.reference", "import_reference": "ctm.reference",
         "export_reference": "ctm.reference", "inherit": "ctm.inherit"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ctm' has no attribute {name!r}")


__all__ = ["BEHAVIOUR_POINTS", "EvalBudget", "EvalResult", "EvalState", "EvalStateError", "Failure", "ParentWeights",
           "TaskSpec", "build_model", "evaluate", "export_reference", "import_reference", "inherit", "load_bundle",
           "load_reference_checkpoint", "make_task", "pack_state", "unpack_state", "weights_only"]

"""Open-ended campaigns: the room that runs tasks which grow harder as their archives master them (POET's loop).

=====================  ======================================================================================
``driver``             :class:`OpenEnded`: rounds of task slices, transfers and new tasks, resumable anywhere
``tasks``              pure rules: task mutation and proposal, the minimal criterion, PATA-EC novelty
``state``              the campaign's state, rebuilt event by event from ``open_ended.jsonl``; the measures
``work``               screens and transfers: elites fine-tuned on another task, adopted by its campaign
``tracking``           the open-ended run in MLflow: measures per round, the table of tasks
``picture``            ``plots/open_ended.png``: each task's best and ANNECS against the campaign's compute
=====================  ======================================================================================

A campaign file with an ``open_ended:`` section (``search.campaign.config.OpenEndedSection``) is run by
``ctmevo run`` as an open-ended campaign; every task is an ordinary campaign in ``tasks/<id>/``.

May import: ``search.campaign`` and every room below it, and the layers below ``search``.
Members are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_API = {"OpenEnded": "search.open_ended.driver", "is_open_ended": "search.paths",
        "OpenEndedState": "search.open_ended.state", "minimal_criterion": "search.open_ended.tasks",
        "mutate": "search.open_ended.tasks", "novelty": "search.open_ended.tasks", "pata_ec": "search.open_ended.tasks",
        "propose": "search.open_ended.tasks", "draw_progress": "search.open_ended.picture"}
__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'search.open_ended' has no attribute {name!r}")

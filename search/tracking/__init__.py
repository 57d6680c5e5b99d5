"""Tracking: everything ctmevo writes to and reads from MLflow.

=====================  ======================================================================================
``client``             one way to open a client: HTTP defaults, experiments, artifact roots, links
``payload``            what an evaluation run holds: tags, params (genes), metrics, its note; experiment tags
``writers``            batched writes of many runs: one SQL transaction per batch, or threads on a server
``archiver``           :class:`MlflowArchiver`: a campaign run and one run per evaluation, exactly once
``errors``             what can go wrong with a store (importable without MLflow)
``lineages``           ancestry read from MLflow runs (the graph itself: :mod:`search.lineage`)
``family``             the whole campaign's family tree and its archive as interactive pages (``family_page``:
                       their style and script)
``relocate``           a moved local store pointed at the artifacts beside it (``ctmevo relocate``)
``train_logger``       logs a ``ctmevo train`` run, linked to its source evaluation
=====================  ======================================================================================

May import: the modules directly in ``search/`` (records, journal, errors, text) and the layers below; never
``search.campaign``, ``search.export`` or ``search.cli``. Members are imported on first use (MLflow takes
seconds to import).
"""

from __future__ import annotations

import importlib
from typing import Any

_API = {
    "MlflowArchiver": "search.tracking.archiver", "TrackingURIError": "search.tracking.errors",
    "TrackingUnavailable": "search.tracking.errors", "LineageGraph": "search.lineage",
    "LineageError": "search.lineage", "AmbiguousHashError": "search.lineage",
    "lineage": "search.tracking.lineages", "lineage_from_records": "search.lineage",
    "MlflowTrainLogger": "search.tracking.train_logger", "write_family_views": "search.tracking.family",
    "relocate_store": "search.tracking.relocate",
}
__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'search.tracking' has no attribute {name!r}")

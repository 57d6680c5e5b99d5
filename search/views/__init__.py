"""Views of a campaign: what a person looks at while it runs and after, all derived from its journal.

=====================  ======================================================================================
``progress``           the counts and metrics the loop updates after every result (what the views show)
``reporter``           what the loop reports to: metric history, live view, the consumers of the journal
``consumers``          a consumer of the journal on its own thread, with a durable cursor
``observers``          the two consumers: the MLflow archive and the pictures
``live``               the live view (terminal panel or log lines)
``pictures``           archive heatmaps, metrics over evaluations, the archive table
``summary``            ``ctmevo status``: a campaign read from its directory, no process attached
``index``              ``index.sqlite``: counts, standings, ancestry and run ids, so status and lineage read rows
=====================  ======================================================================================

Views only read: the journal is the source of truth and nothing here writes to it. The loop
(:mod:`search.campaign`) is handed a :class:`Reporter`; it never waits on a view.

May import: ``search.tracking``, ``search.strategies`` and the modules directly in ``search/``, and the layers
below (``workers``, ``ctm``, ``genome``).
"""

from __future__ import annotations

import importlib
from typing import Any

_API = {
    "Progress": "search.views.progress", "spent_text": "search.views.progress",
    "Reporter": "search.views.reporter", "CampaignReporter": "search.views.reporter",
    "QuietReporter": "search.views.reporter",
    "KeptReporter": "search.views.reporter", "sync": "search.views.reporter",
    "summarise": "search.views.summary",
    "CampaignIndex": "search.views.index", "index_lineage": "search.views.index",
}
__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'search.views' has no attribute {name!r}")

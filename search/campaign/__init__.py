"""Campaigns: the room that runs a search. A campaign file in, a campaign directory out.

=====================  ======================================================================================
``config``             the campaign file (pydantic schema), validated completely before anything runs
``paths``              the layout of a campaign directory
``loop``               :class:`Campaign`: ask → journal → submit → poll → journal → tell
``rungs``              fidelity rungs (asynchronous successive halving) and repeated seeds: what runs next
``jobs``               the evaluation job of a genome at a rung and seed (budget, seed, state to continue)
``replay``             resuming: the snapshot, then the journal's events as they happened
``state``              the small snapshot the loop restarts from (the journal holds the rest)
``repair``             weights that should be on disk and are not, evaluated again
``signals``            Ctrl-C deferred to a safe point of the loop
``progress``           counts and metrics after every result
``reporter``           what the loop reports to: metric history, live view, the consumers of the journal
``consumers``          a consumer of the journal on its own thread, with a durable cursor
``observers``          the two consumers: the MLflow archive and the pictures
``live``               the live view (terminal panel or log lines)
``pictures``           archive heatmaps, metrics over evaluations, the archive table
=====================  ======================================================================================

May import: ``search.strategies``, ``search.tracking`` and the modules directly in ``search/`` (records,
descriptors, archive, journal, errors, text), and the layers below (``workers``, ``ctm``, ``genome``).
Members are imported on first use, so ``import search.campaign`` is cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_API = {
    "Campaign": "search.campaign.loop", "evaluation_seed": "search.campaign.jobs", "start": "search.campaign.loop",
    "RungScheduler": "search.campaign.rungs", "JobKey": "search.campaign.rungs",
    "lock_campaign": "search.campaign.paths", "STATE_VERSION": "search.campaign.state",
    "CampaignConfig": "search.campaign.config", "load_campaign_config": "search.campaign.config",
    "parse_campaign_config": "search.campaign.config", "CampaignPaths": "search.campaign.paths",
    "default_tracking_uri": "search.campaign.paths", "Progress": "search.campaign.progress",
    "CampaignReporter": "search.campaign.reporter", "Reporter": "search.campaign.reporter",
    "QuietReporter": "search.campaign.reporter",
}
__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'search.campaign' has no attribute {name!r}")

"""Campaigns: the room that runs a search. A campaign file in, a campaign directory out.

=====================  ======================================================================================
``config``             the campaign file (pydantic schema), validated completely before anything runs
``paths``              the layout of a campaign directory
``loop``               :class:`Campaign`: ask → journal → submit → poll → journal → tell; snapshots; resume
``progress``           counts and metrics after every result
``reporter``           what the loop reports to: MLflow records, pictures, the live view
``live``               the live view (terminal panel or log lines)
``pictures``           archive heatmaps, metrics over evaluations, the archive table
``family_views``       the family tree and archive pages (HTML), refreshed with the pictures
=====================  ======================================================================================

May import: ``search.strategies``, ``search.tracking`` and the modules directly in ``search/`` (records,
descriptors, archive, journal, errors, text), and the layers below (``workers``, ``ctm``, ``genome``).
Members are imported on first use, so ``import search.campaign`` is cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_API = {
    "Campaign": "search.campaign.loop", "evaluation_seed": "search.campaign.loop", "start": "search.campaign.loop",
    "lock_campaign": "search.campaign.loop", "STATE_VERSION": "search.campaign.loop",
    "CampaignConfig": "search.campaign.config", "load_campaign_config": "search.campaign.config",
    "parse_campaign_config": "search.campaign.config", "CampaignPaths": "search.campaign.paths",
    "default_tracking_uri": "search.campaign.paths", "Progress": "search.campaign.progress",
    "CampaignReporter": "search.campaign.reporter", "Reporter": "search.campaign.reporter",
}
__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'search.campaign' has no attribute {name!r}")

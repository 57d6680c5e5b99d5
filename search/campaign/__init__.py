"""Campaigns: the room that runs a search. A campaign file in, a campaign directory out.

=====================  ======================================================================================
``config``             the campaign file (pydantic schema), validated completely before anything runs
``loop``               :class:`Campaign`: ask → journal → submit → poll → journal → tell
``create``             :func:`start`: a campaign from a file, in a new directory or fresh over an old one
``rungs``              fidelity rungs (asynchronous successive halving) and repeated seeds: what runs next
``jobs``               the evaluation job of a genome at a rung and seed (budget, seed, state to continue)
``replay``             resuming: the snapshot, then the journal's events as they happened
``state``              the small snapshot the loop restarts from (the journal holds the rest)
``repair``             weights that should be on disk and are not, evaluated again
``signals``            Ctrl-C deferred to a safe point of the loop
``sidecar``            the process running a large campaign's consumers (MLflow, pictures) beside the loop
=====================  ======================================================================================

What a person looks at while and after a campaign runs (the live view, MLflow, pictures, the summary) lives in
the room below, :mod:`search.views`; the directory layout is :mod:`search.paths`.

May import: ``search.views``, ``search.tracking``, ``search.strategies`` and the modules directly in
``search/``, and the layers below (``workers``, ``ctm``, ``genome``).
Members are imported on first use, so ``import search.campaign`` is cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_API = {
    "Campaign": "search.campaign.loop", "evaluation_seed": "search.campaign.jobs", "start": "search.campaign.create",
    "RungScheduler": "search.campaign.rungs", "JobKey": "search.campaign.rungs",
    "STATE_VERSION": "search.campaign.state",
    "CampaignConfig": "search.campaign.config", "load_campaign_config": "search.campaign.config",
    "parse_campaign_config": "search.campaign.config",
}
__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'search.campaign' has no attribute {name!r}")

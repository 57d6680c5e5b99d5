"""ctmevo's search: strategies behind one ask/tell contract, and the rooms that run, track and export campaigns.

The ask/tell loop (``search.campaign.loop``)::

    proposals = strategy.ask(free worker slots)      → journal (fsync) → workers: evaluate
    result    = pool.poll()                          → journal (fsync) → strategy.tell(result, descriptors)
                                                     → reporter: MLflow run, pictures, live view

Where things live:

=====================  ======================================================================================
``records``            :class:`Proposal`, :class:`EvaluationRecord` (plain data); ranking records by a metric
``descriptors``        behaviour descriptors: named functions of (genome, result) with a range for binning
``archive``            :class:`QDArchive` (grid or CVT; fidelity rungs and seeds) and its QD metrics
``journal``            the append-only JSON-lines journal and atomic snapshots (durable files)
``lineage``            ancestry graphs (nodes, walk, renderers) from journal records; no MLflow
``paths``              the layout of a campaign directory and its lock
``errors``             the user-facing errors, one hierarchy
``strategies/``        MAP-Elites, CVT, novelty, NSLC, DNS, random, regularised evolution, Optuna, EvoTorch
``campaign/``          campaign files, the loop, rungs and repeats, snapshots and resume
``views/``             what a person looks at: live view, MLflow and picture consumers, pictures, status summary
``tracking/``          MLflow: batched writers, the archive of a campaign, lineages read from runs, training logs
``export/``            bundles of discovered architectures, model cards, MLflow models
``cli/``               the ``ctmevo`` command
=====================  ======================================================================================

Imports go one way: ``cli → export → campaign → views → tracking → strategies → (archive, descriptors,
journal, lineage, paths, records, errors)``; everything here may use ``workers``, ``ctm``, ``genome``.
Members are imported on first use, so ``import search`` is cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_API = {
    "Proposal": "search.records", "EvaluationRecord": "search.records", "best_record": "search.records",
    "ranked": "search.records",
    "Descriptor": "search.descriptors", "make_descriptors": "search.descriptors", "describe": "search.descriptors",
    "QDArchive": "search.archive",
    "Journal": "search.journal",
    "SearchError": "search.errors", "ConfigError": "search.errors", "CampaignError": "search.errors",
    "Strategy": "search.strategies", "make_strategy": "search.strategies", "STRATEGY_NAMES": "search.strategies",
    "Campaign": "search.campaign.loop", "CampaignConfig": "search.campaign.config",
    "load_campaign_config": "search.campaign.config", "start": "search.campaign.create",
    "MlflowArchiver": "search.tracking.archiver", "lineage": "search.tracking.lineages",
    "lineage_from_records": "search.lineage", "LineageGraph": "search.lineage",
    "locate": "search.export.find",
    "main": "search.cli.app",
}
__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'search' has no attribute {name!r}")

"""The campaign's family tree and archive view (interactive HTML pages), refreshed with its pictures.

:func:`refresh_family_views` writes ``plots/family_tree.html`` and ``plots/archive_view.html`` from the
campaign's journal records, its archive and the MLflow run ids its tracker knows
(:func:`search.tracking.family.write_family_views`); the caller logs the returned files as artifacts of the
campaign run (``Tracker.log_campaign_artifacts``), as it does the PNGs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from search.tracking.family import write_family_views

if TYPE_CHECKING:
    from search.campaign.reporter import CampaignView

__all__ = ["refresh_family_views"]


def refresh_family_views(campaign: CampaignView, *, run_ids: dict[str, str], experiment_id: str | None) -> list[Path]:
    """Write both pages for ``campaign`` into its ``plots/``; returns the paths written."""
    records = campaign.records
    strategy: Any = campaign.strategy
    qd = getattr(strategy, "qd", None)
    return write_family_views(
        campaign.paths.plots, records=records, run_ids=run_ids, tracking_uri=campaign.tracking_uri,
        experiment_id=experiment_id, cells={r.genome.hash: strategy.cell_of(r.genome.hash) for r in records},
        archive_rows=strategy.archive_rows() if qd is not None else [],
        descriptors=[d.to_config() for d in campaign.descriptors] if qd is not None else [],
        archive_kind=qd.kind if qd is not None else "grid")

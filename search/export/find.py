"""Finding the evaluation to export: in a campaign directory, or on an MLflow tracking server alone."""

from __future__ import annotations

import os
from pathlib import Path

from search.export.from_campaign import locate_in_campaign
from search.export.located import ExportError, Located, normalise_cell

__all__ = ["locate"]


def locate(key: str | None = None, *, best: bool = False, by: str | None = None, cell: str | None = None,
           campaign: str | Path | None = None, tracking_uri: str | None = None) -> Located:
    """Find one evaluation (exactly one of ``key`` (run id or genome hash prefix), ``best``, ``cell``)."""
    if sum([key is not None, best, cell is not None]) != 1:
        raise ExportError("say which evaluation: a run id or genome hash, --best [--by METRIC], or --cell CELL "
                          "(exactly one)")
    if campaign is None:
        uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            raise ExportError("say where the evaluations are: --campaign DIR, or --tracking-uri URI "
                              "(or MLFLOW_TRACKING_URI)")
        from search.export.from_mlflow import locate_in_mlflow

        return locate_in_mlflow(uri, key=key, best=best, by=by, cell=None if cell is None else normalise_cell(cell))
    return locate_in_campaign(Path(campaign), key=key, best=best, by=by, cell=cell, tracking_uri=tracking_uri)

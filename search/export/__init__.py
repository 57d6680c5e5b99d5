"""Export: take an evaluated architecture out of a campaign as a self-contained bundle.

=====================  ======================================================================================
``located``            :class:`Located` (one evaluation and where it came from), :class:`ExportError`
``from_campaign``      finding it in a campaign directory (journal, archive, checkpoints)
``from_mlflow``        finding it on a tracking server alone
``find``               :func:`locate`: by run id, genome hash, ``--best [--by METRIC]`` or ``--cell``
``bundle``             :func:`export`: write the bundle (``ctm.bundle``) and its model card
``card``               MODEL_CARD.md of an export
``train_card``         MODEL_CARD.md of a bundle trained by ``ctmevo train``
``mlflow_model``       register the bundle's model in MLflow
=====================  ======================================================================================

May import: ``search.campaign``, ``search.tracking``, the modules directly in ``search/`` and the layers below.
Members are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_API = {
    "ExportError": "search.export.located", "Located": "search.export.located", "locate": "search.export.find",
    "Exported": "search.export.bundle", "export": "search.export.bundle", "train_command": "search.export.bundle",
}
__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'search.export' has no attribute {name!r}")

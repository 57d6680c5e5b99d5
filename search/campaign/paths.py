"""Where a campaign keeps its files: one directory, laid out the same way for every campaign.

::

    campaign.yaml        the campaign file as validated at start (edit budget.* here to extend a campaign)
    campaign.json        identity: campaign id, creation time, state version
    journal.jsonl        the event journal (asks and results, fsynced): the source of truth
    state.json           the latest snapshot of the strategy and loop state (rebuilt from the journal if lost)
    campaign.lock        held by the one process running the campaign
    checkpoints/         trained weights per evaluation (safetensors), written before the journal refers to them
    plots/               archive.png, metrics.png, lineage.png, archive.csv
    metrics.jsonl        campaign metrics after every evaluation (the history behind metrics.png)
    spool/               MLflow records waiting for the tracking server (see ``ctmevo sync``)
    mlflow.db            the default MLflow store (sqlite), with mlartifacts/ beside it
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["CampaignPaths", "default_tracking_uri"]


@dataclass(frozen=True)
class CampaignPaths:
    """The files of the campaign in ``root`` (nothing is created by naming them)."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "campaign.yaml"

    @property
    def meta(self) -> Path:
        return self.root / "campaign.json"

    @property
    def journal(self) -> Path:
        return self.root / "journal.jsonl"

    @property
    def state(self) -> Path:
        return self.root / "state.json"

    @property
    def lock(self) -> Path:
        return self.root / "campaign.lock"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    @property
    def archive_csv(self) -> Path:
        return self.plots / "archive.csv"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    def checkpoint(self, genome_hash: str) -> Path:
        return self.checkpoints / f"{genome_hash}.safetensors"

    @property
    def spool(self) -> Path:
        return self.root / "spool"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"


def default_tracking_uri(paths: CampaignPaths) -> str:
    """The MLflow store a campaign uses when its file sets no ``tracking.uri``: sqlite inside its directory."""
    return f"sqlite:///{paths.mlflow_db.resolve()}"

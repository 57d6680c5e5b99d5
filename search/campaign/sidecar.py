"""The process that runs a campaign's journal consumers (MLflow, pictures) beside its driver.

    python -m search.campaign.sidecar CAMPAIGN_DIR [--offline-ok]

Started by :class:`~search.views.sidecar.ConsumerProcess` when ``tracking.consumers`` resolves to a process
(:meth:`~search.campaign.config.TrackingSection.consumers_process`); it reads what the consumers need from the
campaign directory (its file, id, genome codec and archive shape), never the driver's memory, and speaks
:func:`~search.views.sidecar.serve`'s protocol on stdin/stdout. It takes no lock: the driver holds it.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search.campaign.config import CampaignConfig, load_campaign_config
from search.descriptors import Descriptor
from search.journal import read_json
from search.paths import CampaignPaths, default_tracking_uri
from search.strategies import Strategy
from search.views.progress import Progress

__all__ = ["ConsumerView", "command"]

POLL_S = 0.2  # how often MLflow's consumer looks at the journal here (no loop wakes it): the store stays close behind


def command(config: CampaignConfig, root: Path) -> list[str] | None:
    """The command that runs ``root``'s consumers in their own process, or ``None`` for threads of the driver."""
    if not config.tracking.consumers_process(config.budget):
        return None
    return [sys.executable, "-m", "search.campaign.sidecar", str(root)]


@dataclass
class ConsumerView:
    """What the consumers read of a campaign (:class:`search.views.reporter.CampaignView`), from its directory."""

    config: Any
    paths: CampaignPaths
    campaign_id: str
    progress: Progress
    strategy: Strategy
    descriptors: list[Descriptor]

    @classmethod
    def open(cls, directory: Path) -> ConsumerView:
        paths = CampaignPaths(directory)
        config = load_campaign_config(paths.config)
        _, descriptors, strategy = config.searcher()
        return cls(config=config, paths=paths, campaign_id=read_json(paths.meta)["campaign_id"],
                   progress=Progress(budget=config.budget.evaluations), strategy=strategy, descriptors=descriptors)

    @property
    def tracking_uri(self) -> str:
        return self.config.tracking.uri or default_tracking_uri(self.paths)


def main(argv: list[str] | None = None) -> int:
    from search.views.reporter import consumer_runners
    from search.views.sidecar import serve

    parser = argparse.ArgumentParser(prog="python -m search.campaign.sidecar", description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, help="the campaign directory")
    parser.add_argument("--offline-ok", action="store_true", help="start even if the tracking store is away")
    args = parser.parse_args(argv)
    return serve(lambda: consumer_runners(ConsumerView.open(args.directory), offline_ok=args.offline_ok,
                                          poll_s=POLL_S))


if __name__ == "__main__":
    raise SystemExit(main())

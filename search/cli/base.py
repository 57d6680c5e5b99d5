"""What every ``ctmevo`` command shares: the command record, the usage error, exit codes, opening a campaign.

Exit status: 0 on success, 2 on bad input (:class:`UsageError`: a clear message names the file, the field, the
value and what is allowed), 1 on other failures, 130 after Ctrl-C.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from search.campaign.loop import Campaign

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_INTERRUPTED", "Command", "UsageError", "campaign_store",
           "open_campaign", "say"]

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad input from the user: printed without a traceback, exit status 2."""


@dataclass(frozen=True)
class Command:
    """One sub-command: ``setup`` adds its arguments to its parser, ``run`` does it and returns the exit status.
    ``run`` imports what it needs when it runs, so ``ctmevo --help`` stays fast."""

    name: str
    help: str
    setup: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def say(text: str) -> None:
    """Print a line to stdout at once (progress must show when stdout is a log file)."""
    print(text, flush=True)


def open_campaign(directory: str) -> Campaign:
    """The campaign in ``directory``, or a UsageError (exit 2) saying why it cannot be opened."""
    from search.campaign.loop import Campaign
    from search.errors import SearchError

    try:
        return Campaign.open(Path(directory))
    except SearchError as exc:
        raise UsageError(str(exc)) from None


def campaign_store(directory: str) -> tuple[str, str]:
    """(campaign id, tracking URI) of the campaign in ``directory``, read from ``campaign.json`` and
    ``campaign.yaml`` alone (no strategy replay: milliseconds), for commands that only need its MLflow store."""
    import json

    import yaml

    from search.campaign.paths import CampaignPaths, default_tracking_uri

    paths = CampaignPaths(Path(directory))
    try:
        meta = json.loads(paths.meta.read_text())
        config = yaml.safe_load(paths.config.read_text())
        uri = ((config or {}).get("tracking") or {}).get("uri")
        return str(meta["campaign_id"]), str(uri or default_tracking_uri(paths))
    except (OSError, ValueError, KeyError, AttributeError, yaml.YAMLError) as exc:
        raise UsageError(f"{directory} is not a readable campaign directory (campaign.json / campaign.yaml: "
                         f"{type(exc).__name__}: {exc}); start one with 'ctmevo run FILE'") from None

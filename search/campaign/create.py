"""Starting a campaign from a file: a new directory, or ``--fresh`` over an earlier campaign in the same one."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from search.campaign.config import load_campaign_config
from search.campaign.loop import Campaign
from search.errors import CampaignStorageError
from search.paths import CampaignPaths, lock_campaign

__all__ = ["clear_directory", "start"]


def clear_directory(root: Path) -> None:
    """Delete everything in a campaign directory but its lock file (the caller holds the lock)."""
    for entry in root.iterdir():
        if entry.name == CampaignPaths(root).lock.name:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def start(config_path: Path, *, directory: Path | None = None, fresh: bool = False) -> Campaign:
    """A new campaign from a file. ``fresh`` deletes an earlier campaign in the same directory first, holding
    its lock (refused while another process runs it); the new campaign keeps that lock until it has run."""
    config = load_campaign_config(config_path)
    root = Path(directory) if directory else config.directory()
    if not fresh:
        return Campaign.create(config, root)
    stack = contextlib.ExitStack()
    lock = stack.enter_context(lock_campaign(root))
    try:
        clear_directory(root)
        campaign = Campaign.create(config, root, lock=lock)
    except OSError as exc:
        stack.close()
        raise CampaignStorageError(Path(exc.filename or root), exc) from None
    except BaseException:
        stack.close()
        raise
    campaign._held = stack  # released when the campaign has run
    return campaign

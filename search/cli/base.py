"""What every ``ctmevo`` command shares: the command record, the usage error, exit codes, opening a campaign.

Exit status: 0 on success, 2 on bad input (:class:`UsageError`, and the input errors of every layer, see
:func:`is_bad_input`: a clear message names the file, the field, the value and what is allowed), 1 on
operational failures (:class:`OperationalError`: a server or cluster that does not answer, a disk that is
full; the message says what to do next), 130 after Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from search.campaign.loop import Campaign

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_INTERRUPTED", "Command", "OperationalError", "UsageError",
           "campaign_store", "is_bad_input", "open_campaign", "say"]

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad input from the user: printed without a traceback, exit status 2."""


class OperationalError(Exception):
    """Something outside the input failed (a server down, a cluster unreachable): printed without a traceback,
    exit status 1; the message says what to do next."""


# The input errors of each layer, by module: an exception of one of them means its module is imported, so
# checking ``sys.modules`` never imports torch or Ray just to classify an error.
_BAD_INPUT = (("search.errors", "SearchError"), ("genome.errors", "GenomeError"), ("genome.errors", "SchemaError"),
              ("genome.textio", "FileReadError"), ("workers.config", "WorkersConfigError"),
              ("ctm.tasks.base", "TaskError"), ("ctm.train", "TrainError"), ("ctm.bundle", "BundleError"))


def is_bad_input(exc: BaseException) -> bool:
    """Whether ``exc`` is one of the layers' bad-input errors (their messages name the field and value)."""
    types = [getattr(sys.modules[m], name, None) for m, name in _BAD_INPUT if m in sys.modules]
    return isinstance(exc, tuple(t for t in types if isinstance(t, type)))


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
    """The campaign in ``directory``, or a UsageError (exit 2) saying why it cannot be opened and what to do."""
    from search.campaign.loop import Campaign
    from search.errors import SearchError, quoted
    from search.journal import SnapshotCorruptError

    root = Path(directory)
    if not root.is_dir():
        what = "no such directory" if not root.exists() else "not a directory"
        raise UsageError(f"{root}: {what}; give a campaign directory made by 'ctmevo run FILE'")
    try:
        return Campaign.open(root)
    except SnapshotCorruptError as exc:
        raise UsageError(f"{exc}; {snapshot_hint(root, exc.path)}") from None
    except SearchError as exc:
        raise UsageError(str(exc)) from None
    except (KeyError, TypeError, AttributeError, ValueError) as exc:  # valid JSON of the wrong shape
        damaged = root / ("campaign.json" if _bad_meta(root) else "state.json")
        raise UsageError(f"{damaged}: damaged ({type(exc).__name__}: {quoted(str(exc), 120)}); "
                         f"{snapshot_hint(root, damaged)}") from None


def _bad_meta(root: Path) -> bool:
    try:
        meta = json.loads((root / "campaign.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True
    return not isinstance(meta, dict) or not isinstance(meta.get("campaign_id"), str)


def snapshot_hint(root: Path, damaged: Path) -> str:
    """What to do about a damaged snapshot of the campaign in ``root``."""
    if damaged.name == "state.json":
        return (f"it is only a snapshot: delete it (rm {damaged}) and run the command again; the state is rebuilt "
                f"from {root / 'journal.jsonl'}")
    if damaged.name == "campaign.json":
        return f"it holds the campaign's identity: restore it from a backup, or write it again as {_meta_example(root)}"
    return "restore it from a backup"


def _meta_example(root: Path) -> str:
    """``campaign.json`` as it must look, with the campaign id read back from the journal when it can be."""
    campaign_id = "<the ctmevo.campaign tag of its MLflow runs>"
    try:
        from search.journal import Journal

        for entry in Journal(root / "journal.jsonl").read():
            if entry.get("event") == "result" and isinstance(entry.get("record"), dict):
                campaign_id = str(entry["record"]["campaign"])
                break
    except Exception:  # a damaged journal too: the placeholder says where the id is
        pass
    from search.campaign.loop import STATE_VERSION

    return json.dumps({"campaign_id": campaign_id, "created": 0, "state_version": STATE_VERSION})


def campaign_store(directory: str) -> tuple[str, str]:
    """(campaign id, tracking URI) of the campaign in ``directory``, read from ``campaign.json`` and
    ``campaign.yaml`` alone (no strategy replay: milliseconds), for commands that only need its MLflow store."""
    import json

    import yaml

    from search.paths import CampaignPaths, default_tracking_uri

    paths = CampaignPaths(Path(directory))
    try:
        meta = json.loads(paths.meta.read_text())
        config = yaml.safe_load(paths.config.read_text())
        uri = ((config or {}).get("tracking") or {}).get("uri")
        return str(meta["campaign_id"]), str(uri or default_tracking_uri(paths))
    except (OSError, ValueError, KeyError, AttributeError, yaml.YAMLError) as exc:
        raise UsageError(f"{directory} is not a readable campaign directory (campaign.json / campaign.yaml: "
                         f"{type(exc).__name__}: {exc}); start one with 'ctmevo run FILE'") from None

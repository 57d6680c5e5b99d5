"""Where a campaign keeps its files: one directory, laid out the same way for every campaign.

::

    campaign.yaml        the campaign file as validated at start (edit budget.* here to extend a campaign)
    campaign.json        identity: campaign id, creation time, state version
    journal.jsonl        the event journal (asks and results, fsynced): the source of truth
    state.json           the latest snapshot of the strategy and loop state (rebuilt from the journal if lost)
    strategy.json        a flat campaign's resume point: the strategy's whole state at a journal offset (optional)
    campaign.lock        held by the one process running the campaign
    checkpoints/         trained weights per evaluation (safetensors), written before the journal refers to them
    plots/               archive.png, metrics.png, lineage.png, archive.csv
    metrics.jsonl        campaign metrics after every evaluation (the history behind metrics.png)
    consumers/           each durable consumer's cursor into the journal (mlflow.json: what MLflow holds)
    index.sqlite         what status and lineage read: the counts and every genome's standing, children and
                         run, rebuilt from the journal when missing (search.views.index)
    mlflow.db            the default MLflow store (sqlite), with mlartifacts/ beside it

An open-ended campaign's directory holds ``open_ended.jsonl`` (:data:`OPEN_ENDED_JOURNAL`) and one such campaign
directory per task under ``tasks/`` (:mod:`search.open_ended`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from search.errors import CampaignError, CampaignStorageError

__all__ = ["OPEN_ENDED_JOURNAL", "CampaignPaths", "default_tracking_uri", "directory_problem", "is_locked",
           "is_open_ended", "lock_campaign", "shown_files"]

OPEN_ENDED_JOURNAL = "open_ended.jsonl"


def is_open_ended(directory: Path) -> bool:
    """Does ``directory`` hold an open-ended campaign (its journal)?"""
    return (Path(directory) / OPEN_ENDED_JOURNAL).is_file()


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
    def point(self) -> Path:
        """A flat campaign's resume point (:class:`search.campaign.state.ResumePoint`)."""
        return self.root / "strategy.json"

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

    def consumer_cursor(self, name: str) -> Path:
        return self.root / "consumers" / f"{name}.json"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"


def default_tracking_uri(paths: CampaignPaths) -> str:
    """The MLflow store a campaign uses when its file sets no ``tracking.uri``: sqlite inside its directory."""
    return f"sqlite:///{paths.mlflow_db.resolve()}"


@contextlib.contextmanager
def lock_campaign(root: Path) -> Iterator[IO[str]]:
    """Hold the lock of the campaign directory ``root``; :class:`CampaignError` if another process holds it."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        fh = CampaignPaths(root).lock.open("a+")
    except OSError as exc:
        raise CampaignStorageError(Path(exc.filename or root), exc) from None
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CampaignError(f"{root} is being run by another ctmevo process right now; wait for it to end "
                                "(or stop it) first") from None
        try:
            yield fh
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def is_locked(root: Path) -> bool:
    """Whether a process holds the lock of the campaign directory ``root`` right now (it is running)."""
    lock = CampaignPaths(Path(root)).lock
    if not lock.is_file():
        return False
    try:
        with lock.open("r") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fh, fcntl.LOCK_UN)
    except OSError:
        return False
    return False


def directory_problem(root: Path) -> str | None:
    """Why ``root`` cannot hold a campaign (new or existing), as a clause ("it is an existing file, not a
    directory"); ``None`` when it can.

    Catches, before anything is created: a path that is a file, a symlink loop or a dangling symlink, a parent
    that is a file, and a place where nothing can be created (``/proc/x``, a read-only mount, no permission).
    The last is tested by creating and removing an empty temporary directory in the nearest existing folder,
    so it tells the truth whatever the user's privileges.
    """
    try:
        text = os.fspath(root)
        if "\0" in text:
            return "it contains a NUL character"
        if root.is_symlink() and not root.exists():
            try:
                root.resolve(strict=True)
            except RuntimeError:
                return "it is a symlink loop, a link that points back to itself"
            except OSError as exc:
                if "loop" in str(exc).lower() or exc.errno == 40:
                    return "it is a symlink loop, a link that points back to itself"
            return f"it is a symlink to {os.readlink(root)!r}, which does not exist"
        if root.exists():
            if not root.is_dir():
                return "it is an existing file, not a directory"
            return None if os.access(root, os.W_OK | os.X_OK) else "it is a directory you cannot write to"
        parent = root.parent
        while not parent.exists() and parent != parent.parent:
            if parent.is_symlink():
                return f"{parent} is a dangling symlink or a symlink loop"
            parent = parent.parent
        if not parent.is_dir():
            return f"{parent} is a file, not a directory"
        try:
            os.rmdir(tempfile.mkdtemp(prefix=".ctmevo-probe-", dir=parent))
        except OSError as exc:
            return f"nothing can be created in {parent}: [Errno {exc.errno}] {exc.strerror}"
    except OSError as exc:
        if exc.strerror:
            return f"it cannot be created: [Errno {exc.errno}] {exc.strerror}"
        return f"it cannot be used ({exc})"
    return None


def shown_files(folder: Path) -> list[tuple[Path, str]]:
    """A folder's files with the artifact folder each goes to (``<folder name>/<sub folders>``), sorted; hidden
    files left out: among them the temporary file of an atomic write (``.<name>.*.tmp``,
    :func:`genome.io.write_bytes_atomic`), which a page being redrawn renames away while the folder is walked."""
    out = []
    for file in sorted(folder.rglob("*")):
        relative = file.relative_to(folder)
        if file.is_file() and not any(part.startswith(".") for part in relative.parts):
            out.append((file, str(Path(folder.name, *relative.parts[:-1]))))
    return out

"""A moved or copied campaign keeps its MLflow artifacts: rewrite a local store's artifact locations.

A campaign's default store is ``mlflow.db`` with its artifacts in ``mlartifacts/`` beside it. MLflow records
absolute ``file://…/mlartifacts`` locations (per experiment, per run, per logged model), so after the campaign
directory moves (another disk, another machine) every artifact read or write would go to the old place. The fix
is to rewrite that prefix in the database, with the standard library's ``sqlite3`` (no MLflow import):

- :func:`follow_moved_store` does it on the way in, for any ``sqlite:///`` store that :func:`search.tracking.
  client.client` opens, when the store clearly moved: its recorded root ends in ``/mlartifacts``, differs from
  the ``mlartifacts/`` beside the database, and that folder exists (a copy whose original is still there is
  rewritten too, so the copy never writes into the original);
- ``ctmevo relocate DIR`` (:func:`relocate_store`) does it on demand and says what changed (``--from OLD`` for
  a root recorded elsewhere).

Stores behind ``mlflow server --artifacts-destination`` record ``mlflow-artifacts:`` locations, which the server
resolves itself: moving the server's folder is the server's business, nothing to rewrite here.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Relocation", "follow_moved_store", "recorded_roots", "relocate_store", "sqlite_path"]

log = logging.getLogger("ctmevo.tracking")
ARTIFACTS = "mlartifacts"
# every column of MLflow's schema that may hold an artifact location (absent tables or columns are skipped)
COLUMNS = (("experiments", "artifact_location"), ("runs", "artifact_uri"), ("logged_models", "artifact_location"),
           ("model_versions", "source"), ("model_versions", "storage_location"))


@dataclass
class Relocation:
    """What :func:`relocate_store` changed: ``old`` → ``new`` root, rows rewritten per ``table.column``."""

    database: Path
    old: str
    new: str
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for other URIs)."""
    return Path(uri[len("sqlite:///"):]).expanduser() if uri.startswith("sqlite:///") else None


def _uri(path: Path) -> str:
    return path.resolve().as_uri()


def recorded_roots(database: Path) -> list[str]:
    """The distinct ``…/mlartifacts`` roots the store's experiments record (``file://`` URIs or plain paths)."""
    with contextlib.closing(sqlite3.connect(database)) as db:
        try:
            rows = db.execute("SELECT DISTINCT artifact_location FROM experiments").fetchall()
        except sqlite3.DatabaseError:  # not an MLflow store (yet)
            return []
    roots = set()
    for (location,) in rows:
        text = str(location or "").rstrip("/")
        if text.endswith("/" + ARTIFACTS):
            roots.add(text)
    return sorted(roots)


def _columns(db: sqlite3.Connection) -> list[tuple[str, str]]:
    present = []
    for table, column in COLUMNS:
        names = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}  # names from COLUMNS only
        if column in names:
            present.append((table, column))
    return present


def relocate_store(database: str | Path, *, old: str | None = None) -> list[Relocation]:
    """Point the store in ``database`` at the ``mlartifacts/`` beside it: every location starting with an old
    root (``old``, else each root its experiments record) is rewritten, in one transaction. Returns one
    :class:`Relocation` per root rewritten (none when everything is in place already)."""
    database = Path(database)
    if not database.is_file():
        raise FileNotFoundError(f"{database}: no such MLflow database")
    new = _uri(database.parent / ARTIFACTS)
    olds = [old.rstrip("/")] if old else [r for r in recorded_roots(database) if r not in (new, _plain(new))]
    done = []
    with contextlib.closing(sqlite3.connect(database)) as db, db:
        columns = _columns(db)
        for root in olds:
            change = Relocation(database=database, old=root, new=new if root.startswith("file:") else _plain(new))
            for table, column in columns:
                cursor = db.execute(
                    f"UPDATE {table} SET {column} = ? || substr({column}, ?) "  # names from COLUMNS only
                    f"WHERE substr({column}, 1, ?) = ? AND (length({column}) = ? OR substr({column}, ?, 1) = '/')",
                    (change.new, len(root) + 1, len(root), root, len(root), len(root) + 1))
                if cursor.rowcount:
                    change.rows[f"{table}.{column}"] = cursor.rowcount
            if change.total:
                done.append(change)
    return done


def _plain(file_uri: str) -> str:
    return file_uri[len("file://"):] if file_uri.startswith("file://") else file_uri


def follow_moved_store(uri: str) -> list[Relocation]:
    """For a ``sqlite:///`` store that moved (see the module docstring), rewrite its artifact locations and say so
    in one warning; otherwise do nothing (one small read)."""
    database = sqlite_path(uri)
    if database is None or not database.is_file() or not (database.parent / ARTIFACTS).is_dir():
        return []
    new = _uri(database.parent / ARTIFACTS)
    if all(root in (new, _plain(new)) for root in recorded_roots(database)):
        return []
    done = relocate_store(database)
    for change in done:
        log.warning("the MLflow store %s moved: %d artifact location(s) rewritten from %s to %s", database,
                    change.total, change.old, change.new)
    return done

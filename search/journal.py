"""Durable files of a campaign: the append-only evaluation journal and atomic JSON snapshots.

The journal is the campaign's ground truth: every completed
evaluation is appended as one JSON line and fsynced *before* it is told to the strategy or logged to MLflow,
so a campaign killed at any moment resumes with every evaluation it had finished.

- :class:`JsonLines` is the generic mechanism: one JSON object per line, ``append`` writes the whole line
  with a single ``write`` on an ``O_APPEND`` descriptor, then ``fsync``. ``read`` ignores an incomplete final
  line (a process killed mid-write leaves bytes without the closing newline) and raises
  :class:`JournalCorruptError` naming the file and line for anything unreadable before it. ``read`` never
  modifies the file (``ctmevo status`` may read a journal a running campaign is writing); the torn tail is
  truncated the next time the file is opened for appending.
- :class:`Journal` stores :class:`~search.records.EvaluationRecord` objects (or campaign events such as
  ``{"event": "result", "record": {...}}``) in a :class:`JsonLines` file; ``records()`` decodes the records.
- :func:`write_atomic` / :func:`read_json` write and read snapshots (strategy state, archive, campaign state):
  a temporary file in the same directory, fsync, ``os.replace``, fsync of the directory, so a reader sees
  either the old or the new content, never a mixture.

A :class:`JsonLines` or :class:`Journal` is not thread-safe and meant for one writing process per file; any
number of readers may read concurrently.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from genome.io import fsync_dir, write_bytes_atomic
from search.records import EvaluationRecord

__all__ = ["Journal", "JournalCorruptError", "JsonLines", "JsonLinesFollower", "encode_line", "read_json",
           "write_atomic"]


class JournalCorruptError(ValueError):
    """A line before the end of a JSON-lines file is not a JSON object; the file needs a look by hand."""

    def __init__(self, path: Path, line: int, reason: str) -> None:
        self.path, self.line, self.reason = path, line, reason
        super().__init__(f"{path}: line {line} is corrupt ({reason}); only the final line may be incomplete "
                         "(a write interrupted by a crash). Inspect the file; to recover, move the bad line out "
                         "of the way and resume.")


def _jsonable(value: Any) -> Any:
    """``value`` with non-finite floats replaced by ``None`` (strict JSON has no NaN or Infinity)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def encode_line(obj: dict[str, Any]) -> bytes:
    """One JSON line (compact, strict JSON, UTF-8, ending in ``\\n``)."""
    text = json.dumps(_jsonable(obj), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8") + b"\n"


def _scan(path: Path) -> tuple[list[dict[str, Any]], int]:
    """All complete lines of ``path`` as objects, and the byte length of that complete prefix."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], 0
    end = data.rfind(b"\n") + 1  # bytes after the last newline are an interrupted write
    objects: list[dict[str, Any]] = []
    for number, raw in enumerate(data[:end].split(b"\n")[:-1], start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise JournalCorruptError(path, number, str(exc)) from None
        if not isinstance(obj, dict):
            raise JournalCorruptError(path, number, f"a JSON {type(obj).__name__}, not an object")
        objects.append(obj)
    return objects, end


class JsonLines:
    """An append-only file of JSON objects, one per line, each durable when :meth:`append` returns."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            created = not self.path.exists()
            _, complete = _scan(self.path)  # raises on corruption before we add anything after it
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            if os.fstat(fd).st_size > complete:  # drop a torn final line left by a killed writer
                os.ftruncate(fd, complete)
                os.fsync(fd)
            if created:
                fsync_dir(self.path.parent)
            self._fd = fd
        return self._fd

    def append(self, obj: dict[str, Any]) -> None:
        """Write ``obj`` as one line; returns only after the line is flushed and fsynced to disk."""
        self.extend([obj])

    def extend(self, objs: Iterable[dict[str, Any]]) -> None:
        """Append several objects with a single write and a single fsync."""
        data = b"".join(encode_line(obj) for obj in objs)
        if not data:
            return
        fd = self._open()
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)

    def read(self) -> list[dict[str, Any]]:
        """Every complete line as a dict (an incomplete final line is ignored; the file is not changed)."""
        return _scan(self.path)[0]

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> JsonLines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        with contextlib.suppress(Exception):
            self.close()


class Journal:
    """The campaign journal: JSON objects, one per line, in the order they happened.

    Entries are :class:`~search.records.EvaluationRecord` objects (stored as their ``to_dict()``) or any
    JSON-ready mapping, e.g. campaign events ``{"event": "result", "record": {...}}``.

    >>> journal = Journal(campaign_dir / "journal.jsonl")
    >>> journal.append(record)      # on disk (fsynced) when this returns
    >>> journal.read()              # every complete entry as a dict, e.g. on resume
    >>> journal.records()           # the evaluation records among them
    """

    def __init__(self, path: str | Path) -> None:
        self._lines = JsonLines(path)

    @property
    def path(self) -> Path:
        return self._lines.path

    def append(self, entry: EvaluationRecord | Mapping[str, Any]) -> None:
        """Append ``entry`` and fsync: a completed evaluation is on disk before anything depends on it."""
        self._lines.append(entry.to_dict() if isinstance(entry, EvaluationRecord) else dict(entry))

    def extend(self, entries: Iterable[EvaluationRecord | Mapping[str, Any]]) -> None:
        """Append several entries with ONE write and ONE fsync (group commit)."""
        self._lines.extend(e.to_dict() if isinstance(e, EvaluationRecord) else dict(e) for e in entries)

    def read(self) -> list[dict[str, Any]]:
        """Every complete entry; raises :class:`JournalCorruptError` on damage before the last line."""
        return self._lines.read()

    def records(self) -> list[EvaluationRecord]:
        """The evaluation records: bare record entries and the ``record`` of ``{"event": "result"}`` entries."""
        records = []
        for number, entry in enumerate(self._lines.read(), start=1):
            if "event" in entry:  # a campaign event: only results hold a record
                if entry["event"] != "result":
                    continue
                data = entry.get("record")
            else:
                data = entry
            try:
                records.append(EvaluationRecord.from_dict(data))
            except (KeyError, TypeError, ValueError) as exc:
                raise JournalCorruptError(self.path, number, f"not an evaluation record: {exc!r}") from None
        return records

    def close(self) -> None:
        self._lines.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_atomic(path: str | Path, data: Any) -> Path:
    """Replace ``path`` atomically with ``data``: JSON for Python values, as-is for ``bytes`` and ``str``.

    Writes a temporary file in the same directory, fsyncs it, renames it over ``path`` (``os.replace``) and
    fsyncs the directory, so after a crash ``path`` holds either the old or the new content in full.
    """
    if isinstance(data, bytes):
        payload = data
    elif isinstance(data, str):
        payload = data.encode("utf-8")
    else:
        payload = json.dumps(_jsonable(data), indent=1, allow_nan=False).encode("utf-8") + b"\n"
    return write_bytes_atomic(path, payload)


def read_json(path: str | Path) -> Any:
    """The JSON value stored at ``path`` (e.g. by :func:`write_atomic`); errors name the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such snapshot file") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None


class JsonLinesFollower:
    """Reads a growing JSON-lines file incrementally, like ``tail -f``: each call returns the complete lines
    appended since the last one, with the byte offset just after each (the reader's durable cursor).

    A consumer of the journal (MLflow records, pictures) keeps its own follower and persists the offset of the
    last line it has fully handled; after a restart it continues from there. An incomplete final line (a write
    in progress, or torn by a crash) is left for a later call.
    """

    def __init__(self, path: str | Path, offset: int = 0, *, max_bytes: int = 16 * 2**20) -> None:
        self.path = Path(path)
        self.offset = int(offset)
        self.max_bytes = max_bytes
        self.line = 0  # complete lines returned so far (from ``offset`` at construction)

    def read(self) -> list[tuple[int, dict[str, Any]]]:
        """``[(offset after the line, object), ...]`` for the complete lines after :attr:`offset` (at most
        ``max_bytes`` of them per call); advances :attr:`offset`. Raises :class:`JournalCorruptError`."""
        try:
            with self.path.open("rb") as fh:
                fh.seek(self.offset)
                data = fh.read(self.max_bytes)
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1
        out: list[tuple[int, dict[str, Any]]] = []
        position = self.offset
        for raw in data[:end].split(b"\n")[:-1]:
            position += len(raw) + 1
            self.line += 1
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise JournalCorruptError(self.path, self.line, f"{exc} (at byte {position - len(raw) - 1})"
                                          ) from None
            if not isinstance(obj, dict):
                raise JournalCorruptError(self.path, self.line, f"a JSON {type(obj).__name__}, not an object")
            out.append((position, obj))
        self.offset += end
        return out

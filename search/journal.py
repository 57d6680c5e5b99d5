"""Durable files of a campaign: the append-only evaluation journal and atomic JSON snapshots.

The journal is the campaign's ground truth: every completed
evaluation is appended as one JSON line and fsynced *before* it is told to the strategy or logged to MLflow,
so a campaign killed at any moment resumes with every evaluation it had finished.

- :class:`JsonLines` is the generic mechanism: one JSON object per line, ``append`` writes the whole line
  with a single ``write`` on an ``O_APPEND`` descriptor, then ``fsync``. ``read`` drops a *torn tail*: bytes
  after the last newline, or a last line that is not JSON at all (a process killed mid-write, or a power
  loss that kept the file's new length but not all its bytes), logs a warning naming the file and line once,
  and records it in :attr:`JsonLines.torn`. Anything unreadable *before* the last line is corruption, not a
  crash: :class:`JournalCorruptError` names the file and line. ``read`` never modifies the file (``ctmevo
  status`` may read a journal a running campaign is writing); the torn tail is truncated the next time the
  file is opened for appending.
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
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genome.io import fsync, fsync_dir, jsonable, write_bytes_atomic
from search.errors import CampaignError
from search.records import EvaluationRecord

__all__ = ["Journal", "JournalCorruptError", "JsonLines", "JsonLinesFollower", "SnapshotCorruptError", "TornTail",
           "encode_line", "read_json", "write_atomic"]

log = logging.getLogger("ctmevo.journal")
_WARNED: set[tuple[str, int, int]] = set()  # (path, line, bytes) of torn tails already reported


class JournalCorruptError(CampaignError, ValueError):
    """A line before the end of a JSON-lines file is not a JSON object; the file needs a look by hand."""

    def __init__(self, path: Path, line: int, reason: str) -> None:
        self.path, self.line, self.reason = path, line, reason
        super().__init__(f"{path}: line {line} is corrupt ({reason}); only the final line may be incomplete "
                         "(a write interrupted by a crash). Inspect the file; to recover, move the bad line out "
                         "of the way and resume.")


class SnapshotCorruptError(CampaignError, ValueError):
    """A JSON snapshot (``campaign.json``, ``state.json``, ...) that cannot be decoded; ``path`` names it."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"{path}: not valid JSON ({reason})")


@dataclass(frozen=True)
class TornTail:
    """The incomplete end of a JSON-lines file that :meth:`JsonLines.read` dropped: its 1-based line number
    and its length in bytes."""

    line: int
    size: int


def encode_line(obj: dict[str, Any]) -> bytes:
    """One JSON line (compact, strict JSON, UTF-8, ending in ``\\n``)."""
    text = json.dumps(jsonable(obj), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8") + b"\n"


def _decode(raw: bytes) -> tuple[dict[str, Any] | None, str, bool]:
    """The object on one line, or ``None``, why not, and whether the bytes are not JSON at all (a torn write
    never leaves valid JSON of another type)."""
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, str(exc), True
    if not isinstance(obj, dict):
        return None, f"a JSON {type(obj).__name__}, not an object", False
    return obj, "", False


@dataclass
class _Scan:
    """What :func:`_scan` found once its objects are consumed: the byte length of the complete prefix, the torn
    tail if any, and the file's size then. ``start``: where the scan began (a known-good prefix before it) and
    ``lines``: how many lines that prefix holds."""

    complete: int = 0
    torn: TornTail | None = None
    size: int = 0
    start: int = 0
    lines: int = 0


def _scan(path: Path, found: _Scan) -> Iterator[dict[str, Any]]:
    """The complete lines of ``path`` as objects, read as a stream (memory O(one line)); when they are consumed,
    ``found`` holds the complete prefix's length and the torn tail. Raises :class:`JournalCorruptError` for a
    damaged line before the last."""
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        return
    with fh:
        fh.seek(found.start)
        offset, number = found.start, found.lines
        found.complete = found.start
        bad: tuple[int, str] | None = None  # a garbled newline-terminated line: torn if nothing real follows it
        for raw in fh:
            number += 1
            offset += len(raw)
            if not raw.endswith(b"\n"):  # the tail after the last newline: an interrupted write
                if bad is not None and raw.strip(b"\0 \t\r"):
                    raise JournalCorruptError(path, bad[0], bad[1])
                break
            if bad is not None:
                raise JournalCorruptError(path, bad[0], bad[1])
            if not raw.strip():
                found.complete = offset
                continue
            obj, reason, garbled = _decode(raw)
            if obj is None:
                if not garbled:
                    raise JournalCorruptError(path, number, reason)
                bad = (number, reason)
                continue
            yield obj
            found.complete = offset
        found.size = offset
        if bad is not None:
            found.torn = TornTail(bad[0], offset - found.complete)
        elif offset > found.complete:
            found.torn = TornTail(number, offset - found.complete)


class JsonLines:
    """An append-only file of JSON objects, one per line, each durable when :meth:`append` returns.

    ``torn_note`` ends the warning about a dropped torn tail (what happens to what it recorded);
    :attr:`torn` is the tail the last :meth:`read` dropped (``None``: the file ended cleanly).
    """

    def __init__(self, path: str | Path, *, torn_note: str = "it is ignored") -> None:
        self.path = Path(path)
        self.torn_note = torn_note
        self.torn: TornTail | None = None
        self._read: _Scan | None = None  # what the last full read found (an unchanged file is not scanned again)
        self._fd: int | None = None

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            created = not self.path.exists()
            found = self._read
            if found is None or not self.path.exists() or self.path.stat().st_size != found.size:
                found = _Scan()
                for _ in _scan(self.path, found):  # raises on corruption before we add anything after it
                    pass
            self._report(found.torn)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            if os.fstat(fd).st_size > found.complete:  # drop a torn final line left by a killed writer
                os.ftruncate(fd, found.complete)
                fsync(fd)
            if created:
                fsync_dir(self.path.parent)
            self._fd = fd
        return self._fd

    def append(self, obj: dict[str, Any], *, sync: bool = True) -> None:
        """Write ``obj`` as one line; returns only after the line is flushed and fsynced to disk."""
        self.extend([obj], sync=sync)

    def extend(self, objs: Iterable[dict[str, Any]], *, sync: bool = True) -> None:
        """Append several objects with a single write and a single fsync. ``sync=False`` skips the fsync: the
        lines are in the OS (a killed process loses nothing) and reach the disk with the next fsync of this
        file (:meth:`sync`, or a later ``extend``), which covers every earlier write."""
        data = b"".join(encode_line(obj) for obj in objs)
        if not data:
            return
        fd = self._open()
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if sync:
            fsync(fd)

    def sync(self) -> None:
        """fsync what was written without it."""
        if self._fd is not None:
            fsync(self._fd)

    def read(self) -> list[dict[str, Any]]:
        """Every complete line as a dict (a torn final line is dropped with a warning; the file is not changed)."""
        return list(self.stream())

    def stream(self, offset: int = 0, lines: int = 0) -> Iterator[dict[str, Any]]:
        """:meth:`read` one line at a time (a long journal need not fit in memory as objects), from byte
        ``offset``: the end of line number ``lines`` (what is before it was read before). Read to its end, it also
        spares the first :meth:`append` a second pass over an unchanged file."""
        found = _Scan(start=offset, lines=lines)
        yield from _scan(self.path, found)
        self._read = found
        self._report(found.torn)

    def _report(self, torn: TornTail | None) -> None:
        self.torn = torn
        if torn is None:
            return
        key = (str(self.path.resolve()), torn.line, torn.size)
        if key not in _WARNED:
            _WARNED.add(key)
            log.warning("%s: line %d is incomplete (%d bytes; a write cut short by a crash or power loss): %s",
                        self.path, torn.line, torn.size, self.torn_note)

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
        self._lines = JsonLines(path, torn_note="it is dropped, and the ask or result it recorded is done again on "
                                                "resume")

    @property
    def path(self) -> Path:
        return self._lines.path

    @property
    def torn(self) -> TornTail | None:
        """The torn last line the last read dropped, if any (see :class:`JsonLines`)."""
        return self._lines.torn

    def append(self, entry: EvaluationRecord | Mapping[str, Any], *, sync: bool = True) -> None:
        """Append ``entry`` and fsync: a completed evaluation is on disk before anything depends on it.
        ``sync=False``: see :meth:`JsonLines.extend`."""
        self._lines.append(entry.to_dict() if isinstance(entry, EvaluationRecord) else dict(entry), sync=sync)

    def extend(self, entries: Iterable[EvaluationRecord | Mapping[str, Any]], *, sync: bool = True) -> None:
        """Append several entries with ONE write and ONE fsync (group commit)."""
        self._lines.extend((e.to_dict() if isinstance(e, EvaluationRecord) else dict(e) for e in entries), sync=sync)

    def sync(self) -> None:
        """fsync entries appended with ``sync=False``."""
        self._lines.sync()

    def read(self) -> list[dict[str, Any]]:
        """Every complete entry; raises :class:`JournalCorruptError` on damage before the last line."""
        return self._lines.read()

    def stream(self, offset: int = 0, lines: int = 0) -> Iterator[dict[str, Any]]:
        """:meth:`read`, one entry at a time, from byte ``offset``, the end of entry number ``lines`` (what
        resuming a long campaign reads)."""
        return self._lines.stream(offset, lines)

    def report_torn(self, line: int, size: int) -> None:
        """Warn (once) about an incomplete last line found by a reader that does not read the whole journal
        (:mod:`search.views.index`), exactly as :meth:`read` warns."""
        self._lines._report(TornTail(line, size))

    def records(self) -> list[EvaluationRecord]:
        """The evaluation records: bare record entries and the ``record`` of ``{"event": "result"}`` entries."""
        records = []
        for number, entry in enumerate(self._lines.stream(), start=1):
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
        payload = json.dumps(jsonable(data), indent=1, allow_nan=False).encode("utf-8") + b"\n"
    return write_bytes_atomic(path, payload)


def read_json(path: str | Path) -> Any:
    """The JSON value stored at ``path`` (e.g. by :func:`write_atomic`); :class:`SnapshotCorruptError` (a
    :class:`~search.errors.CampaignError`) names the file when it cannot be decoded."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such snapshot file") from None
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise SnapshotCorruptError(path, f"byte 0x{data[exc.start]:02x} at offset {exc.start} is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise SnapshotCorruptError(path, str(exc)) from None


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
        self.more = False  # the last read stopped at ``max_bytes``: more is already there to read

    def read(self) -> list[tuple[int, dict[str, Any]]]:
        """``[(offset after the line, object), ...]`` for the complete lines after :attr:`offset` (at most
        ``max_bytes`` of them per call); advances :attr:`offset`. Raises :class:`JournalCorruptError`."""
        try:
            with self.path.open("rb") as fh:
                fh.seek(self.offset)
                data = fh.read(self.max_bytes)
        except FileNotFoundError:
            return []
        self.more = len(data) >= self.max_bytes
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

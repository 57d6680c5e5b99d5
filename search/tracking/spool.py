"""A durable queue of records waiting for a tracking server, shared by the campaign and ``ctmevo sync``."""

from __future__ import annotations

import contextlib
import fcntl
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from search.journal import JsonLines, encode_line, write_atomic

__all__ = ["Spool"]


class Spool:
    """A durable queue of entries awaiting delivery (MLflow records while the server is away).

    A JSON-lines file several processes may share (the campaign and ``ctmevo sync``): every change holds an
    exclusive ``flock`` on ``.<name>.lock``; entries get an ``id`` and an ``attempts`` count. Delivered
    entries are removed by :meth:`settle`, which rewrites the file atomically; entries given up on move to
    ``<name>-rejected.jsonl``.
    """

    def __init__(self, directory: str | Path, name: str = "mlflow-spool") -> None:
        self.directory = Path(directory)
        self.path = self.directory / f"{name}.jsonl"
        self.rejected_path = self.directory / f"{name}-rejected.jsonl"
        self._lock_path = self.directory / f".{name}.lock"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def add(self, entry: dict[str, Any]) -> None:
        with self._locked(), JsonLines(self.path) as lines:
            lines.append({"id": uuid.uuid4().hex, "attempts": 0, **entry})

    def entries(self) -> list[dict[str, Any]]:
        return JsonLines(self.path).read() if self else []

    def __bool__(self) -> bool:
        """Whether the spool file holds anything (one ``stat``, no read)."""
        try:
            return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def __len__(self) -> int:
        return len(self.entries())

    def settle(self, done: set[str], attempts: Mapping[str, int], rejected: Sequence[dict[str, Any]]) -> None:
        """Drop ``done`` entries, record failed ``attempts``, move ``rejected`` entries aside (atomically)."""
        with self._locked():
            drop = done | {e["id"] for e in rejected}
            keep = [{**e, "attempts": attempts.get(e["id"], e.get("attempts", 0))}
                    for e in self.entries() if e["id"] not in drop]
            write_atomic(self.path, b"".join(encode_line(e) for e in keep))
            if rejected:
                with JsonLines(self.rejected_path) as lines:
                    lines.extend(rejected)

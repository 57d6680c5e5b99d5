"""Consumers of the journal: everything a person looks at, derived beside the loop, never blocking it.

A :class:`ConsumerRunner` runs one :class:`Consumer` on its own thread. It follows ``journal.jsonl`` and
``metrics.jsonl`` like ``tail -f`` (:class:`search.journal.JsonLinesFollower`), hands the consumer new results
and metric points in batches (many evaluations per call), and, for a durable consumer, saves its cursor (byte
offsets and the number of results handled) atomically in ``consumers/<name>.json`` after every batch the
consumer accepted. After any stop it continues from that cursor; results before it are only ``observe``-d
(to rebuild the consumer's mirrors), never re-sent. The loop only wakes the runners up.

Faults: a consumer that raises :class:`~search.tracking.archiver.TrackingUnavailable` is retried with the same
batch after a growing wait (30 s, doubling, at most 10 min); one that raises anything else is reported (live
view, log) and restarted from its cursor after a wait. Dispatch goes on either way: the consumer falls behind
(:attr:`ConsumerRunner.behind`) and catches up when it can. Asked to stop (the campaign ends), a consumer
waiting for its tracking server tries once more at once; if the server is still away it stops there, and the
rest waits in the journal for the next run or ``ctmevo sync``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from search.journal import JsonLinesFollower, read_json, write_atomic
from search.records import EvaluationRecord
from search.tracking.errors import TrackingUnavailable

__all__ = ["Consumer", "ConsumerRunner"]

log = logging.getLogger("ctmevo.consumers")
BATCH = 500  # results per call at most
READ_BYTES = 2**20  # journal read per step (~700 results): what a lagging consumer holds decoded at once
FIRST_WAIT_S, MAX_WAIT_S = 30.0, 600.0


class Consumer(Protocol):
    """What a runner drives (see the module docstring); every method may raise."""

    def open(self) -> None: ...

    def observe(self, index: int, record: EvaluationRecord) -> None: ...

    def results(self, items: list[tuple[int, EvaluationRecord]]) -> None: ...

    def metrics(self, points: list[dict[str, Any]]) -> None: ...

    def tick(self, final: bool) -> None: ...

    def close(self, status: str) -> None: ...


class ConsumerRunner:
    """One consumer on its own thread, following the campaign's journal and metrics files."""

    def __init__(self, name: str, make: Callable[[], Consumer], *, journal: Path, metrics: Path,
                 cursor: Path | None, tick_every_s: float = 1.0, first_wait_s: float = FIRST_WAIT_S,
                 poll_s: float | None = None) -> None:
        self.name, self._make = name, make
        self._journal_path, self._metrics_path, self._cursor_path = journal, metrics, cursor
        self.tick_every_s = tick_every_s
        self.poll_s = tick_every_s if poll_s is None else poll_s  # unless woken: a runner no loop wakes polls
        self.first_wait_s = first_wait_s
        saved = read_json(cursor) if cursor is not None and cursor.is_file() else {}
        self.done = int(saved.get("results", 0))  # results handled (durably, for a durable consumer)
        self._start = {"journal": int(saved.get("journal", 0)), "metrics": int(saved.get("metrics", 0)),
                       "results": self.done}
        self.error: str | None = None  # the last failure, while it lasts
        self.waiting_until = 0.0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._final = False
        self._status = "FINISHED"
        self._give_up_at = float("inf")
        self._consumer: Consumer | None = None
        self._opened = self._observed = False
        self._thread = threading.Thread(target=self._main, name=f"ctmevo-{name}", daemon=True)
        self.finished = threading.Event()

    # -- the loop's side --------------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def behind(self, results: int) -> int:
        """How many of the ``results`` the journal holds this consumer has not handled yet."""
        return max(0, results - self.done)

    def stop(self, *, status: str, final: bool, timeout: float | None, give_up_after: float | None = None) -> bool:
        """Ask the consumer to catch up (``final``: draw/send the last of everything), close it with ``status``
        and stop. While it keeps failing it retries (with its growing waits) for ``give_up_after`` seconds at
        most (default: ``timeout``), then gives up, its cursor where it got to. Waits up to ``timeout`` s;
        True if it finished in that time."""
        self._final, self._status = final, status
        limit = give_up_after if give_up_after is not None else timeout
        self._give_up_at = time.monotonic() + (float("inf") if limit is None else limit)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        return self.finished.is_set()

    # -- the thread -------------------------------------------------------------------------------------------
    def _main(self) -> None:
        wait = self.first_wait_s
        while True:
            stopping, unavailable = self._stop.is_set(), False
            try:
                self._run()
                self.error = None
                break
            except TrackingUnavailable as exc:
                if stopping:  # the last try, made when asked to stop, failed too: the rest waits for next time
                    self._failed(f"{exc}; the records wait in the journal")
                    break
                self._failed(f"{exc}; retrying in {wait:.0f} s (the records wait in the journal)")
                unavailable = True
            except Exception as exc:  # a consumer bug or an unexpected failure: restart it from its cursor
                log.warning("%s consumer failed (%s: %s); restarting it in %.0f s", self.name, type(exc).__name__,
                            exc, wait, exc_info=log.isEnabledFor(logging.DEBUG))
                self._failed(f"{type(exc).__name__}: {exc}; restarting in {wait:.0f} s")
                self._consumer, self._opened, self._observed = None, False, False
            now = time.monotonic()
            if self._stop.is_set() and now >= self._give_up_at:
                break  # given up: what is left stays for the next run or `ctmevo sync`
            self.waiting_until = now + wait
            pause = max(0.0, min(wait, self._give_up_at - now))
            if unavailable:  # new results do not shorten the wait; being asked to stop does (one last try)
                self._stop.wait(pause)
            else:
                time.sleep(pause)
            wait = min(wait * 2, MAX_WAIT_S)
        if self._consumer is not None and self._opened:
            try:
                self._consumer.close(self._status)
            except Exception as exc:
                log.warning("%s consumer could not close (%s)", self.name, exc)
        self.finished.set()

    def _failed(self, message: str) -> None:
        self.error = message

    def _run(self) -> None:
        """Open (or keep) the consumer, catch up from the cursor, then follow until asked to stop."""
        journal = JsonLinesFollower(self._journal_path, max_bytes=READ_BYTES)
        metrics = JsonLinesFollower(self._metrics_path, self._start["metrics"], max_bytes=READ_BYTES)
        if self._consumer is None:
            self._consumer = self._make()
        consumer = self._consumer
        if not self._opened:
            consumer.open()
            self._opened = True
        index = 0
        while not self._observed and journal.offset < self._start["journal"]:  # before the cursor: observed only
            lines = journal.read()
            if not lines:
                break
            for end, event in lines:
                if end > self._start["journal"]:
                    journal.offset = self._start["journal"]
                    break
                if event.get("event") == "result":
                    consumer.observe(index, EvaluationRecord.from_dict(event["record"]))
                    index += 1
        self._observed = True
        journal.offset = self._start["journal"]
        index = self._start["results"]
        last_tick = 0.0
        while True:
            stopping = self._stop.is_set()
            while True:  # everything appended so far, a bounded read at a time
                batch: list[tuple[int, EvaluationRecord]] = []
                end_offset = journal.offset
                lines = journal.read()
                for end, event in lines:
                    if event.get("event") == "result":
                        batch.append((index, EvaluationRecord.from_dict(event["record"])))
                        index += 1
                    end_offset = end
                    if len(batch) >= BATCH:
                        self._deliver(consumer, batch, end_offset, metrics.offset)
                        batch = []
                self._deliver(consumer, batch, end_offset, metrics.offset)
                points = [point for _, point in metrics.read()]
                if points:
                    consumer.metrics(points)
                    self._save(journal=self._start["journal"], metrics=metrics.offset)
                if not (lines or points) or not (stopping or journal.more or metrics.more):
                    break
            now = time.monotonic()
            if stopping or now - last_tick >= self.tick_every_s:
                consumer.tick(final=stopping and self._final)
                last_tick = now
            if stopping:
                return
            self.error = None
            self._wake.wait(self.poll_s)
            self._wake.clear()

    def _deliver(self, consumer: Consumer, batch: list[tuple[int, EvaluationRecord]], journal_offset: int,
                 metrics_offset: int) -> None:
        if batch:
            consumer.results(batch)
            self.done = batch[-1][0] + 1
        self._save(journal=journal_offset, metrics=metrics_offset)

    def _save(self, *, journal: int, metrics: int) -> None:
        changed = journal != self._start["journal"] or metrics != self._start["metrics"]
        self._start.update(journal=journal, metrics=metrics, results=self.done)
        if changed and self._cursor_path is not None:
            write_atomic(self._cursor_path, {"journal": journal, "metrics": metrics, "results": self.done})

"""Ctrl-C at a safe point: the loop's writes (ask → journal → strategy) never stop half-way.

Inside :func:`deferred_interrupts` a first SIGINT only sets a flag the loop checks between iterations, where
the journal, the loop state and the strategy agree, so the snapshot written on the way out is consistent. A
second SIGINT interrupts at once (the journal is still the truth; resume replays it).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

__all__ = ["Interrupts", "deferred_interrupts"]


class Interrupts:
    """Whether Ctrl-C was pressed (set by the handler, read by the loop)."""

    def __init__(self) -> None:
        self.requested = False

    def check(self) -> None:
        """Raise :class:`KeyboardInterrupt` here if Ctrl-C was pressed since the last safe point."""
        if self.requested:
            raise KeyboardInterrupt


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[Interrupts]:
    """Defer the first Ctrl-C to the loop's next safe point (only in the main thread; elsewhere: unchanged)."""
    flag = Interrupts()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: object) -> None:
        if flag.requested:  # the second Ctrl-C: now
            raise KeyboardInterrupt
        flag.requested = True

    signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)

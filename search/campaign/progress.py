"""What a running campaign reports about itself after every result: counts, metrics, rate."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

__all__ = ["Progress"]


@dataclass
class Progress:
    """Counts and metrics of a campaign, updated by the loop after every result (read by the live view)."""

    done: int = 0
    failures: int = 0
    in_flight: int = 0
    budget: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    best_hash: str | None = None
    started: float = field(default_factory=time.monotonic)
    elapsed_before: float = 0.0

    @property
    def elapsed_s(self) -> float:
        return self.elapsed_before + time.monotonic() - self.started

    @property
    def per_hour(self) -> float:
        return 3600.0 * self.done / max(self.elapsed_s, 1e-9)

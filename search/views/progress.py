"""What a running campaign reports about itself after every result: counts, metrics, rate."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

__all__ = ["Progress", "spent_text"]


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


def spent_text(*, done: int, evaluations: int | None, steps_spent: float, steps: int | None, elapsed_s: float,
               wall_time_s: float | None) -> str:
    """What a campaign has spent against each limit of its budget, e.g. ``30, training steps 6,100 of 6,000``."""
    parts = [f"{done:,}" + (f" of {evaluations:,}" if evaluations else "")]
    if steps is not None:
        parts.append(f"training steps {steps_spent:,.0f} of {steps:,}")
    if wall_time_s is not None:
        parts.append(f"wall time {elapsed_s:,.0f} s of {wall_time_s:,.0f}")
    if evaluations is None and steps is None and wall_time_s is None:
        parts[0] += " (open-ended)"
    return ", ".join(parts)

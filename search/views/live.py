"""The live view of a running campaign: a rich panel on a terminal, a progress line every few seconds otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as Bar
from rich.table import Table

from search.records import fmt
from search.views.progress import Progress

__all__ = ["LiveView"]

PLAIN_EVERY_S = 5.0  # at most one progress line this often when stdout is not a terminal


class LiveView:
    """Shows ``progress`` and ``status()`` (label, text) lines, e.g. how far MLflow lags, while a campaign runs."""

    def __init__(self, *, name: str, progress: Progress, status: Callable[[], list[tuple[str, str]]],
                 console: Console | None = None) -> None:
        self.name, self.progress, self.status = name, progress, status
        self.console = console or Console(stderr=True)
        self._live: Live | None = None
        self._bar: Bar | None = None
        self._task_id: object = None
        self._last_plain = 0.0

    def start(self) -> None:
        if not self.console.is_terminal:
            return
        self._bar = Bar(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=self.console)
        self._task_id = self._bar.add_task(self.name, total=self.progress.budget, completed=self.progress.done)
        self._live = Live(self._view(), console=self.console, refresh_per_second=4, transient=False)
        self._live.start()

    def update(self, *, final: bool = False) -> None:
        """Refresh the panel, or print a progress line when enough time has passed (or ``final``)."""
        if self._live is not None and self._bar is not None:
            self._bar.update(self._task_id, completed=self.progress.done,  # type: ignore[arg-type]
                             total=self.progress.budget)
            self._live.update(self._view())
        elif final or time.monotonic() - self._last_plain > PLAIN_EVERY_S:
            self._last_plain = time.monotonic()
            print(self.line(), file=sys.stderr, flush=True)

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def _view(self) -> Group:
        p, m = self.progress, self.progress.metrics
        table = Table.grid(padding=(0, 2))
        for label, value in (
            ("done / in flight / failed", f"{p.done} / {p.in_flight} / {p.failures}"),
            ("best fitness", _best(m)),
            ("coverage", fmt(m.get("coverage"))),
            ("QD-score", fmt(m.get("qd_score"))),
            ("archive size", fmt(m.get("archive_size"))),
            ("evaluations / hour", f"{p.per_hour:,.0f}"),
            *self.status(),
        ):
            table.add_row(f"[dim]{label}", value)
        return Group(self._bar, table) if self._bar is not None else Group(table)

    def line(self) -> str:
        """One progress line (for logs)."""
        p, m = self.progress, self.progress.metrics
        total = f"/{p.budget}" if p.budget else ""
        extra = "".join(f", {label}: {text}" for label, text in self.status())
        return (f"[{self.name}] {p.done}{total} done, {p.in_flight} in flight, {p.failures} failed,"
                f" best {_best(m)}, coverage {fmt(m.get('coverage'))}, "
                f"QD-score {fmt(m.get('qd_score'))}, {p.per_hour:,.0f}/h{extra}")


def _best(metrics: dict[str, float]) -> str:
    """The best as reported: a mean over seeds at a rung when the campaign measures again, else the best value."""
    if "best_mean_fitness" in metrics:
        seeds, rung = int(metrics.get("best_seeds", 1)), int(metrics.get("best_rung", 0))
        return f"{fmt(metrics['best_mean_fitness'])} ({seeds} seed{'s' if seeds != 1 else ''}, rung {rung})"
    return fmt(metrics.get("best_fitness"))

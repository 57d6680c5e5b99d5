"""The picture of an open-ended campaign: each task's best against the campaign's compute, and ANNECS below.

``plots/open_ended.png`` in the campaign directory, drawn from the journal alone (``open_ended.jsonl``), so it
is the same whether drawn while the campaign runs, at its end or afterwards by ``ctmevo status``:

- **top**: one line per task, its best fitness after each of its slices against the training steps the whole
  campaign had spent by then (task campaigns, screens and transfers); darker the harder (by the difficulty axes
  in the file's order), a dot where the task was solved, a cross where a transfer from another task beat its best,
  the solve threshold dashed; a line ends where its task retired. A line starts at the task's admission, at the
  best score of the elites screened on it (other tasks' models, fine-tuned briefly): a stepping stone shows as a
  task that starts high.
- **bottom**: ANNECS (tasks admitted after the first and solved since) and the tasks admitted, by round.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search.journal import Journal
from search.open_ended.state import OpenEndedState
from search.paths import OPEN_ENDED_JOURNAL

__all__ = ["PICTURE", "Progress", "ProgressPicture", "draw_progress", "progress_of"]

log = logging.getLogger("ctmevo.open_ended")

PICTURE = "plots/open_ended.png"  # relative to the campaign directory


@dataclass
class Progress:
    """What the picture shows, as plain data: per task its (compute, best) points and where it was solved; per
    round the compute, ANNECS and the tasks admitted."""

    tasks: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # task id → (steps, best; NaN: retired)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # task id → its parameters
    solved: dict[str, tuple[float, float]] = field(default_factory=dict)  # task id → (steps, fitness)
    transfers: list[tuple[str, float, float]] = field(default_factory=list)  # accepted: (to task, steps, fitness)
    rounds: list[tuple[float, float, float]] = field(default_factory=list)  # (steps, annecs, tasks admitted)


def progress_of(events: Iterable[dict[str, Any]]) -> Progress:
    """Replay the journal's ``events`` and note, after each slice, the task's best at the compute spent then."""
    state, out = OpenEndedState(), Progress()  # applied event by event: the picture needs each step on the way
    for event in events:
        state.apply(event)
        kind = event.get("event")
        if kind in ("task", "revived"):
            task = event.get("id", event.get("task"))
            out.params.setdefault(task, dict(event.get("params", {})))
            screened = [float(a["fitness"]) for a in event.get("adopt", []) if a.get("fitness") is not None]
            if screened:  # where its screened elites put it at admission
                out.tasks.setdefault(task, []).append((state.spent, max(screened)))
        elif kind == "retired" and out.tasks.get(event["task"]):  # a gap until it comes back, if it does
            out.tasks[event["task"]].append((state.spent, math.nan))
        elif kind == "transfer" and event.get("accepted") and event.get("fitness") is not None:
            out.transfers.append((event["to"], state.spent, float(event["fitness"])))
        elif kind == "slice" and event.get("best") is not None:
            out.tasks.setdefault(event["task"], []).append((state.spent, float(event["best"])))
        elif kind == "solved":
            out.solved.setdefault(event["task"], (state.spent, float(event["fitness"])))
        elif kind == "round":
            m = event.get("measures", {})
            out.rounds.append((float(m.get("train_steps_spent", state.spent)), float(m.get("annecs", 0.0)),
                               float(m.get("tasks_admitted", len(state.tasks)))))
    return out


def draw_progress(events: Iterable[dict[str, Any]], path: Path, *, axes: Sequence[str], solved: float,
                  title: str) -> Path | None:
    """Draw ``events`` (an open-ended journal) to ``path`` (PNG, replaced atomically); ``None`` before any task
    has a best (nothing to draw). ``axes``: the difficulty axes, which order the tasks from easy to hard."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    from search.views.pictures import save_figure

    p = progress_of(events)
    if not p.tasks:
        return None
    fig = Figure(figsize=(9, 6.5))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})

    def hardness(task: str) -> tuple[float, ...]:
        return tuple(float(p.params.get(task, {}).get(a, 0)) for a in axes)

    cmap, order = colormaps["viridis_r"], sorted(p.tasks, key=hardness)
    colours: dict[str, Any] = {}
    for i, task in enumerate(order):  # the legend from easy to hard, darker the harder
        colour = colours[task] = cmap(0.15 + 0.75 * (i / (len(order) - 1) if len(order) > 1 else 0.5))
        label = ", ".join(f"{a} {p.params.get(task, {}).get(a, '?')}" for a in axes) or task
        xs, ys = zip(*p.tasks[task], strict=True)
        top.step(xs, ys, where="post", color=colour, label=label, linewidth=1.6)
        if task in p.solved:
            top.plot(*p.solved[task], "o", color=colour, markersize=7, markeredgecolor="black")
    for task, steps, fitness in p.transfers:
        top.plot(steps, fitness, "x", color=colours.get(task, "black"), markersize=7, markeredgewidth=2)
    top.axhline(solved, color="grey", linestyle="--", linewidth=1)
    top.set_ylabel("task's best fitness")
    top.set_title(f"{title}: each task's best (dot: solved at {solved:g})")
    top.legend(fontsize=8, ncol=2 if len(p.tasks) > 16 else 1, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    top.grid(alpha=0.3)
    if p.rounds:
        steps, annecs, admitted = zip(*p.rounds, strict=True)
        bottom.step(steps, annecs, where="post", color="black", label="ANNECS")
        bottom.step(steps, admitted, where="post", color="grey", linestyle=":", label="tasks admitted")
        bottom.legend(fontsize=8, loc="upper left")
    bottom.set_xlabel("training steps spent by the whole campaign (screens and transfers included)")
    bottom.set_ylabel("tasks")
    bottom.yaxis.get_major_locator().set_params(integer=True)
    bottom.grid(alpha=0.3)
    return save_figure(fig, path)


class ProgressPicture:
    """Keeps ``plots/open_ended.png`` of the campaign in ``root`` current: redrawn when the journal is newer than
    it, at most every ``every_s`` seconds (or now). A drawing that fails costs a warning, never the campaign."""

    def __init__(self, root: Path, *, axes: Sequence[str], solved: float, title: str, every_s: float) -> None:
        self.root, self.axes, self.solved, self.title, self.every_s = Path(root), list(axes), solved, title, every_s
        self._drawn_at: float | None = None

    @property
    def path(self) -> Path:
        return self.root / PICTURE

    def stale(self) -> bool:
        """Whether the journal holds something the picture does not show (or there is no picture yet)."""
        journal = self.root / OPEN_ENDED_JOURNAL
        return journal.exists() and (not self.path.exists() or self.path.stat().st_mtime < journal.stat().st_mtime)

    def update(self, *, now: bool = False) -> None:
        """Draw when :meth:`stale`, unless one was drawn less than ``every_s`` ago (``now``: whatever the time)."""
        if not self.stale() or (not now and self._drawn_at is not None
                                and time.monotonic() - self._drawn_at < self.every_s):
            return
        self._drawn_at = time.monotonic()
        try:
            draw_progress(Journal(self.root / OPEN_ENDED_JOURNAL).read(), self.path, axes=self.axes,
                          solved=self.solved, title=self.title)
        except Exception as exc:  # a picture is never worth a campaign
            log.warning("could not draw %s: %s", self.path, exc)

"""The state of an open-ended campaign, rebuilt from its journal (``open_ended.jsonl``) event by event.

Events, in the order a round writes them (round r = 1, 2, ...):

- ``task``: a task admitted (the first one at creation): its id, parameters, parent task, round, and the
  screened elites it adopts as its first evaluations.
- ``slice``: one task's campaign ran its share of the round; its best after it, evaluations and steps.
- ``solved``: a task's best reached ``open_ended.solved`` (once per task).
- ``transfer``: an elite of one task fine-tuned on another; accepted when it beats that task's best (then the
  target campaign adopts it at its next slice).
- ``screened``: one elite fine-tuned on one candidate task (written as each lands, so a stop loses none).
- ``candidate``: a screened candidate's verdict: admitted, or why not.
- ``retired``: a task leaves the active set (its archive stays on disk): a solved one, or an unsolved one that
  stalled; ``revived``: a stalled task proposed again and admitted again comes back with its archive.
- ``phase``: the round's transfers or generation are complete; ``round``: the round is complete.
- ``ended``: nothing is left to do before the budget is spent (every task solved and no new one possible, or
  polishing the solved ones no longer raises them while every candidate stays too hard, or a round that trained
  nothing), and why.

Applying the events again gives the same state (the driver's choices are functions of the state and of a
random generator seeded by the round), so a campaign stopped anywhere resumes where it was.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from search.errors import CampaignError

__all__ = ["OpenEndedState", "TaskEntry", "task_table"]


@dataclass
class TaskEntry:
    """One task: its parameters and what its campaign has reached so far."""

    id: str
    params: dict[str, Any]
    parent: str | None
    round: int
    status: str = "active"  # active | retired
    since: int = 0  # the round it (re)entered the active set: it trains from the next one
    best: float | None = None
    best_genome: str | None = None
    evaluations: int = 0  # the task campaign's records after its last slice
    spent: float = 0.0  # training steps of its campaign
    slices: int = 0
    solved_round: int | None = None
    adopt: list[dict[str, Any]] = field(default_factory=list)  # results waiting to be adopted at the next slice
    scores: dict[str, float] = field(default_factory=dict)  # agent → score on this task (own elites, transfers)
    bests: list[float | None] = field(default_factory=list)  # its best after each slice

    @property
    def solved(self) -> bool:
        return self.solved_round is not None


@dataclass
class OpenEndedState:
    """Everything the driver decides from: tasks, the current round's progress, the measures' history."""

    tasks: dict[str, TaskEntry] = field(default_factory=dict)
    rounds: int = 0  # rounds completed
    done: set[str] = field(default_factory=set)  # in the current round: "slice:<task>", "transfers", "generation"
    screens: dict[int, dict[str, dict[str, Any]]] = field(default_factory=dict)  # candidate → agent → result
    candidates: list[dict[str, Any]] = field(default_factory=list)  # every verdict, all rounds
    transfers: list[dict[str, Any]] = field(default_factory=list)
    extra_spent: float = 0.0  # training steps of screens and transfers
    extra_evaluations: int = 0
    history: list[dict[str, float]] = field(default_factory=list)  # one entry per round: the measures then
    elapsed_s: float = 0.0
    ended: str | None = None  # why the campaign ended before its budget (nothing left to do), if it did

    # -- replay ---------------------------------------------------------------------------------------------
    @classmethod
    def replay(cls, events: Iterable[dict[str, Any]]) -> OpenEndedState:
        """The state after ``events`` (a journal's, in order)."""
        state = cls()
        for event in events:
            state.apply(event)
        return state

    def apply(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        handler = getattr(self, f"_on_{kind}", None)
        if handler is None:
            raise CampaignError(f"open_ended.jsonl: unknown event {kind!r}")
        handler(event)

    def _on_task(self, e: dict[str, Any]) -> None:
        self.tasks[e["id"]] = TaskEntry(id=e["id"], params=dict(e["params"]), parent=e.get("parent"),
                                        round=int(e["round"]), since=int(e["round"]))
        self._adopting(self.tasks[e["id"]], e)
        self._admitting(e)

    def _on_slice(self, e: dict[str, Any]) -> None:
        t = self.tasks[e["task"]]
        t.best, t.best_genome = e.get("best"), e.get("genome")
        t.evaluations, t.spent, t.slices = int(e["evaluations"]), float(e["spent"]), t.slices + 1
        t.bests.append(t.best)
        t.adopt = []
        if t.best is not None and t.best_genome is not None:
            t.scores[f"{t.id}/{t.best_genome}"] = float(t.best)
        self.done.add(f"slice:{t.id}")

    def _on_solved(self, e: dict[str, Any]) -> None:
        self.tasks[e["task"]].solved_round = int(e["round"])

    def _on_transfer(self, e: dict[str, Any]) -> None:
        self.transfers.append(dict(e))
        self._extra(e)
        if e.get("fitness") is not None:
            self.tasks[e["to"]].scores[e["agent"]] = float(e["fitness"])
        if e.get("accepted"):
            self.tasks[e["to"]].adopt.append(dict(e))

    def _on_screened(self, e: dict[str, Any]) -> None:
        self.screens.setdefault(int(e["candidate"]), {})[e["agent"]] = dict(e)
        self._extra(e)

    def _on_candidate(self, e: dict[str, Any]) -> None:
        self.candidates.append(dict(e))

    def _on_retired(self, e: dict[str, Any]) -> None:
        self.tasks[e["task"]].status = "retired"
        self._admitting(e)

    def _on_revived(self, e: dict[str, Any]) -> None:
        t = self.tasks[e["task"]]
        t.status, t.bests, t.since = "active", [], int(e["round"])  # its progress is counted afresh
        self._adopting(t, e)
        self._admitting(e)

    def _admitting(self, e: dict[str, Any]) -> None:
        """A task entered or left the active set in this round: its verdicts are all journaled (a round resumed
        from here admits as they said, since the tasks that proposed and judged them have changed)."""
        if int(e["round"]) == self.rounds + 1:
            self.done.add("admitting")

    @staticmethod
    def _adopting(t: TaskEntry, e: dict[str, Any]) -> None:
        """A task (new or revived) starts with the screened models of its admission: adopted at its next slice,
        their scores its first."""
        t.adopt = list(e.get("adopt", []))
        for item in t.adopt:
            t.scores[item["agent"]] = float(item["fitness"])

    def _on_phase(self, e: dict[str, Any]) -> None:
        self.done.add(e["phase"])

    def _on_round(self, e: dict[str, Any]) -> None:
        self.rounds = int(e["round"])
        self.done, self.screens = set(), {}
        self.elapsed_s = float(e.get("elapsed_s", self.elapsed_s))
        self.history.append({k: float(v) for k, v in e.get("measures", {}).items()})

    def _on_ended(self, e: dict[str, Any]) -> None:
        self.ended = str(e["why"])

    def _extra(self, e: dict[str, Any]) -> None:
        self.extra_spent += float(e.get("steps", 0))
        self.extra_evaluations += 1

    # -- reading ------------------------------------------------------------------------------------------
    @property
    def active(self) -> list[TaskEntry]:
        return [t for t in self.tasks.values() if t.status == "active"]

    def verdicts(self, r: int) -> dict[int, dict[str, Any]]:
        """Round ``r``'s verdicts on its proposed candidates, by candidate index (not the no-room records)."""
        return {int(c["index"]): c for c in self.candidates if c["round"] == r and c["index"] >= 0}

    def training(self, r: int) -> list[TaskEntry]:
        """The tasks whose campaigns train in round ``r``: the active ones that entered before it (a task admitted or
        revived in round ``r`` trains from ``r + 1``, also when the round is resumed after its admission) and were
        unsolved when it began; when every one of them was solved by then, all of them (:meth:`polishing`)."""
        entered = [t for t in self.active if t.since < r]
        return [t for t in entered if t.solved_round is None or t.solved_round >= r] or entered

    def polishing(self, r: int) -> bool:
        """Whether round ``r`` trains solved tasks: every task active since before it was solved, and the last
        generation admitted none. POET optimises every pair without end; here the solved tasks' elites train on, so
        that the candidates refused as too hard are screened again by better models (:meth:`training`)."""
        return any(t.solved_round is not None and t.solved_round < r for t in self.training(r))

    def exhausted(self, r: int, made: int | None, rounds: int, delta: float) -> str | None:
        """Why the campaign ends after round ``r`` whose generation made ``made`` candidates (None: no generation),
        with budget left, or ``None``: every active task solved and no new task possible; or every one solved,
        :meth:`polishing` them raised none by ``delta`` over their last ``rounds`` slices (never when ``rounds`` is
        0: then only the budget ends it), and every candidate stayed too hard."""
        if not all(t.solved for t in self.active):
            return None
        if made == 0:
            return ("every active task is solved and no new task can be made from them (each axis is at its limit, "
                    "or every neighbour was tried)")
        flat = all(len(t.bests) > rounds and (_rise(t.bests, rounds) or 0.0) < delta for t in self.training(r))
        if made and rounds > 0 and self.polishing(r) and flat:
            return (f"every active task is solved, {rounds} rounds of training them on raised none by {delta:g}, "
                    "and every candidate stays too hard for their elites")
        return None

    def stalled(self, rounds: int, delta: float) -> list[tuple[float, TaskEntry]]:
        """The active unsolved tasks whose best rose by less than ``delta`` over their last ``rounds`` slices,
        with that rise (a task without a best yet counts as no rise); none when ``rounds`` is 0."""
        if rounds <= 0:
            return []
        out = []
        for t in self.active:
            if t.solved or len(t.bests) <= rounds:
                continue
            rise = _rise(t.bests, rounds) or 0.0
            if rise < delta:
                out.append((rise, t))
        return out

    def allocation(self, slice_: int, window: int, floor: float = 1 / 3) -> dict[str, int]:
        """Evaluations of each task that trains this round (:meth:`training`), by learning progress
        (``open_ended.allocation: progress``; OMNI-EPIC and teacher-student curricula spend where the learner is
        improving): the round's ``slice_`` × tasks evaluations are shared in proportion to each task's rise of its
        best over its last ``window`` slices, every task keeping ``floor`` of an equal share. A task with fewer
        slices (new, or revived) counts as rising as fast as the fastest; with no rise anywhere, the shares are
        equal. Read from the bests *before* this round's slices, so it is the same at every point of the round (a
        resumed round gives each task what it had)."""
        tasks = self.training(self.rounds + 1)
        rises: dict[str, float | None] = {}
        for t in tasks:
            bests = t.bests[:-1] if f"slice:{t.id}" in self.done else t.bests
            rise = _rise(bests, window) if len(bests) > window else None
            rises[t.id] = None if rise is None else max(0.0, round(rise, 9))
        fastest = max((v for v in rises.values() if v is not None), default=0.0)
        weights = {k: fastest if v is None else v for k, v in rises.items()}
        total, whole = slice_ * len(tasks), sum(weights.values())
        if whole <= 0:
            return {k: slice_ for k in weights}
        shares = {k: total * (floor / len(tasks) + (1 - floor) * w / whole) for k, w in weights.items()}
        sizes = {k: max(1, int(v)) for k, v in shares.items()}
        for k in sorted(shares, key=lambda k: (int(shares[k]) - shares[k], k))[:max(0, total - sum(sizes.values()))]:
            sizes[k] += 1  # largest remainders first: the round keeps its total
        return sizes

    def victim(self, rounds: int, delta: float) -> tuple[TaskEntry, str] | None:
        """The task to retire for a new one, and why: the oldest solved, else the stalled one (:meth:`stalled`)
        that rose least (then the lowest best, the oldest); ``None`` when every active task is unsolved and
        progressing."""
        solved = [t for t in self.active if t.solved]
        if solved:
            oldest = min(solved, key=lambda t: (t.round, t.id))
            return oldest, f"solved in round {oldest.solved_round}"
        stalled = self.stalled(rounds, delta)
        if not stalled:
            return None
        rise, least = min(stalled, key=lambda x: (x[0], -1.0 if x[1].best is None else x[1].best, x[1].round,
                                                  x[1].id))
        best = "-" if least.best is None else f"{least.best:.3f}"
        return least, f"stalled: best {best}, {rise:+.3f} over its last {rounds} slices"

    def budget_spent(self, budget: Any, elapsed_s: float) -> bool:
        """Whether ``budget`` (its ``steps``, ``evaluations`` and ``wall_time_s``; None: no limit) is spent after
        ``elapsed_s`` seconds of running."""
        return ((budget.steps is not None and self.spent >= budget.steps)
                or (budget.evaluations is not None and self.evaluations >= budget.evaluations)
                or (budget.wall_time_s is not None and elapsed_s >= budget.wall_time_s))

    @property
    def spent(self) -> float:
        """Training steps of everything: the task campaigns, the screens and the transfers."""
        return sum(t.spent for t in self.tasks.values()) + self.extra_spent

    @property
    def evaluations(self) -> int:
        return sum(t.evaluations for t in self.tasks.values()) + self.extra_evaluations

    def measures(self, axes: list[str]) -> dict[str, float]:
        """ANNECS (tasks admitted by the minimal criterion, after the first, and solved since), the hardest solved
        value of each axis, transfers tried and accepted, and the counts of tasks."""
        tasks = list(self.tasks.values())
        solved = [t for t in tasks if t.solved]
        out = {"annecs": float(sum(t.solved and t.parent is not None for t in tasks)),
               "tasks_admitted": float(len(tasks)), "tasks_active": float(len(self.active)),
               "tasks_solved": float(len(solved)), "transfers_tried": float(len(self.transfers)),
               "transfers_accepted": float(sum(bool(x.get("accepted")) for x in self.transfers)),
               "train_steps_spent": self.spent, "evaluations": float(self.evaluations)}
        for name in axes:
            values = [float(t.params[name]) for t in solved]
            if values:
                out[f"hardest_solved_{name}"] = max(values)
        return out


def _rise(bests: Sequence[float | None], window: int) -> float | None:
    """How much a task's best rose over its last ``window`` slices (no best then: from 0); None without a best now
    (the caller makes sure there are more than ``window`` slices)."""
    now, then = bests[-1], bests[-1 - window]
    return None if now is None else now - (then if then is not None else 0.0)


def task_table(state: OpenEndedState, axes: Sequence[str]) -> str:
    """The tasks as a markdown table (the MLflow run's description, and ``ctmevo status``)."""
    lines = ["| task | parameters | parent | best | evaluations | solved | status |", "|---|---|---|---|---|---|---|"]
    for t in state.tasks.values():
        params = ", ".join(f"{k} {t.params[k]}" for k in axes)
        best = "-" if t.best is None else f"{t.best:.3f}"
        solved = "-" if t.solved_round is None else f"round {t.solved_round}"
        lines.append(f"| {t.id} | {params} | {t.parent or '-'} | {best} | {t.evaluations} | {solved} | {t.status} |")
    return "\n".join(lines)

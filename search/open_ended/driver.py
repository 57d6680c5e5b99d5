"""An open-ended campaign: task campaigns run in rounds, new tasks admitted by a minimal criterion, elites moved.

One round (r = 1, 2, ...), every step journaled (:mod:`.state`) so a stop anywhere resumes where it was::

    slices       each active unsolved task's campaign (tasks/<id>/, an ordinary campaign: archive, rungs,
                 journal; when all are solved, all of them: :meth:`.OpenEndedState.training`) runs ``slice``
                 more evaluations (``allocation: progress``: a share by learning progress, see
                 :meth:`.OpenEndedState.allocation`) on the shared worker pool, first adopting what waits for it
                 (transfers that beat its best; the screened elites that admitted it); its best is noted, and
                 the task is *solved* when that best reaches ``solved``
    transfers    every ``transfer_every`` rounds: each active task's best model is fine-tuned on every other
                 active unsolved task (:mod:`.work`; a mutation of it where the target has that architecture);
                 one that beats the target's best is adopted there
    generation   every ``new_tasks_every`` rounds: candidates mutated from tasks whose best reached
                 ``reproduce``; each is screened by fine-tuning the current elites on it; those that pass the
                 minimal criterion are admitted most novel first (:mod:`.tasks`; ties: the best screened
                 score first), up to ``admit``; a full active set retires its oldest solved task, else the
                 stalled task (``stall_rounds`` slices without a rise of ``stall_delta``) that rose least, which
                 comes back, archive and all, if a later generation proposes and admits it again (with no task
                 solved or stalled, no candidates are made)
    round        the measures (ANNECS, hardest solved, transfers) go to the journal, screen, MLflow, picture

Compute (``budget.steps``) counts every training step: the task campaigns, the screens and the transfers.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ctm.result import TaskSpec
from genome.genome import Genome
from search.campaign.config import BudgetSection, CampaignConfig, load_campaign_config
from search.campaign.loop import Campaign
from search.errors import CampaignError
from search.journal import Journal
from search.open_ended import tasks as rules
from search.open_ended.picture import ProgressPicture
from search.open_ended.state import OpenEndedState, TaskEntry
from search.open_ended.tracking import MeasuresRun
from search.open_ended.work import Elite, Fine, adoption, best_models, by_depth, job_seed, newcomer, run_fine_tunes
from search.paths import OPEN_ENDED_JOURNAL, CampaignPaths, default_tracking_uri, is_open_ended, lock_campaign
from search.views import CampaignReporter, KeptReporter, QuietReporter
from workers import Pool, WorkersConfig, make_pool

__all__ = ["JOURNAL", "OpenEnded", "is_open_ended"]

JOURNAL = OPEN_ENDED_JOURNAL


class OpenEnded:
    """An open-ended campaign directory: ``campaign.yaml``, ``open_ended.jsonl``, ``tasks/<id>/`` (one campaign
    per task), ``weights/`` (screens and transfers) and the shared MLflow store."""

    def __init__(self, *, config: CampaignConfig, directory: Path) -> None:
        if config.open_ended is None:
            raise CampaignError("this campaign file has no open_ended: section; run it as a fixed-task campaign")
        self.config, self.oe, self.root = config, config.open_ended, Path(directory)
        self.axes = list(self.oe.axes)
        self.paths = CampaignPaths(self.root)
        self.journal = Journal(self.root / JOURNAL)
        self.weights = self.root / "weights"
        self.state = OpenEndedState()
        self.say: Callable[[str], None] = print
        self._started, self._elapsed_before = time.monotonic(), 0.0
        self._quiet = False
        self._picture: ProgressPicture | None = None  # plots/open_ended.png (not when quiet)
        self._open: dict[str, Campaign] = {}  # active tasks' campaigns, open across slices
        self._reporters: dict[str, KeptReporter] = {}  # their reporters (MLflow, pictures), started once

    # -- creation and resumption ---------------------------------------------------------------------------
    @classmethod
    def create(cls, config: CampaignConfig, directory: Path | None = None) -> OpenEnded:
        root = Path(directory) if directory else config.directory()
        if is_open_ended(root) or CampaignPaths(root).meta.exists():
            raise CampaignError(f"{root} already holds a campaign: continue it with 'ctmevo resume {root}', or "
                                "start over with 'ctmevo run FILE --fresh'")
        root.mkdir(parents=True, exist_ok=True)
        CampaignPaths(root).config.write_text(config.to_yaml())
        self = cls(config=config, directory=root)
        first = dict(config.task.params)
        self._write({"event": "task", "id": rules.task_id(1, first, self.axes), "params": first, "parent": None,
                     "round": 0})
        return self

    @classmethod
    def open(cls, directory: Path) -> OpenEnded:
        root = Path(directory)
        if not is_open_ended(root):
            raise CampaignError(f"{root} is not an open-ended campaign (no {JOURNAL})")
        self = cls(config=load_campaign_config(CampaignPaths(root).config), directory=root)
        self.state = OpenEndedState.replay(self.journal.read())
        self._started, self._elapsed_before = time.monotonic(), self.state.elapsed_s
        return self

    def _write(self, event: dict[str, Any]) -> None:
        self.journal.append(event)  # fsynced: on disk before anything depends on it
        self.state.apply(event)

    # -- the budget ----------------------------------------------------------------------------------------
    @property
    def elapsed_s(self) -> float:
        """Wall time over every session: the journal's at the last stop, plus this session's."""
        return self._elapsed_before + time.monotonic() - self._started

    def finished(self) -> bool:
        return self.state.budget_spent(self.config.budget, self.elapsed_s)

    # -- the loop ------------------------------------------------------------------------------------------
    def run(self, *, pool: Pool | None = None, say: Callable[[str], None] = print, quiet: bool = False
            ) -> OpenEndedState:
        """Rounds until the budget is spent (no budget: until Ctrl-C, which stops at the next safe point).
        ``quiet``: no MLflow, pictures or live view (benchmarks; the journals hold everything)."""
        self.say, self._quiet = say, quiet
        with lock_campaign(self.root):
            own = pool is None
            pool = pool or make_pool(WorkersConfig.from_dict(self.config.workers))
            c = self.config
            uri, experiment = c.tracking.uri or default_tracking_uri(self.paths), c.tracking.experiment or c.name
            measures = None if quiet else MeasuresRun(uri=uri, experiment=experiment, name=c.name, root=self.root)
            self._picture = None if quiet else ProgressPicture(self.root, axes=self.axes, solved=self.oe.solved,
                                                               title=c.name, every_s=c.plot_every_s)
            status = "FAILED"
            try:
                while not self.finished() and self.state.ended is None:
                    if not self._round(self.state.rounds + 1, pool, measures):
                        break
                status = "FINISHED"
            except KeyboardInterrupt:
                status = "KILLED"
                raise
            finally:
                if own:
                    with contextlib.suppress(Exception):
                        pool.shutdown()
                for reporter in self._reporters.values():  # MLflow and the pictures catch up once, at the end
                    reporter.end(status)
                self._reporters.clear()
                if self._picture is not None:
                    self._picture.update(now=True)
                if measures is not None:
                    measures.finish(status, picture=self._picture.path if self._picture is not None else None)
        return self.state

    def _round(self, r: int, pool: Pool, measures: MeasuresRun | None) -> bool:
        """One round; ``False`` when nothing is left to do (every active task solved, no new task possible)."""
        before = (self.state.spent, len(self.state.tasks))
        whole = not any(key.startswith("slice:") for key in self.state.done)  # no slice of it ran before a stop
        sizes = (self.state.allocation(self.oe.slice, self.oe.stall_rounds or 3)
                 if self.oe.allocation == "progress" else {})
        for task in self.state.training(r):  # unsolved ones; all, when every one is solved (polishing)
            if f"slice:{task.id}" not in self.state.done:
                self._slice(task, r, pool, sizes.get(task.id, self.oe.slice))
            if self.finished():
                break  # the budget is spent: the round ends here, its measures are journaled and logged
        if (self.oe.transfer_every and r % self.oe.transfer_every == 0 and "transfers" not in self.state.done
                and not self.finished()):
            self._transfers(r, pool)
        made = None
        if r % self.oe.new_tasks_every == 0 and "generation" not in self.state.done and not self.finished():
            made = self._generation(r, pool)
        m = self.state.measures(self.axes)
        self._write({"event": "round", "round": r, "elapsed_s": self.elapsed_s, "measures": m})
        if measures is not None:
            measures.log(r, m, self.state, self.axes)
        if self._picture is not None:
            self._picture.update()
        why = self.state.exhausted(r, made, self.oe.stall_rounds, self.oe.stall_delta)
        if why is None and whole and (self.state.spent, len(self.state.tasks)) == before and any(
                not t.solved for t in self.state.active):
            why = (f"round {r} trained nothing and admitted no task: every evaluation failed? See ctmevo status "
                   f"{self.root / 'tasks'}/<id> for the failures")
        if why is not None:
            self._write({"event": "ended", "round": r, "why": why})
            self.say(f"{why}: the campaign ends here")
        return why is None

    # -- slices --------------------------------------------------------------------------------------------
    def task_config(self, task: TaskEntry, evaluations: int, steps: int | None = None) -> CampaignConfig:
        """The campaign of one task: the file's, with the task's parameters, its own seed, the shared store."""
        c = self.config
        tracking = c.tracking.model_copy(update={"uri": c.tracking.uri or default_tracking_uri(self.paths),
                                                 "experiment": c.tracking.experiment or c.name,
                                                 "checkpoints": "all" if c.tracking.checkpoints == "all" else
                                                 "elites"})
        return c.model_copy(update={
            "name": f"{c.name}-{task.id}", "seed": job_seed(c.seed, task.id), "output_dir": None,
            "task": c.task.model_copy(update={"params": {**c.task.params, **task.params}}),
            "budget": BudgetSection(evaluations=evaluations, steps=steps), "tracking": tracking, "open_ended": None})

    def campaign(self, task: TaskEntry, evaluations: int | None = None, steps: int | None = None) -> Campaign:
        """The task's campaign (created at its first slice), with a budget of ``evaluations`` records (and
        ``steps`` of its own training, when given)."""
        directory = self.root / "tasks" / task.id
        config = self.task_config(task, evaluations or max(task.evaluations, 1), steps)
        campaign = self._open.get(task.id)  # kept open across slices: its journal is replayed once
        if campaign is not None:
            campaign.config = config  # only the budget differs
        elif not CampaignPaths(directory).meta.exists():
            campaign = Campaign.create(config, directory)
        else:
            campaign = Campaign.open(directory, config=config)
        if task.status == "active":
            self._open[task.id] = campaign
        return campaign

    def _slice(self, task: TaskEntry, r: int, pool: Pool, n: int) -> None:
        items = sorted(task.adopt, key=lambda item: -float(item["fitness"]))  # a genome twice: its best model
        adopt = [a for item in items
                 if (a := adoption(item, self.weights, operator=item.get("kind", "transfer"))) is not None]
        steps = None  # the slice stops where the whole campaign's compute ends
        if self.config.budget.steps is not None:
            steps = max(1, int(task.spent + self.config.budget.steps - self.state.spent))
        campaign = self.campaign(task, task.evaluations + len(adopt) + n, steps=steps)
        self.say(f"round {r}: {task.id} ({_params(task.params)}): {n} evaluations"
                 + (f", adopting {len(adopt)} from other tasks" if adopt else ""))
        reporter = self._reporters.get(task.id)
        if reporter is None:
            inner = QuietReporter() if self._quiet else CampaignReporter(campaign)
            reporter = self._reporters[task.id] = KeptReporter(inner)
        campaign.run(pool=pool, adopt=adopt, reporter=reporter)
        best = campaign.rungs.best()
        genome, value = (best[0], best[1].mean) if best is not None else (None, None)
        self._write({"event": "slice", "task": task.id, "round": r, "best": value, "genome": genome,
                     "evaluations": campaign.ledger.results, "spent": campaign.ledger.spent})
        if value is not None and not task.solved and value >= self.oe.solved:
            self._write({"event": "solved", "task": task.id, "round": r, "fitness": value, "genome": genome})
            self.say(f"round {r}: {task.id} solved: best {value:.3f} >= {self.oe.solved:g}")

    # -- elites, transfers and screens ---------------------------------------------------------------------
    def elites(self, task: TaskEntry, n: int) -> list[Elite]:
        """The task's ``n`` best trained models (those whose weights are on disk), best first."""
        return best_models(self.campaign(task), task.id, n)

    def spec(self, params: dict[str, Any]) -> TaskSpec:
        return TaskSpec(name=self.config.task.name, params={**self.config.task.params, **params})

    def _fine_tunes(self, pool: Pool, fines: list[Fine], landed: Callable[..., None]) -> None:
        budget = self.config.evaluation.budget()  # rung 0: evaluation.steps is the first rung
        self.weights.mkdir(parents=True, exist_ok=True)
        run_fine_tunes(pool, fines, budget=budget, seed=self.config.seed, weights=self.weights, landed=landed)

    def _transfers(self, r: int, pool: Pool) -> None:
        active = self.state.active
        done = {(x["agent"], x["to"]) for x in self.state.transfers if x["round"] == r}
        fines, target_of = [], {}
        known = {t.id: {r.genome.hash for r in self.campaign(t).records} for t in active if not t.solved}
        for source in active:
            for elite in self.elites(source, 1):
                for target in active:  # a solved target has nothing to gain
                    if target.id == source.id or target.id not in known or (elite.agent, target.id) in done:
                        continue
                    key = f"r{r}-transfer-{source.id}-{target.id}"
                    fines.append(Fine(key=key, elite=elite, target=self.spec(target.params),
                                      genome=self._newcomer(elite.genome, known[target.id], key)))
                    target_of[key] = target

        def landed(fine: Fine, result: Any, stem: str) -> None:
            target = target_of[fine.key]
            fitness = result.fitness if result.ok else None
            accepted = fitness is not None and (target.best is None or fitness > target.best)
            self._write({"event": "transfer", "round": r, "from": fine.elite.agent.split("/")[0], "to": target.id,
                         "agent": fine.elite.agent, "genome": fine.model.hash,
                         "genes": fine.model.to_dict(), "fitness": fitness, "accepted": accepted,
                         "file": stem, "steps": result.metrics.get("train_steps", 0.0), "kind": "transfer"})
            if accepted:
                self.say(f"round {r}: transfer {fine.elite.agent} → {target.id}: {fitness:.3f} beats "
                         f"{_fmt(target.best)}")

        if fines:
            self.say(f"round {r}: transfers: {len(fines)} fine-tunes of elites on other tasks")
            self._fine_tunes(pool, fines, landed)
        self._write({"event": "phase", "round": r, "phase": "transfers"})

    def _newcomer(self, genome: Genome, known: set[str], key: str) -> Genome:
        """The genome a transfer brings (:func:`.work.newcomer`), from a generator fixed by the transfer's key."""
        return newcomer(genome, known, self.config.space(), np.random.default_rng([self.config.seed,
                                                                                    job_seed(0, key)]))

    def _generation(self, r: int, pool: Pool) -> int:
        """New candidate tasks, screened and judged; returns how many candidates there were (-1: no room)."""
        oe, judged = self.oe, self.state.verdicts(r)
        if "admitting" in self.state.done:  # stopped while admitting: every verdict is journaled, the tasks changed
            self._admit(r, [(judged[i]["parent"], judged[i]["params"]) for i in sorted(judged)])
            self._write({"event": "phase", "round": r, "phase": "generation"})
            return len(judged)
        if len(self.state.active) >= oe.max_active and self.state.victim(oe.stall_rounds, oe.stall_delta) is None:
            self._write({"event": "phase", "round": r, "phase": "generation"})  # no room: unsolved tasks progress
            return -1
        rng = np.random.default_rng([self.config.seed, r, 20_261_206])
        parents = [t for t in self.state.active if t.best is not None and t.best >= oe.reproduce]
        elites = self._screen_elites()
        agents = sorted(e.agent for e in elites)
        seen = {self._key(t.params) for t in self.state.tasks.values()  # never a task again (a stalled one may come
                if t.status == "active" or t.solved}  # back); a refused candidate
        polishing = self.state.polishing(r)  # the elites trained on since: a task too hard for them is screened again
        seen |= {self._key(c["params"]) for c in self.state.candidates  # only once the elites have changed
                 if sorted(c["scores"]) == agents and not (c["why"] or "").startswith(("passed", "no room"))
                 and not (polishing and c["why"] == "too hard") and c["round"] < r}  # as before a stop
        stopped = (all(t.solved for t in self.state.active)  # the frontier has stopped: fine moves may fill in
                   or bool(self.state.stalled(oe.stall_rounds, oe.stall_delta)))  # where the coarse ones ran dry
        candidates = rules.propose([(p.id, p.params) for p in parents], {k: v.model_dump() for k, v in oe.axes.items()},
                                   seen, rng, want=oe.candidates, tries=20 * oe.candidates, refine=stopped)
        fines = [Fine(key=f"r{r}-screen-{i}-{e.agent}", elite=e, target=self.spec(params))
                 for i, (_, params) in enumerate(candidates) for e in elites
                 if e.agent not in self.state.screens.get(i, {})]

        def landed(fine: Fine, result: Any, stem: str) -> None:
            index = int(fine.key.split("-")[2])
            self._write({"event": "screened", "round": r, "candidate": index, "agent": fine.elite.agent,
                         "genome": fine.elite.genome.hash, "genes": fine.elite.genome.to_dict(),
                         "fitness": result.fitness if result.ok else None, "file": stem,
                         "steps": result.metrics.get("train_steps", 0.0)})

        if fines:
            self.say(f"round {r}: screening {len(candidates)} candidate tasks with {len(elites)} elites")
            self._fine_tunes(pool, fines, landed)
        self._admit(r, candidates)
        self._write({"event": "phase", "round": r, "phase": "generation"})
        return len(candidates)

    def _screen_elites(self) -> list[Elite]:
        """The models screened on candidates (:func:`.work.by_depth` of every active task's best)."""
        return by_depth([self.elites(t, self.oe.screen_elites) for t in self.state.active], self.oe.screen_elites)

    def _admit(self, r: int, candidates: list[tuple[str, dict[str, Any]]]) -> None:
        oe, band = self.oe, tuple(self.oe.criterion)
        judged = self.state.verdicts(r)
        verdicts = []
        for i, (parent, params) in enumerate(candidates):
            screens = self.state.screens.get(i, {})
            scores = {a: (s["fitness"] if s["fitness"] is not None else 0.0) for a, s in screens.items()}
            seen = {t.id: t.scores for t in self.state.tasks.values() if self._key(t.params) != self._key(params)}
            nov = rules.novelty(scores, seen, band, k=oe.novelty_k)  # type: ignore[arg-type]
            why = rules.verdict(list(scores.values()), band, nov, oe.novelty_min)  # type: ignore[arg-type]
            verdicts.append((i, parent, params, scores, nov, why))
        passing = sorted((v for v in verdicts if v[5] is None),  # most novel first; then the best screened
                         key=lambda v: (-(v[4] if v[4] is not None else 9.0), -max(v[3].values(), default=0.0)))
        chosen = {v[0] for v in passing[: oe.admit]}  # or, once journaled, as the verdicts said (before a stop)
        chosen = {i for i in chosen if i not in judged} | {i for i, c in judged.items() if c["admitted"]}
        for i, parent, params, scores, nov, why in verdicts:
            if i in judged:
                continue
            why = why or (None if i in chosen else f"passed, but {oe.admit} more novel admitted first")
            self._write({"event": "candidate", "round": r, "index": i, "params": params, "parent": parent,
                         "scores": scores, "novelty": nov, "admitted": i in chosen, "why": why})
            self.say(f"round {r}: candidate {_params(params)} from {parent}: "
                     + ("admitted" if i in chosen else f"refused ({why})")
                     + f"; best screened {_fmt(max(scores.values(), default=None))}, novelty {_fmt(nov)}")
        for i in sorted(chosen):
            params = candidates[i][1]
            old = next((t for t in self.state.tasks.values() if self._key(t.params) == self._key(params)), None)
            if old is not None and old.status == "active":
                continue  # admitted before a stop
            if len(self.state.active) >= oe.max_active and not self._retire(r):
                self._write({"event": "candidate", "round": r, "index": -1 - i, "params": params, "parent": None,
                             "scores": {}, "novelty": None, "admitted": False,
                             "why": f"no room: {oe.max_active} active tasks, none solved or stalled"})
                continue
            adopt = [dict(s, kind="screen") for s in self.state.screens.get(i, {}).values()
                     if s["fitness"] is not None]
            if old is not None:  # a stalled task proposed again: its archive goes on, with the screened elites
                self._write({"event": "revived", "task": old.id, "round": r, "adopt": adopt})
                self.say(f"round {r}: {old.id} back (it had stalled at {_fmt(old.best)})")
                continue
            task = rules.task_id(len(self.state.tasks) + 1, params, self.axes)
            self._write({"event": "task", "id": task, "params": params, "parent": candidates[i][0], "round": r,
                         "adopt": adopt})
            self.say(f"round {r}: new task {task}")

    def _retire(self, r: int) -> bool:
        """Retire :meth:`.OpenEndedState.victim` to make room; ``False`` when there is none (progressing tasks stay)."""
        chosen = self.state.victim(self.oe.stall_rounds, self.oe.stall_delta)
        if chosen is None:
            return False
        victim, why = chosen
        self._write({"event": "retired", "task": victim.id, "round": r, "why": why})
        self._open.pop(victim.id, None)
        if (reporter := self._reporters.pop(victim.id, None)) is not None:
            reporter.end("FINISHED")
        self.say(f"round {r}: {victim.id} retired ({why}; its archive stays)")
        return True

    def _key(self, params: dict[str, Any]) -> tuple[Any, ...]:
        return rules.task_key(params, self.axes)


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in params.items())


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"

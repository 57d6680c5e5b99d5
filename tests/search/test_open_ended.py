"""Open-ended campaigns (``open_ended:``): the pure rules (mutation, minimal criterion, PATA-EC novelty), a campaign
that climbs a synthetic skill landscape (tests/search/open_ended_fakes.py), transfers adopted by a task's
campaign, MLflow's view of it, stalled tasks retired and revived, a kill while a new task is being admitted, and bad
``open_ended`` fields."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

from search.campaign import Campaign
from search.campaign.config import parse_campaign_config
from search.campaign.rungs import JobKey
from search.errors import ConfigError
from search.journal import Journal
from search.open_ended.driver import OpenEnded
from search.open_ended.picture import PICTURE, draw_progress, progress_of
from search.open_ended.tasks import minimal_criterion, mutate, novelty, pata_ec, propose, verdict
from search.open_ended.tracking import TAG_TASK
from tests.search.test_campaign import ROOT, env

AXES = {"length": {"min": 4, "max": 16, "step": 2}}


def oe_config(tmp: Path, *, steps: int = 4000, **open_ended: object) -> dict:
    return {
        "name": "oe", "seed": 1, "output_dir": str(tmp / "oe"),
        "task": {"name": "parity", "params": {"length": 4}},
        "genome_space": {"ticks": {"min": 1, "max": 16}, "memory_length": {"min": 1, "max": 8}},
        "strategy": {"name": "map_elites", "settings": {"initial_samples": 4}},
        "descriptors": [{"name": "ticks", "bins": 4, "range": [1, 17]},
                        {"name": "memory_length", "bins": 4, "range": [1, 9]}],
        "evaluation": {"steps": 100, "val_samples": 16, "fidelity": {"rungs": [100, 400], "eta": 2}},
        "budget": {"steps": steps},
        "workers": {"backend": "inline", "evaluate_fn": "tests.search.open_ended_fakes:skill_evaluate"},
        "tracking": {"checkpoints": "elites"}, "plot_every_s": 600,
        "open_ended": {"axes": AXES, "slice": 4, "new_tasks_every": 1, "transfer_every": 1, "candidates": 2,
                       "screen_elites": 3, "reproduce": 0.75, **open_ended},
    }


# -- the rules -------------------------------------------------------------------------------------------------
def test_mutation_moves_along_the_axes_within_their_ranges() -> None:
    rng = np.random.default_rng(0)
    axes = {"size": {"min": 5, "max": 15, "step": 2}, "route": {"min": 1, "max": 8, "step": 1}}
    seen = set()
    for _ in range(300):
        child = mutate({"size": 15, "route": 4, "other": "kept"}, axes, rng)
        assert child["other"] == "kept" and 5 <= child["size"] <= 15 and 1 <= child["route"] <= 8
        assert (child["size"] - 15) % 2 == 0 and abs(child["route"] - 4) <= 2
        seen.add((child["size"], child["route"]))
    assert {11, 13, 15} <= {s for s, _ in seen} and {2, 3, 5, 6} <= {r for _, r in seen}
    again = [mutate({"size": 9, "route": 4}, axes, np.random.default_rng(7)) for _ in range(2)]
    assert again[0] == again[1]  # a function of its generator


def test_new_tasks_fill_in_at_the_fine_step_only_once_the_coarse_neighbours_are_all_seen() -> None:
    axes = {"length": {"min": 4, "max": 16, "step": 2, "fine_step": 1}}
    parents = [("t03", {"length": 8}), ("t04", {"length": 10})]

    def key(*lengths: int) -> set[tuple[int, ...]]:
        return {(n,) for n in lengths}

    coarse = propose(parents, axes, key(8, 10), np.random.default_rng(0), want=3, tries=40)
    assert len(coarse) == 3 and {p["length"] for _, p in coarse} <= {4, 6, 12, 14}  # the coarse step while it can
    seen = key(4, 6, 8, 10, 12, 14)  # every coarse neighbour of 8 and 10 seen: fill in between them
    fine = propose(parents, axes, seen, np.random.default_rng(0), want=3, tries=40)
    assert sorted(p["length"] for _, p in fine) == [7, 9, 11] and seen >= key(7, 9, 11)  # now seen as well
    moving = propose(parents, axes, key(4, 6, 8, 10, 12, 14), np.random.default_rng(0), want=3, tries=40,
                     refine=False)
    assert moving == []  # while the frontier moves, no filling in
    without = {"length": {"min": 4, "max": 16, "step": 2}}  # no fine_step: the family stops there
    assert propose(parents, without, key(4, 6, 8, 10, 12, 14), np.random.default_rng(0), want=3, tries=40) == []
    assert propose([], axes, set(), np.random.default_rng(0), want=3, tries=40) == []
    again = propose(parents, axes, key(8, 10), np.random.default_rng(0), want=3, tries=40)
    assert again == coarse  # a function of its generator


def test_the_minimal_criterion_admits_tasks_neither_too_hard_nor_too_easy() -> None:
    band = (0.6, 0.95)
    assert minimal_criterion([0.5, 0.55], band) == "too hard"
    assert minimal_criterion([], band) == "too hard"
    assert minimal_criterion([0.7, 0.96], band) == "too easy"  # an elite already solves it
    assert minimal_criterion([0.2, 0.6], band) is None and minimal_criterion([0.94], band) is None
    assert verdict([0.8], band, 0.01, 0.05) == "not novel (0.010 < 0.05)"
    assert verdict([0.99], band, 0.5, 0.05) == "too easy"  # the criterion is judged first


def test_pata_ec_ranks_clipped_scores_and_novelty_compares_rankings() -> None:
    band = (0.6, 0.95)
    agents = ["a", "b", "c", "d"]
    ranking = pata_ec({"a": 0.1, "b": 0.7, "c": 0.99, "d": 0.8}, agents, band)
    assert ranking.tolist() == pytest.approx([-0.5, -1 / 6, 0.5, 1 / 6])
    ties = pata_ec({"a": 0.1, "b": 0.2, "c": 0.97, "d": 0.99}, agents, band)  # clipped: two ties
    assert ties.tolist() == pytest.approx([-1 / 3, -1 / 3, 1 / 3, 1 / 3])
    same = {"a": 0.65, "b": 0.7, "c": 0.8, "d": 0.9}
    seen = {"t1": {"a": 0.61, "b": 0.75, "c": 0.85, "d": 0.94}, "t2": {"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.65}}
    assert novelty(same, {"t1": seen["t1"]}, band, k=1) == 0.0  # the same order of the elites: a copy
    reverse = novelty(same, {"t2": seen["t2"]}, band, k=1)
    assert reverse is not None and reverse > 0.5
    assert novelty(same, seen, band, k=1) == 0.0 and novelty(same, seen, band, k=2) == pytest.approx(reverse / 2)
    assert novelty({"a": 0.7, "z": 0.8}, seen, band, k=1) is None  # one elite in common: nothing to compare


# -- a campaign ------------------------------------------------------------------------------------------------
def test_an_open_ended_campaign_climbs_and_its_tasks_adopt_screens_and_transfers(tmp_path: Path) -> None:
    config = parse_campaign_config(oe_config(tmp_path, steps=9000), source="oe.yaml")
    oe = OpenEnded.create(config)
    lines: list[str] = []
    state = oe.run(say=lines.append)
    tasks = list(state.tasks.values())
    lengths = [t.params["length"] for t in tasks]
    assert len(tasks) >= 3 and lengths[0] == 4 and max(lengths) >= 8, lines
    m = state.measures(["length"])
    assert m["annecs"] >= 1 and m["hardest_solved_length"] >= 6
    assert m["train_steps_spent"] >= 9000 or (state.ended and "every active task is solved" in state.ended)
    for campaign in oe._open.values():  # every slice extends a task's budget: its progress line is "45/48", not "45/9"
        assert campaign.progress.budget == campaign.config.budget.evaluations >= campaign.progress.done
    for c in state.candidates:  # the minimal criterion and the verdicts as journaled
        best = max(c["scores"].values(), default=0.0)
        if c["admitted"]:
            assert 0.6 <= best < 0.95
        elif c["why"] == "too easy":
            assert best >= 0.95
    events = Journal(oe.root / "open_ended.jsonl").read()
    assert [e["event"] for e in events].count("task") == len(tasks)
    for task in tasks[1:]:  # every new task starts from the screened elites, re-initialised heads and all
        journal = Journal(oe.root / "tasks" / task.id / "journal.jsonl").read()
        adopted = [e for e in journal if e["event"] == "adopt"]
        assert adopted and adopted[0] == journal[0]
        records = [e["record"] for e in journal if e["event"] == "result"]
        moved = [r for r in records if "transferred_from" in r["extra"]]
        assert moved and all(r["result"]["metrics"]["reinitialised_tensors"] == 2 for r in moved)
        assert {r["extra"]["transferred_from"]["task"] for r in moved} <= {t.id for t in tasks}
        for r in moved:  # the lineage names the crossing
            assert r["proposal"]["operator"] == "{kind} from {task}".format(**r["extra"]["transferred_from"])
        assert yaml.safe_load((oe.root / "tasks" / task.id / "campaign.yaml").read_text())["task"]["params"] == {
            "length": task.params["length"]}
    accepted = [x for x in state.transfers if x["accepted"]]
    assert accepted, state.transfers  # this seed's campaign has one: t02's best, mutated (t01 has its genome)
    for x in accepted:  # an accepted transfer beat the target's best and is in its campaign afterwards
        journal = Journal(oe.root / "tasks" / x["to"] / "journal.jsonl").read()
        assert any(e["event"] == "result" and e["record"]["extra"].get("transferred_from", {}).get("kind")
                   == "transfer" and e["record"]["result"]["genome_hash"] == x["genome"] for e in journal)
    # MLflow: one open-ended run with the measures per round, each task's campaign run tagged with its task
    client = MlflowClient(f"sqlite:///{oe.root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("oe")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], "tags.`ctmevo.kind` = 'open-ended'")
    assert len(runs) == 1 and runs[0].data.metrics["annecs"] == m["annecs"]
    history = client.get_metric_history(runs[0].info.run_id, "annecs")
    assert [h.step for h in history] == list(range(1, state.rounds + 1))
    tagged = client.search_runs([experiment.experiment_id], "tags.`ctmevo.kind` = 'campaign'")
    assert sorted(r.data.tags.get(TAG_TASK) for r in tagged) == sorted(t.id for t in tasks)
    # the status command reads it all from the file and the journal, without torch or MLflow (a light command)
    light = ("import sys; from search.cli.app import main; code = main(['status', sys.argv[1]]); "
             "heavy = {'torch', 'mlflow'} & set(sys.modules); assert not heavy, heavy; sys.exit(code)")
    out = subprocess.run([sys.executable, "-c", light, str(oe.root)], capture_output=True, text=True, env=env(),
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"ANNECS {m['annecs']:g}" in out.stdout and "| t02-" in out.stdout and "hardest solved: length" in out.stdout
    # the picture: drawn at the end, attached to the open-ended run, named by status
    picture = oe.root / PICTURE
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and str(picture) in out.stdout
    assert [a.path for a in client.list_artifacts(runs[0].info.run_id, "plots")] == ["plots/open_ended.png"]


def _slices(task: str, bests: list[float | None]) -> list[dict]:
    return [{"event": "slice", "task": task, "round": r, "best": b, "genome": None if b is None else f"g{task}",
             "evaluations": 4 * r, "spent": 400.0 * r} for r, b in enumerate(bests, 1)]


def test_a_full_active_set_retires_the_stalled_task_that_rose_least_and_a_revived_one_returns(tmp_path: Path
                                                                                              ) -> None:
    """Room for a new task: the oldest solved task retires; with none solved, the unsolved task whose best rose
    least over its last ``stall_rounds`` slices (less than ``stall_delta``); with every task progressing, none. A
    retired stalled task proposed and admitted again comes back (``revived``) with its own archive; all of it is
    journaled and replays to the same state."""
    config = parse_campaign_config(oe_config(tmp_path, max_active=3, stall_rounds=2, stall_delta=0.01, admit=2,
                                             novelty_min=0.0))
    oe = OpenEnded.create(config)
    for n, length in ((2, 6), (3, 8)):
        oe._write({"event": "task", "id": f"t0{n}-length{length}", "params": {"length": length}, "parent": None,
                   "round": 1})
    first, six, eight = list(oe.state.tasks)
    for event in (_slices(first, [0.80, 0.85, 0.90, 0.93]) + _slices(six, [0.70, 0.74, 0.745, 0.748])
                  + _slices(eight, [0.60, 0.62, 0.621, 0.622])):
        oe._write(event)
    state = oe.state
    assert {t.id for _, t in state.stalled(2, 0.01)} == {six, eight}  # +0.008 and +0.002; t01 +0.08
    assert state.victim(2, 0.01)[0].id == eight and "stalled" in state.victim(2, 0.01)[1]
    assert state.stalled(0, 0.01) == [] and state.stalled(2, 0.001) == []
    assert state.victim(2, 0.001) is None  # every task still rising by 0.001: none may go
    agents = {"t01/a": 0.8, "t02/b": 0.7, "t03/c": 0.66}
    for agent, fitness in agents.items():
        oe._write({"event": "screened", "round": 5, "candidate": 0, "agent": agent, "genome": agent[-1],
                   "genes": {}, "fitness": fitness, "file": f"s{agent[-1]}", "steps": 100})
    oe._admit(5, [(first, {"length": 10})])
    events = Journal(oe.root / "open_ended.jsonl").read()
    retired = [e for e in events if e["event"] == "retired"]
    assert [(e["task"], e["why"].split(":")[0]) for e in retired] == [(eight, "stalled")]
    assert [t.id for t in oe.state.active] == [first, six, "t04-length10"]
    assert oe.state.tasks[eight].status == "retired" and oe.state.tasks[eight].best == 0.622
    # the stalled task proposed again, with room (the length-10 task solved): back with the screened elites
    oe._write({"event": "solved", "task": "t04-length10", "round": 6})
    for agent, fitness in agents.items():
        oe._write({"event": "screened", "round": 7, "candidate": 0, "agent": agent, "genome": agent[-1],
                   "genes": {}, "fitness": fitness, "file": f"r7{agent[-1]}", "steps": 100})
    oe._admit(7, [(first, {"length": 8})])
    events = Journal(oe.root / "open_ended.jsonl").read()
    assert [e["event"] for e in events[-3:]] == ["candidate", "retired", "revived"]
    assert events[-2]["task"] == "t04-length10" and events[-1]["task"] == eight
    assert len(events[-1]["adopt"]) == 3 and oe.state.tasks[eight].status == "active"
    assert oe.state.tasks[eight].bests == [] and len(oe.state.tasks) == 4  # its progress counts afresh
    replayed = OpenEnded.open(oe.root).state
    assert replayed.tasks == oe.state.tasks and replayed.candidates == oe.state.candidates


def test_progress_allocation_spends_the_round_where_the_tasks_rise(tmp_path: Path, monkeypatch) -> None:
    """``allocation: progress``: the round's slice × tasks evaluations go by each task's rise over its last
    ``stall_rounds`` slices, a third of an equal share at least; a task with fewer slices counts as the fastest;
    the shares read the bests from before the round, so a round resumed after some of its slices gives the same;
    and the driver's round gives each task its share."""
    config = parse_campaign_config(oe_config(tmp_path, steps=100_000, max_active=4, stall_rounds=2,
                                             allocation="progress", transfer_every=0, new_tasks_every=50))
    oe = OpenEnded.create(config)
    for n, length in ((2, 6), (3, 8), (4, 10)):
        oe._write({"event": "task", "id": f"t0{n}-length{length}", "params": {"length": length}, "parent": None,
                   "round": 1})
    first, six, eight, ten = list(oe.state.tasks)
    for event in (_slices(first, [0.70, 0.80, 0.90]) + _slices(six, [0.60, 0.61, 0.61])
                  + _slices(eight, [0.50, 0.50, 0.50]) + _slices(ten, [0.40])):
        oe._write(event)
    oe._write({"event": "round", "round": 3, "measures": {}})
    sizes = oe.state.allocation(4, 2)  # rises +0.20, +0.01, 0, and "new" (as +0.20): 16 evaluations to share
    assert sum(sizes.values()) == 16 and sizes[first] >= sizes[ten] > sizes[six] >= sizes[eight] >= 1
    assert sizes == {first: 7, six: 2, eight: 1, ten: 6}  # 6.54, 1.59, 1.33, 6.54: largest remainders, then ids
    oe._write({"event": "slice", "task": first, "round": 4, "best": 0.97, "genome": "g", "evaluations": 20,
               "spent": 2000.0})
    oe._write({"event": "solved", "task": first, "round": 4})
    assert oe.state.allocation(4, 2) == sizes  # mid-round (resumed here): the same shares
    resumed = OpenEnded.open(oe.root)
    assert resumed.state.allocation(4, 2) == sizes
    given: dict[str, int] = {}
    monkeypatch.setattr(OpenEnded, "_slice", lambda self, task, r, pool, n: given.__setitem__(task.id, n))
    resumed._round(4, pool=None, measures=None)  # type: ignore[arg-type]  # slices only (no transfers, no tasks)
    assert given == {six: 2, eight: 1, ten: 6}  # the first task sliced before the stop, and is solved
    assert first not in resumed.state.allocation(4, 2)  # round 4 over: a solved task trains no more
    assert resumed.state.allocation(4, 0) == {six: 4, eight: 4, ten: 4}  # no rise over 0 slices: equal


def test_when_every_task_is_solved_they_train_on_and_too_hard_candidates_are_screened_again(tmp_path: Path
                                                                                          ) -> None:
    """Every active task solved and every candidate too hard for their elites: the solved tasks train on
    (*polishing*) and the candidates are screened again by the better-trained elites each round, rather than the
    campaign ending with budget left; once polishing raised no task by ``stall_delta`` over ``stall_rounds``
    slices, it ends and says why. (The skill landscape caps a task's skill at its length: parity 4's elites never
    get better at 12.)"""
    config = parse_campaign_config(oe_config(tmp_path, steps=20_000, axes={"length": {"min": 4, "max": 16, "step": 8}},
                                             criterion=[0.9, 0.99], stall_rounds=2, transfer_every=0, candidates=1))
    state = OpenEnded.create(config).run(say=lambda line: None, quiet=True)
    events = Journal(tmp_path / "oe" / "open_ended.jsonl").read()
    first = next(iter(state.tasks.values()))
    assert first.solved and len(state.tasks) == 1
    solved = first.solved_round
    polished = [e["round"] for e in events if e["event"] == "slice" and e["round"] > solved]
    assert polished == [solved + 1, solved + 2]  # trained on until 2 slices without a rise
    for r in polished:  # every round the too-hard candidates were screened again, by the elites as they are now
        assert [c["why"] for c in state.candidates if c["round"] == r] == ["too hard"]
        assert any(e["event"] == "screened" and e["round"] == r for e in events)
    assert state.ended is not None and "2 rounds of training them on raised none by 0.01" in state.ended
    assert state.spent < 20_000


@pytest.mark.parametrize(("kind", "nth"), [("candidate", 1), ("task", 1), ("retired", 1)])
def test_a_round_stopped_while_judging_or_admitting_resumes_as_it_would_have_gone(tmp_path: Path, monkeypatch,
                                                                                    kind: str, nth: int) -> None:
    """Stopped just after a verdict (others not yet journaled), a task admitted, or a task retired for one: the
    resumed round admits what the verdicts said, and its new task trains from the next round, as in a campaign
    that never stopped (the tasks have changed since the candidates were proposed and judged)."""
    data = oe_config(tmp_path, max_active=2, stall_rounds=2)
    write, seen = OpenEnded._write, []

    class Stop(BaseException):
        pass

    def stopping(self: OpenEnded, event: dict) -> None:
        write(self, event)
        seen.append(event["event"] if event.get("round", 0) >= 1 else "before")
        if event["event"] == kind and seen.count(kind) == nth:
            raise Stop

    monkeypatch.setattr(OpenEnded, "_write", stopping)
    with pytest.raises(Stop):
        OpenEnded.create(parse_campaign_config(data)).run(say=lambda line: None, quiet=True)
    monkeypatch.setattr(OpenEnded, "_write", write)
    OpenEnded.open(tmp_path / "oe").run(say=lambda line: None, quiet=True)
    straight = OpenEnded.create(parse_campaign_config({**data, "output_dir": str(tmp_path / "straight")}))
    straight.run(say=lambda line: None, quiet=True)

    def story(root: Path) -> list[tuple]:
        keep = ("task", "slice", "solved", "candidate", "retired", "revived", "transfer")
        return [(e["event"], e["round"], e.get("task") or e.get("id"), json.dumps(e.get("params")), e.get("admitted"))
                for e in Journal(root / "open_ended.jsonl").read() if e["event"] in keep]

    assert story(tmp_path / "oe") == story(straight.root)


def _run_in_child(path: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "search.cli", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**env(), "CTMEVO_TEST_EVAL_SLEEP": "0.05"})


def test_a_campaign_killed_while_admitting_a_task_resumes_to_the_same_campaign(tmp_path: Path) -> None:
    data = oe_config(tmp_path, steps=3000, transfer_every=0)
    path = tmp_path / "oe.yaml"
    path.write_text(yaml.safe_dump(data))
    child = _run_in_child(path, "run", str(path))
    journal = tmp_path / "oe" / "open_ended.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and child.poll() is None:  # the first screen has landed, no verdict yet
        events = Journal(journal).read() if journal.exists() else []
        kinds = [e["event"] for e in events]
        if "screened" in kinds and "candidate" not in kinds:
            child.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL, "the campaign ended before a task was being admitted"
    killed = Journal(journal).read()
    assert "candidate" not in [e["event"] for e in killed]
    resumed = subprocess.run([sys.executable, "-m", "search.cli", "resume", str(tmp_path / "oe")], cwd=ROOT,
                             capture_output=True, text=True, env=env(), timeout=600)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    after = Journal(journal).read()
    assert after[: len(killed)] == killed  # nothing journaled was lost or rewritten
    screens = [(e["round"], e["candidate"], e["agent"]) for e in after if e["event"] == "screened"]
    assert len(screens) == len(set(screens))  # a screen that landed before the kill is not run again
    # the same campaign as one run without a stop (the inline pool and every choice are deterministic)
    data["output_dir"] = str(tmp_path / "straight")
    straight = OpenEnded.create(parse_campaign_config(data))
    straight.run(say=lambda line: None)

    def story(events: list[dict]) -> list[tuple]:
        keep = {"task": ("id", "params", "parent"), "candidate": ("params", "admitted", "why"),
                "slice": ("task", "best", "evaluations"), "solved": ("task",), "retired": ("task",)}
        return [(e["event"], *(json.dumps(e[k]) for k in keep[e["event"]])) for e in events if e["event"] in keep]

    assert story(after) == story(Journal(straight.root / "open_ended.jsonl").read())
    def results(root: Path, task: str) -> list[tuple]:
        return [(e["record"]["result"]["genome_hash"], e["record"].get("rung", 0), e["record"].get("repeat", 0))
                for e in Journal(root / "tasks" / task / "journal.jsonl").read() if e["event"] == "result"]

    for task in straight.state.tasks:  # every task campaign has each result once, as the straight run has
        mine = results(tmp_path / "oe", task)
        assert len(mine) == len(set(mine)) and sorted(mine) == sorted(results(straight.root, task))
    client = MlflowClient(f"sqlite:///{tmp_path / 'oe' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("oe")
    assert experiment is not None
    assert len(client.search_runs([experiment.experiment_id], "tags.`ctmevo.kind` = 'open-ended'")) == 1


@pytest.mark.parametrize(("change", "message"), [
    ({"axes": {"length": {"min": 8, "max": 16}}}, "task.params.length = 4: allowed is a whole number within"),
    ({"axes": {"length": {"min": 4, "max": 2}}}, "open_ended.axes.length = .*max = 2: allowed is a value above min"),
    ({"axes": {"size": {"min": 4, "max": 8}}}, "task.params.size: missing: allowed is a whole number"),
    ({"criterion": [0.9, 0.5]}, "open_ended.criterion = .*low < high"),
    ({"slice": 0}, "open_ended.slice = 0"),
    ({"allocation": "greedy"}, "open_ended.allocation = 'greedy': Input should be 'equal' or 'progress'"),
    ({"axes": {"length": {"min": 4, "max": 100000}}}, "open_ended.axes.length = [4, 100000]: the task with"),
    ({"axes": {"length": {"min": 4, "max": 16, "step": 2, "fine_step": 2}}},
     "open_ended.axes.length = .*fine_step = 2: allowed is a whole number below step = 2"),
])
def test_bad_open_ended_fields_are_refused_with_the_field_and_what_is_allowed(tmp_path: Path, change: dict,
                                                                               message: str) -> None:
    data = oe_config(tmp_path)
    data["open_ended"] = {**data["open_ended"], **change}
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace("{", r"\{")):
        parse_campaign_config(data, source="oe.yaml")


def test_cell_promotions_run_inside_the_task_campaigns_within_their_share(tmp_path: Path) -> None:
    data = oe_config(tmp_path, steps=5000)
    data["evaluation"]["fidelity"]["cell_share"] = 0.3
    oe = OpenEnded.create(parse_campaign_config(data, source="oe.yaml"))
    oe.run(say=lambda _line: None)
    cells = 0
    for task in oe.state.tasks.values():
        campaign = Campaign.open(oe.root / "tasks" / task.id)  # counted again from the task's journal
        assert campaign.config.evaluation.fidelity.cell_share == 0.3
        assert campaign.rungs.cell_steps <= 0.3 * campaign.rungs.steps
        jobs = [e for e in campaign.journal.read() if e["event"] == "job" and e.get("cell")]
        assert all(JobKey.parse(e["job"]).promotion for e in jobs)
        assert campaign.rungs.cell_steps == sum(campaign.rungs.cost(JobKey.parse(e["job"])) for e in jobs)
        cells += len(jobs)
    assert cells > 0  # some archive cell's elite went up in some task


def test_the_picture_plots_each_task_against_the_whole_campaigns_compute(tmp_path: Path) -> None:
    events = [
        {"event": "task", "id": "t01-length4", "params": {"length": 4}, "parent": None, "round": 0},
        {"event": "slice", "task": "t01-length4", "round": 1, "best": 0.97, "genome": "a", "evaluations": 4,
         "spent": 500.0},
        {"event": "solved", "task": "t01-length4", "round": 1, "fitness": 0.97, "genome": "a"},
        {"event": "screened", "round": 1, "candidate": 0, "agent": "t01-length4/a", "fitness": 0.7, "steps": 100.0},
        {"event": "task", "id": "t02-length6", "params": {"length": 6}, "parent": "t01-length4", "round": 1,
         "adopt": [{"agent": "t01-length4/a", "fitness": 0.7}, {"agent": "t01-length4/b", "fitness": 0.66}]},
        {"event": "round", "round": 1, "measures": {"annecs": 0.0, "tasks_admitted": 2.0,
                                                    "train_steps_spent": 600.0}},
        {"event": "slice", "task": "t02-length6", "round": 2, "best": 0.8, "genome": "c", "evaluations": 6,
         "spent": 400.0},
        {"event": "transfer", "round": 2, "from": "t01-length4", "to": "t02-length6", "agent": "t01-length4/a",
         "fitness": 0.85, "accepted": True, "steps": 100.0},
        {"event": "transfer", "round": 2, "from": "t01-length4", "to": "t02-length6", "agent": "t01-length4/b",
         "fitness": 0.5, "accepted": False, "steps": 100.0},
        {"event": "slice", "task": "t02-length6", "round": 3, "best": 0.96, "genome": "d", "evaluations": 12,
         "spent": 1000.0},
        {"event": "solved", "task": "t02-length6", "round": 3, "fitness": 0.96, "genome": "d"},
        {"event": "round", "round": 3, "measures": {"annecs": 1.0, "tasks_admitted": 2.0,
                                                    "train_steps_spent": 1800.0}},
    ]
    p = progress_of(events)
    # compute on the x axis is the whole campaign's: both tasks' campaigns, the screen and the transfers
    assert p.tasks["t01-length4"] == [(500.0, 0.97)]
    assert p.tasks["t02-length6"] == [(600.0, 0.7), (1000.0, 0.8), (1800.0, 0.96)]  # starts at its screened best
    assert p.solved == {"t01-length4": (500.0, 0.97), "t02-length6": (1800.0, 0.96)}
    assert p.transfers == [("t02-length6", 1100.0, 0.85)]  # the accepted one only
    assert p.rounds == [(600.0, 0.0, 2.0), (1800.0, 1.0, 2.0)]
    retired = progress_of([*events, {"event": "retired", "task": "t01-length4", "round": 4, "why": "solved"}])
    assert retired.tasks["t01-length4"][0] == (500.0, 0.97) and math.isnan(retired.tasks["t01-length4"][1][1])
    path = draw_progress(events, tmp_path / PICTURE, axes=["length"], solved=0.95, title="oe")
    assert path == tmp_path / PICTURE and path.read_bytes()[:4] == b"\x89PNG"
    assert draw_progress(events[:1], tmp_path / "none.png", axes=["length"], solved=0.95, title="oe") is None

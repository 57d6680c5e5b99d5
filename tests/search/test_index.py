"""The campaign index (search.views.index): what status and lineage read instead of the whole journal.

It must say exactly what the journal says (counts, the best in rank order, ancestries), catch up with lines
appended later, and be rebuilt from the journal when it is deleted, damaged or belongs to another campaign.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from ctm.result import EvalResult
from genome import Genome
from search.journal import Journal, write_atomic
from search.lineage import lineage_from_records
from search.records import EvaluationRecord, Proposal
from search.views import summary as summary_module
from search.views.index import INDEX_FILE, CampaignIndex, record_run_ids
from search.views.lookups import index_lineage
from search.views.summary import summarise
from workers.testing import ok_result

GENOMES = [Genome(ticks=t, memory_length=m) for t in range(1, 13) for m in range(1, 5)]


def _history(seed: int, n: int = 160) -> list[dict]:
    """Journal events of a campaign with rungs, repeats, failures and crossover parents (asks before results)."""
    rng = random.Random(seed)
    events: list[dict] = []
    seen: dict[str, tuple[int, list[EvaluationRecord]]] = {}
    for i in range(n):
        g = rng.choice(GENOMES)
        birth, mine = seen.setdefault(g.hash, (len(seen), []))
        if not mine:
            parents = tuple(rng.sample(sorted(seen)[:-1] or [], k=min(len(seen) - 1, rng.choice([0, 1, 2]))))
            proposal = Proposal(genome=g, parents=parents, operator="crossover" if len(parents) == 2 else "mutation")
            events.append({"event": "ask", "births": [birth], "proposals": [proposal.to_dict()]})
        else:
            proposal = mine[0].proposal
            events.append({"event": "job", "job": g.hash})
        ok = [r for r in mine if r.result.ok]
        rung = max((r.rung for r in ok), default=0) + (1 if ok and rng.random() < 0.25 else 0)
        repeat = sum(r.rung == rung for r in mine)
        fitness = round(rng.gauss(0.5, 0.2) + 0.1 * rung, 3) if rng.random() > 0.05 else rng.choice([0.5, 0.7])
        failed = EvalResult.failed(g.hash, "oom", "out of memory", seed=repeat)
        result = ok_result(g, repeat, fitness) if rng.random() > 0.1 else failed
        extra = {"cell": f"{g.ticks}_{g.memory_length}_{repeat}", **({"inherited": f"inherited: 0.5 of parameters from "
                                                               f"{parents[0]}"} if mine == [] and proposal.parents
                                                            and rng.random() < 0.3 else {})}
        record = EvaluationRecord(campaign="c-1", birth=birth, proposal=proposal, result=result, rung=rung,
                                  repeat=repeat, finished_at=float(i), extra=extra)
        mine.append(record)
        events.append({"event": "result", "record": record.to_dict()})
    last: dict[tuple[str, int], dict] = {}
    for event in events:  # seeds of one rung finishing out of order: repeat 1 before repeat 0
        if event["event"] == "result":
            key = (event["record"]["result"]["genome_hash"], event["record"].get("rung", 0))
            if key in last and rng.random() < 0.5:
                last[key]["record"], event["record"] = event["record"], last[key]["record"]
            last[key] = event
    return events


def _campaign(tmp_path: Path, events: list[dict], campaign_id: str = "c-1") -> Path:
    root = tmp_path / "camp"
    root.mkdir(parents=True, exist_ok=True)
    write_atomic(root / "campaign.json", {"campaign_id": campaign_id})
    (root / "campaign.yaml").write_text("name: c\nstrategy: {name: map_elites}\nbudget: {evaluations: 1000}\n")
    Journal(root / "journal.jsonl").extend(events)
    return root


def _from_journal(root: Path, top: int) -> summary_module.Summary:
    s = summary_module.Summary(root=root, name="c", campaign_id="c-1", strategy="map_elites", budget=None)
    summary_module._from_journal(s, summary_module.CampaignPaths(root), top)
    return s


@pytest.mark.parametrize("seed", range(4))
def test_status_from_the_index_equals_status_from_the_whole_journal(tmp_path: Path, seed: int) -> None:
    events = _history(seed)
    root = _campaign(tmp_path, events[:100])
    first = summarise(root, top=50)  # builds the index
    assert (root / INDEX_FILE).is_file()
    Journal(root / "journal.jsonl").extend(events[100:])  # later lines: read from the stored offset on
    s, want = summarise(root, top=50), _from_journal(root, 50)
    assert first.done < s.done
    assert (s.done, s.failures, s.pending, s.steps_spent) == (want.done, want.failures, want.pending, want.steps_spent)
    assert [b["hash"] for b in s.best] == [b["hash"] for b in want.best]
    for got, expected in zip(s.best, want.best, strict=True):
        assert got["fitness"] == pytest.approx(expected["fitness"])
        assert got["belief"] == pytest.approx(expected["belief"])
        assert (got["seeds"], got["rung"], got["birth"], got["genes"], got["cell"]) == (
            expected["seeds"], expected["rung"], expected["birth"], expected["genes"], expected["cell"])


def test_a_deleted_damaged_or_foreign_index_is_rebuilt_from_the_journal(tmp_path: Path) -> None:
    events = _history(7)
    root = _campaign(tmp_path, events)
    want = [b["hash"] for b in _from_journal(root, 10).best]
    assert [b["hash"] for b in summarise(root, top=10).best] == want
    (root / INDEX_FILE).unlink()  # deleted
    assert [b["hash"] for b in summarise(root, top=10).best] == want
    (root / INDEX_FILE).write_bytes(b"torn" * 100)  # damaged: not a database
    for suffix in ("-wal", "-shm"):
        (root / f"{INDEX_FILE}{suffix}").unlink(missing_ok=True)
    assert [b["hash"] for b in summarise(root, top=10).best] == want
    with CampaignIndex(root, "c-1") as index:  # a half-written index: rows without the journal's counters
        index.update()
        index._open().execute("UPDATE meta SET value = '3' WHERE key = 'results'")
    write_atomic(root / "campaign.json", {"campaign_id": "c-2"})  # another campaign in the same directory
    s = summarise(root, top=10)
    assert s.done == _from_journal(root, 10).done and [b["hash"] for b in s.best] == want
    (root / "journal.jsonl").write_bytes(b"")  # the journal replaced (a fresh start): the index follows it
    assert summarise(root, top=10).done == 0


def test_a_torn_last_line_is_left_for_later_and_read_once_complete(tmp_path: Path) -> None:
    events = _history(3, n=40)
    root = _campaign(tmp_path, events[:-1])
    line = (json.dumps(events[-1], separators=(",", ":")) + "\n").encode()
    with (root / "journal.jsonl").open("ab") as fh:
        fh.write(line[:25])  # a write cut short
    before = summarise(root).done
    with (root / "journal.jsonl").open("ab") as fh:
        fh.write(line[25:])
    assert summarise(root).done == before + (events[-1]["event"] == "result") == _from_journal(root, 5).done


def test_lineage_from_the_index_matches_the_journal_and_needs_every_run_id(tmp_path: Path) -> None:
    events = _history(11, n=200)
    root = _campaign(tmp_path, events)
    records = Journal(root / "journal.jsonl").records()
    child = max((r for r in records if len(r.proposal.parents) == 2), key=lambda r: r.birth)
    assert index_lineage(root, "c-1", child.genome.hash[:10]) is None  # no run ids yet: MLflow is asked
    record_run_ids(root, {r.genome.hash: f"run-{r.genome.hash}" for r in records}, experiment_id="7")
    graph = index_lineage(root, "c-1", child.genome.hash[:10], tracking_uri="sqlite:///x.db")
    want = lineage_from_records(records, child.genome.hash)
    assert graph is not None and graph.experiment_id == "7"
    assert list(graph.nodes) == list(want.nodes) and len(graph.nodes) > 3
    for h, node in graph.nodes.items():
        expected = want.nodes[h]
        assert node.run_id == f"run-{h}"
        assert (node.parents, node.genes, node.changes, node.operator, node.birth, node.status, node.inherited) == (
            expected.parents, expected.genes, expected.changes, expected.operator, expected.birth, expected.status,
            expected.inherited)
        assert node.fitness == pytest.approx(expected.fitness)
    assert index_lineage(root, "c-1", "") is None and index_lineage(root, "c-1", "zz") is None


@pytest.mark.parametrize("seed", [2, 9])
def test_a_parents_children_come_counted_and_best_first_from_the_index(tmp_path: Path, seed: int) -> None:
    """What a parent's run note lists: how many children it has and the best few by their last reported fitness
    (failures last, then the earlier born), read from an ordered index, not by sorting all its children; an index
    of an older layout is rebuilt."""
    events = _history(seed, n=240)
    root = _campaign(tmp_path, events[:150])
    with CampaignIndex(root, "c-1") as index:
        index.update()
    Journal(root / "journal.jsonl").extend(events[150:])  # later results re-rank children already indexed
    last: dict[str, EvaluationRecord] = {}
    for record in Journal(root / "journal.jsonl").records():
        last[record.genome.hash] = record
    kids: dict[str, list[str]] = {}
    for h, r in last.items():
        for parent in dict.fromkeys(r.proposal.parents):
            kids.setdefault(parent, []).append(h)

    def order(h: str) -> tuple:
        f = last[h].result.fitness
        return (f is None, -(f or 0.0), last[h].birth)

    assert max(len(v) for v in kids.values()) >= 5
    with CampaignIndex(root, "c-1") as index:
        index.update()
        for parent, children in kids.items():
            assert index.children(parent, 4) == (len(children), sorted(children, key=order)[:4])
        assert index.children("no-such-genome", 4) == (0, [])
        index._open().execute("UPDATE meta SET value = '3' WHERE key = 'version'")  # an older layout
    with CampaignIndex(root, "c-1") as index:
        index.update()
        parent = max(kids, key=lambda p: len(kids[p]))
        assert index.children(parent, 30) == (len(kids[parent]), sorted(kids[parent], key=order)[:30])


def test_status_reads_the_whole_journal_where_no_index_can_be_written(tmp_path: Path, monkeypatch) -> None:
    import sqlite3

    root = _campaign(tmp_path, _history(5, n=60))
    want = _from_journal(root, 5)

    def refuse(self: CampaignIndex) -> int:
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(CampaignIndex, "update", refuse)
    s = summarise(root, top=5)
    assert (s.done, s.failures, s.pending) == (want.done, want.failures, want.pending)
    assert [b["hash"] for b in s.best] == [b["hash"] for b in want.best]


@pytest.mark.parametrize("seed", [3, 4])
def test_the_pictures_read_the_same_genomes_from_the_index_as_from_the_whole_journal(tmp_path: Path, monkeypatch,
                                                                                      seed: int) -> None:
    """The picture consumer keeps no per-genome records: the family tree's best and ancestors, and the genes
    page's sample, come from the index and must be the genomes the journal's records give."""
    import search.tracking.family as family
    import search.views.analysis as analysis
    from search.views.observers import _family

    root = _campaign(tmp_path, _history(seed, n=200))
    records = Journal(root / "journal.jsonl").records()
    monkeypatch.setattr(family, "FAMILY_TREE_MAX", 12)
    monkeypatch.setattr(family, "FAMILY_TREE_ROOTS", 4)
    monkeypatch.setattr(analysis, "GENES_SHOWN", 1005)
    with CampaignIndex(root, "c-1") as index:
        index.update()
        ranked = index.ranked_by_reported()
        chosen, total = _family(index, ranked)
        assert total == len({r.genome.hash for r in records})
        assert {r.genome.hash for r in chosen} == {r.genome.hash for r in family._best_and_ancestors(records)}
        by_hash = {r.genome.hash: r for r in records}
        for r in chosen:  # what a node shows: parents, operator, birth, status, fitness as reported
            last = by_hash[r.genome.hash]
            assert (r.proposal.parents, r.proposal.operator, r.birth, r.result.status, r.result.fitness) == (
                last.proposal.parents, last.proposal.operator, last.birth, last.result.status, last.result.fitness)
        assert ranked == [r.genome.hash for r in analysis._shown(list(by_hash.values()))]
        monkeypatch.setattr(analysis, "GENES_SHOWN", 1002)  # the 1,000 best, then 2 spread over the rest
        assert len(analysis.genes_sample(list(range(1100)))) == 1002


def test_status_and_the_index_import_no_mlflow() -> None:
    """``ctmevo status`` answers from the index in a fraction of a second: importing MLflow alone takes ~1.4 s."""
    code = ("import sys, search.views.summary, search.views.index, search.views.lookups; "
            "bad = [m for m in sys.modules if m == 'mlflow' or m.startswith('mlflow.')]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)

"""What an evaluation run holds for a researcher in the UI: the run note's links, numeric metrics, experiment tags."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from mlflow import MlflowClient

import search.tracking.notes as notes
import search.tracking.payload as mp
from genome import Genome
from search.tracking.archiver import MlflowArchiver
from tests.search.mlflow_helpers import make_record


@dataclass
class Family:
    client: MlflowClient
    tracker: MlflowArchiver
    g: dict[str, Genome]
    runs: dict[str, str]

    def run(self, name: str):
        return self.client.get_run(self.runs[name])


@pytest.fixture(scope="module")
def fam(tmp_path_factory: pytest.TempPathFactory) -> Family:
    """Founders A, B; C = mutate(A); E = cross(C, B): logged in birth order, as a campaign does."""
    root = tmp_path_factory.mktemp("notes")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    tracker = MlflowArchiver(tracking_uri=uri, experiment_name="notes", campaign_id="notes", config={})
    g = {"A": Genome(ticks=10), "B": Genome(ticks=12, memory_length=4)}
    g["C"] = g["A"].replace(memory_length=12)
    g["E"] = Genome(ticks=10, memory_length=4)
    plan = {"A": (), "B": (), "C": ("A",), "E": ("C", "B")}
    runs = {}
    for birth, (name, parents) in enumerate(plan.items()):
        record = make_record(g[name], campaign="notes", birth=birth, parents=[g[p].hash for p in parents],
                             operator={0: "sample", 1: "mutation", 2: "crossover"}[len(parents)],
                             fitness=0.2 * (birth + 1), cell=f"{birth}_0")
        tracker.write_results([(birth, record)])  # one batch each, as a campaign's consumer may
        runs[name] = tracker.run_id_of(record.genome.hash)
    return Family(client=MlflowClient(uri), tracker=tracker, g=g, runs=runs)


def _note(fam: Family, name: str) -> str:
    return fam.run(name).data.tags[mp.TAG_NOTE]


def test_a_note_links_each_parent_with_the_genes_changed(fam: Family) -> None:
    note = _note(fam, "E")
    experiment = fam.tracker.experiment_id
    for parent in ("C", "B"):
        assert f"#/experiments/{experiment}/runs/{fam.runs[parent]}?workflowType=machine_learning" in note
    assert "**Parents** (2)" in note and "crossover" in note and "generation 2" in note
    assert "(the nearer parent): changed memory_length 12→4" in note  # C and B are as near: the first, C
    assert "the other parent, 1 gene(s) differ" in note and "ticks 12→10" not in note  # B: counted, not listed
    assert "**Founder**" in _note(fam, "A")


def test_a_crossover_reads_its_change_against_the_nearer_parent_and_one_parent_twice_is_one() -> None:
    a, b = notes.Relative("a" * 16, run_id="ra", genes={"ticks": "10", "memory_length": "4", "heads": "2"}), \
        notes.Relative("b" * 16, run_id="rb", genes={"ticks": "20", "memory_length": "8", "heads": "1"})
    child = notes.Relative("c" * 16, parents=("b" * 16, "a" * 16), operator="crossover",
                        genes={"ticks": "10", "memory_length": "4", "heads": "1"})
    note = notes.evaluation_note(child, experiment_id="1", parents={a.genome_hash: a, b.genome_hash: b}, children=[])
    assert "(the nearer parent): changed heads 2→1" in note  # a: one gene differs, b: two
    assert "the other parent, 2 gene(s) differ" in note
    selfed = notes.Relative("d" * 16, parents=("a" * 16, "a" * 16), operator="crossover", genes=a.genes)
    note = notes.evaluation_note(selfed, experiment_id="1", parents={a.genome_hash: a}, children=[])
    assert "**Parents** (1, both)" in note and note.count("](#/experiments/1/runs/ra?") == 1


def test_a_parents_note_lists_the_children_born_after_it(fam: Family) -> None:
    a, c = _note(fam, "A"), _note(fam, "C")
    assert fam.runs["C"] in a and "**Children** (1)" in a and "memory_length 10→12" in a
    assert fam.runs["E"] in c and fam.runs["A"] in c  # C links both ways
    assert fam.runs["E"] in _note(fam, "B")
    assert "**Children**: none yet." in _note(fam, "E")


def test_numbers_sort_as_numbers_and_behaviour_is_not_a_curve(fam: Family) -> None:
    for name, generation in (("A", 0), ("B", 0), ("C", 1), ("E", 2)):
        metrics = fam.run(name).data.metrics
        assert metrics["generation"] == generation and metrics["gene.ticks"] == fam.g[name].ticks
        assert metrics["gene.memory_length"] == fam.g[name].memory_length and "gene.sync_select" not in metrics
    assert fam.run("E").data.metrics["birth"] == 3.0
    assert "behaviour" not in fam.run("E").data.metrics
    assert json.loads(fam.run("E").data.tags[mp.TAG_BEHAVIOUR]) == [0.1, 0.2]


def test_the_experiment_opens_on_a_view_of_the_evaluations(fam: Family) -> None:
    tags = fam.client.get_experiment(fam.tracker.experiment_id).tags
    assert tags[mp.TAG_EXPERIMENT_KIND] == "custom_model_development"
    view = json.loads(tags[mp.SHARED_VIEW_PREFIX + notes.view_key("notes")])
    assert view["orderByKey"] == "metrics.`rank_score`" and view["orderByAsc"] is False
    assert {"metrics.`generation`", "metrics.`seeds`", "metrics.`rung`"} <= set(view["selectedColumns"])
    assert "'evaluation'" in view["searchFilter"]
    runs = fam.client.search_runs([fam.tracker.experiment_id], view["searchFilter"],
                                  order_by=["metrics.rank_score DESC"])
    assert [r.info.run_id for r in runs] == [fam.runs[n] for n in ("E", "C", "B", "A")]  # the filter is valid
    url = notes.experiment_url("http://h:5", fam.tracker.experiment_id, "notes")
    assert url == (f"http://h:5/#/experiments/{fam.tracker.experiment_id}/runs?viewStateShareKey=ctmevo-notes&"
                   "workflowType=machine_learning")
    assert fam.runs and fam.tracker.campaign_run_id in tags[mp.TAG_NOTE]


def test_a_note_with_many_children_stays_within_mlflows_limit() -> None:
    genes = {f"gene{i}": str(i) for i in range(20)}
    me = notes.Relative(genome_hash="ab" * 8, run_id="r" * 32, fitness=0.5, genes=genes)
    kids = [notes.Relative(genome_hash=f"{i:016x}", run_id=f"{i:032x}", fitness=i / 100, operator="mutation",
                        genes={**genes, **{f"gene{j}": "x" for j in range(20)}}) for i in range(100)]
    note = notes.evaluation_note(me, experiment_id="7", parents={}, children=kids)
    assert len(note) <= mp.MAX_NOTE_CHARS
    assert f"{99:032x}" in note  # the best child first
    assert "more: filter `tags.ctmevo.parent_hashes LIKE '%abababababababab%'`" in note


def test_generations_from_records_follow_the_deepest_parent() -> None:
    a, b = Genome(ticks=3), Genome(ticks=4)
    c, d = a.replace(ticks=5), Genome(ticks=6)
    records = [make_record(a, campaign="x", birth=0), make_record(b, campaign="x", birth=1),
               make_record(c, campaign="x", birth=2, parents=[a.hash]),
               make_record(d, campaign="x", birth=3, parents=[c.hash, b.hash])]
    assert mp.generations(records) == {a.hash: 0, b.hash: 0, c.hash: 1, d.hash: 2}
    assert mp.generation_of([None, 3]) == 4 and mp.generation_of([]) == 0


def test_run_links_are_relative_in_notes_and_absolute_under_a_base() -> None:
    assert notes.run_url("3", "abc") == "#/experiments/3/runs/abc?workflowType=machine_learning"
    assert notes.run_url("3", "abc", "http://h:1/") == "http://h:1/#/experiments/3/runs/abc?workflowType=machine_learning"
    assert notes.ui_base("sqlite:///x.db") == "http://127.0.0.1:5000" and notes.ui_base("http://h:1/") == "http://h:1"


def test_campaign_url_is_the_view_the_run_command_prints(fam: Family) -> None:
    from search.tracking.client import campaign_url

    uri = fam.tracker.tracking_uri
    assert campaign_url(uri, "notes", "notes") == notes.experiment_url("http://127.0.0.1:5000",
                                                                    str(fam.tracker.experiment_id), "notes")
    assert campaign_url(uri, "no-such-experiment", "notes") is None


def test_a_family_written_in_one_batch_links_both_ways(tmp_path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    archiver = MlflowArchiver(tracking_uri=uri, experiment_name="batch", campaign_id="batch", config={})
    a = Genome(ticks=10)
    b = a.replace(memory_length=6)
    c = b.replace(heads=8)
    records = [make_record(g, campaign="batch", birth=i, parents=[p.hash] if p else [],
                           operator="mutation" if p else "sample") for i, (g, p) in enumerate(((a, None), (b, a),
                                                                                                  (c, b)))]
    assert archiver.write_results(list(enumerate(records))) == 3  # one transaction
    client = MlflowClient(uri)
    note = {g.hash: client.get_run(archiver.run_id_of(g.hash)).data.tags[mp.TAG_NOTE] for g in (a, b, c)}
    assert archiver.run_id_of(b.hash) in note[a.hash] and archiver.run_id_of(a.hash) in note[b.hash]
    assert archiver.run_id_of(c.hash) in note[b.hash] and "generation 2" in note[c.hash]
    d = c.replace(d_model=128)
    archiver.write_results([(3, make_record(d, campaign="batch", birth=3, parents=[c.hash], operator="mutation"))])
    assert archiver.run_id_of(d.hash) in client.get_run(archiver.run_id_of(c.hash)).data.tags[mp.TAG_NOTE]


@pytest.mark.parametrize("seed", [0, 1])
def test_a_bounded_family_writes_the_notes_of_the_whole_family(tmp_path, seed: int) -> None:
    """A flat campaign's family keeps only its latest nodes and reads the rest (parents, children, their runs and
    generations) from the campaign index: every note equals the note of a family that kept everything."""
    import random

    from search.journal import Journal, write_atomic
    from search.views.index import record_run_ids
    from search.views.lookups import IndexLookup

    rng = random.Random(seed)
    genomes = [Genome(ticks=t, memory_length=m) for t in range(1, 13) for m in range(1, 8)]
    rng.shuffle(genomes)
    write_atomic(tmp_path / "campaign.json", {"campaign_id": "c-1"})
    journal = Journal(tmp_path / "journal.jsonl")
    from search.tracking.relatives import Family

    full, bounded = Family(), Family(lookup=IndexLookup(tmp_path, "c-1"), keep=4)
    records, done = [], []
    for birth, genome in enumerate(genomes):
        k = 0 if birth < 5 else rng.choice([1, 1, 2, 2])  # popular parents get more than CHILDREN_SHOWN children
        parents = [rng.choice(done[:2] if rng.random() < 0.8 else done) for _ in range(k)]
        status = "ok" if rng.random() > 0.1 else "diverged"
        records.append(make_record(genome, campaign="c-1", birth=birth, parents=parents, status=status,
                                   cell=f"{birth % 5}", fitness=round(rng.random(), 2),
                                   operator={0: "sample", 1: "mutation", 2: "crossover"}[k]))
        done.append(genome.hash)
    for start in range(0, len(records), 3):  # batches of three, as the archiver gets them from the journal
        batch = records[start:start + 3]
        journal.extend([e for r in batch for e in ({"event": "ask", "births": [r.birth], "proposals": [
            r.proposal.to_dict()]}, {"event": "result", "record": r.to_dict()})])
        bounded.refresh()  # as the archiver does before each batch's notes
        for r in batch:
            for family in (full, bounded):
                family.remember(r, f"{r.birth:032x}")
        for h in {r.genome.hash for r in batch} | {p for r in batch for p in r.proposal.parents}:
            assert bounded.note(h, experiment_id="1", campaign_run_id="c") == full.note(
                h, experiment_id="1", campaign_run_id="c")
        record_run_ids(tmp_path, {r.genome.hash: f"{r.birth:032x}" for r in batch})  # after the batch is written
        assert len(bounded.nodes) <= 4 and bounded.runs == start + len(batch)
    assert max(len(c) for c in full.children.values()) > notes.CHILDREN_SHOWN
    for h in done:
        assert bounded.note(h, experiment_id="1", campaign_run_id="c") == full.note(
            h, experiment_id="1", campaign_run_id="c")

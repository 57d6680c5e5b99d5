"""Lineage from MLflow alone, on a small synthetic campaign with mutation and crossover (a DAG)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow import MlflowClient

from genome import Genome
from search.tracking import AmbiguousHashError, LineageError, lineage
from search.tracking.archiver import MlflowArchiver
from search.tracking.family import lineage_page
from tests.search.mlflow_helpers import make_record


@dataclass
class Campaign:
    uri: str
    archiver: MlflowArchiver
    g: dict[str, Genome]
    runs: dict[str, str]


@pytest.fixture(scope="module")
def camp(tmp_path_factory: pytest.TempPathFactory) -> Campaign:
    """Founders A, B; C = mutate(A), D = mutate(B), E = cross(C, D), F = mutate(E), G = cross(F, C).

    C is reached from G along two lines (G ← C and G ← F ← E ← C); Z's parent was never logged.
    """
    root = tmp_path_factory.mktemp("lineage")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    archiver = MlflowArchiver(tracking_uri=uri, experiment_name="lineage", campaign_id="lin", config={})
    g = {"A": Genome(ticks=21), "B": Genome(ticks=22, memory_length=4)}
    g["C"] = g["A"].replace(memory_length=12)
    g["D"] = g["B"].replace(d_model=128)
    g["E"] = Genome(ticks=21, memory_length=4, d_model=128)
    g["F"] = g["E"].replace(heads=8)
    g["G"] = g["F"].replace(memory_length=12)
    g["Z"] = Genome(ticks=30)
    plan = {"A": ((), "sample"), "B": ((), "sample"), "C": (("A",), "mutation"), "D": (("B",), "mutation"),
            "E": (("C", "D"), "crossover"), "F": (("E",), "mutation"), "G": (("F", "C"), "crossover"),
            "Z": (("missing",), "mutation")}
    for birth, (name, (parents, operator)) in enumerate(plan.items()):
        hashes = [g[p].hash if p in g else "00000000deadbeef" for p in parents]
        record = make_record(g[name], campaign="lin", birth=birth, parents=hashes, operator=operator,
                             fitness=0.1 * (birth + 1), cell=name)
        archiver.write_results([(birth, record)])
    runs = {name: archiver.run_id_of(genome.hash) for name, genome in g.items()}
    return Campaign(uri=uri, archiver=archiver, g=g, runs=runs)


def _h(camp: Campaign, *names: str) -> list[str]:
    return [camp.g[n].hash for n in names]


def test_full_ancestry_is_a_dag_back_to_the_founders(camp: Campaign) -> None:
    graph = lineage(camp.uri, camp.g["G"].hash[:7])
    h = dict(zip("ABCDEFG", _h(camp, *"ABCDEFG"), strict=True))
    assert graph.root == h["G"] and set(graph.nodes) == set(h.values())
    assert set(graph.edges) == {(h["F"], h["G"]), (h["C"], h["G"]), (h["E"], h["F"]), (h["C"], h["E"]),
                                (h["D"], h["E"]), (h["A"], h["C"]), (h["B"], h["D"])}
    gen = graph.generations()
    assert [gen[h[n]] for n in "ABCDEFG"] == [0, 0, 1, 1, 2, 3, 4]
    g = graph.nodes[h["G"]]
    assert g.run_id == camp.runs["G"] and g.operator == "crossover" and g.fitness == pytest.approx(0.7)
    assert g.changes == {h["F"]: {"memory_length": ("4", "12")},
                         h["C"]: {"d_model": ("256", "128"), "heads": ("4", "8")}}
    assert graph.nodes[h["F"]].changes == {h["E"]: {"heads": ("4", "8")}}
    assert graph.nodes[h["A"]].parents == () and graph.nodes[h["A"]].operator == "sample"


def test_tree_text_shows_a_node_reached_twice_once(camp: Campaign) -> None:
    text = lineage(camp.uri, camp.runs["G"]).to_tree_text()  # by run id this time
    c = camp.g["C"].hash
    assert text.count(c) == 2  # in full once, referenced once
    assert text.count(f"differs from {c[:8]} (the other parent) in 2 gene(s)") == 2  # under G and under E
    assert f"{c}  (shown above)" in text
    assert text.count(f"{camp.g['A'].hash}  fitness") == 1  # C's ancestry is not repeated either
    assert "changed from " + camp.g["E"].hash[:8] + ": heads 4→8" in text
    assert f"run {camp.runs['G']}" in text and "[founder]" in text
    lines = text.splitlines()
    assert lines[1].startswith(camp.g["G"].hash) and any(line.startswith("├── ") for line in lines)


def test_depth_limits_the_generations(camp: Campaign) -> None:
    graph = lineage(camp.uri, camp.g["G"].hash, depth=1)
    assert set(graph.nodes) == set(_h(camp, "G", "F", "C"))
    f = graph.nodes[camp.g["F"].hash]
    assert not f.expanded and f.changes == {camp.g["E"].hash: {"heads": ("4", "8")}}
    assert "parents beyond depth 1" in graph.to_tree_text()
    only = lineage(camp.uri, camp.g["G"].hash, depth=0)
    assert list(only.nodes) == _h(camp, "G") and only.edges == []
    assert len(only.nodes[camp.g["G"].hash].changes) == 2


def test_a_parent_missing_from_mlflow_is_shown_as_such(camp: Campaign) -> None:
    graph = lineage(camp.uri, camp.g["Z"].hash)
    missing = graph.nodes["00000000deadbeef"]
    assert missing.run_id is None and not missing.found
    assert "no run in MLflow" in graph.to_tree_text()


def test_unknown_and_bad_keys_fail_clearly(camp: Campaign) -> None:
    with pytest.raises(LineageError, match="no evaluation run with genome hash 'fffffffffffffffe'"):
        lineage(camp.uri, "fffffffffffffffe")
    with pytest.raises(LineageError, match=r"no run with id 0{32}"):
        lineage(camp.uri, "0" * 32)
    with pytest.raises(LineageError, match="neither a run id"):
        lineage(camp.uri, "not-a-hash")
    with pytest.raises(LineageError, match="not a ctmevo evaluation run"):
        lineage(camp.uri, camp.archiver.campaign_run_id)
    with pytest.raises(ValueError, match="depth"):
        lineage(camp.uri, camp.g["G"].hash, depth=-1)


def test_an_ambiguous_prefix_lists_the_candidates(camp: Campaign, tmp_path: Path) -> None:
    seen: dict[str, str] = {camp.g[n].hash[0]: camp.g[n].hash for n in "ABCDEFG"}
    ticks = 31
    while True:  # add founders until two hashes share a first digit (deterministic: hashes are fixed)
        extra = Genome(ticks=ticks)
        prefix = extra.hash[0]
        camp.archiver.write_results([(100 + ticks, make_record(extra, campaign="lin", birth=100 + ticks))])
        if prefix in seen:
            break
        seen[prefix] = extra.hash
        ticks += 1
    with pytest.raises(AmbiguousHashError) as info:
        lineage(camp.uri, prefix)
    found = {c["genome_hash"] for c in info.value.candidates}
    assert {seen[prefix], extra.hash} <= found and all(h.startswith(prefix) for h in found)
    assert seen[prefix] in str(info.value) and extra.hash in str(info.value)


def test_all_formats_are_produced(camp: Campaign, tmp_path: Path) -> None:
    graph = lineage(camp.uri, camp.g["G"].hash)
    dot = graph.to_dot()
    assert dot.startswith("digraph lineage {") and dot.rstrip().endswith("}")
    assert f'"{camp.g["C"].hash}" -> "{camp.g["E"].hash}"' in dot and "heads 4→8" in dot
    page = lineage_page(graph)
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "</html>" in page
    assert all(h in page for h in graph.nodes)
    assert "src=" not in page and "<link" not in page and "@import" not in page  # inline only: no network
    for h, node in graph.nodes.items():  # every node with a run links to it, in the run's experiment
        assert node.run_id and f'data-hash="{h}" data-run="{node.run_id}"' in page
    assert graph.experiment_id and f"data-experiment='{graph.experiment_id}'" in page
    assert "data-base='http://127.0.0.1:5000'" in page  # a sqlite store: where `mlflow ui` serves it
    assert 'http://example.org:81' in lineage_page(graph, base="http://example.org:81")
    png = graph.to_png(tmp_path / "lineage.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_lineage_needs_only_the_tracking_uri(camp: Campaign) -> None:
    """A reader with nothing but the URI (a fresh client; no campaign directory, no tracker)."""
    client = MlflowClient(camp.uri)
    assert client.get_run(camp.runs["E"]).data.tags["ctmevo.parent_hashes"] == ",".join(_h(camp, "C", "D"))
    graph = lineage(camp.uri, camp.g["E"].hash, campaign="lin")
    assert set(graph.nodes) == set(_h(camp, "E", "C", "D", "A", "B"))


def test_the_lineage_graph_needs_no_mlflow():
    """The graph (nodes, walk, renderers, from journal records) imports without MLflow; reading runs is tracking's."""
    import subprocess
    import sys
    code = ("import sys; import search.lineage as g; assert hasattr(g, 'lineage_from_records'); "
            "bad = [m for m in sys.modules if m == 'mlflow' or m.startswith('mlflow.')]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)

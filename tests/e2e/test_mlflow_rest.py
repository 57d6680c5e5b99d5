"""The lineage as the MLflow server serves it, read over its REST API (plain HTTP, no MLflow client)."""

from __future__ import annotations

import json
import shutil
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from search.cli import main
from tests.e2e.conftest import EVALUATIONS, Finished

pytestmark = pytest.mark.slow


def api(server_uri: str, path: str, body: dict) -> dict:
    """POST for searches, GET (the body as query parameters) for reads, as MLflow's REST API wants them."""
    url = f"{server_uri}/api/2.0/mlflow/{path}"
    if path.endswith("/search"):
        request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
    else:
        request = urllib.request.Request(f"{url}?{urllib.parse.urlencode(body)}", method="GET")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def runs(finished: Finished, query: str, experiment: str | None = None) -> list[dict]:
    out = api(finished.server.uri, "runs/search", {"experiment_ids": [experiment or finished.experiment_id],
                                                   "filter": query, "max_results": 1000})
    return out.get("runs", [])


def _tags(run: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}


def _metrics(run: dict) -> dict[str, float]:
    return {m["key"]: m["value"] for m in run["data"].get("metrics", [])}


def test_notes_link_every_parent_and_child_run(finished: Finished) -> None:
    evaluations = runs(finished, "tags.`ctmevo.kind` = 'evaluation'")
    assert len(evaluations) == EVALUATIONS
    by_hash = {_tags(r)["ctmevo.genome_hash"]: r for r in evaluations}
    children: dict[str, list[str]] = {}
    for h, run in by_hash.items():
        for parent in filter(None, _tags(run)["ctmevo.parent_hashes"].split(",")):
            children.setdefault(parent, []).append(h)
    assert children, "a campaign of MAP-Elites makes children"
    for h, run in by_hash.items():
        note = _tags(run)["mlflow.note.content"]
        parents = list(filter(None, _tags(run)["ctmevo.parent_hashes"].split(",")))
        for parent in parents:
            assert f"/runs/{by_hash[parent]['info']['run_id']}?" in note, (h, parent)
        for child in children.get(h, []):
            assert f"/runs/{by_hash[child]['info']['run_id']}?" in note, (h, child)
        assert ("**Founder**" in note) == (not parents)
        metrics = _metrics(run)
        record = next(r for r in finished.records if r.genome.hash == h)
        assert metrics["birth"] == record.birth and metrics["gene.ticks"] == record.genome.ticks
        assert metrics["generation"] == (0 if not parents else 1 + max(_metrics(by_hash[p])["generation"]
                                                                      for p in parents))


def test_the_campaign_run_finished_and_holds_the_family_views(finished: Finished) -> None:
    run = api(finished.server.uri, "runs/get", {"run_id": finished.campaign_run_id})["run"]
    assert run["info"]["status"] == "FINISHED" and _tags(run)["ctmevo.kind"] == "campaign"
    files = api(finished.server.uri, "artifacts/list", {"run_id": finished.campaign_run_id})["files"]
    assert {"family_tree.html", "archive_view.html"} <= {f["path"] for f in files}
    experiment = api(finished.server.uri, "experiments/get", {"experiment_id": finished.experiment_id})["experiment"]
    tags = {t["key"]: t["value"] for t in experiment["tags"]}
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    assert f"mlflow.sharedViewState.ctmevo-{finished.campaign_id}" in tags


def test_a_moved_campaign_exports_weights_and_the_export_stays_apart(finished: Finished, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    moved = tmp_path / "moved"
    shutil.copytree(finished.root, moved)
    kept = finished.root.with_name("kept")
    finished.root.rename(kept)  # the old place is gone while exporting from the new one
    try:
        assert main(["export", "--best", "--campaign", str(moved), "--out", str(tmp_path / "best")]) == 0
    finally:
        kept.rename(finished.root)
    out = capsys.readouterr().out
    assert (tmp_path / "best" / "weights.safetensors").stat().st_size > 1000 and "logged model" in out
    assert "Pickle" not in out
    assert runs(finished, "tags.`ctmevo.kind` = 'export'") == []  # not among the evaluations ...
    exports = api(finished.server.uri, "experiments/get-by-name", {"experiment_name": "ctmevo-exports"})
    exported = runs(finished, "tags.`ctmevo.kind` = 'export'", exports["experiment"]["experiment_id"])
    assert len(exported) == 1 and _tags(exported[0])["ctmevo.source_run_id"] == finished.run_ids[finished.best]
    ranked = runs(finished, "metrics.fitness > -1000")
    hashes = [_tags(r).get("ctmevo.genome_hash") for r in ranked]
    assert len(hashes) == len(set(hashes)) == EVALUATIONS  # sorted by fitness, each genome once

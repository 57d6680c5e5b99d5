"""A campaign directory moved elsewhere (the old place gone) keeps its MLflow artifacts: export still gets weights."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
import torch
import yaml

from search.cli import main
from tests.search.test_export import CONFIG

pytestmark = pytest.mark.slow


def _roots(db: Path) -> set[str]:
    with sqlite3.connect(db) as c:
        return {row[0] for row in c.execute("SELECT artifact_uri FROM runs")}


def test_a_moved_campaign_exports_weights_from_the_new_place(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from search.campaign import start

    torch.set_num_threads(1)
    old = tmp_path / "old" / "tiny"
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump({**CONFIG, "output_dir": str(old), "budget":
                                                        {"evaluations": 4}}))
    start(tmp_path / "tiny.yaml").run()
    new = tmp_path / "elsewhere" / "tiny"
    new.parent.mkdir()
    shutil.move(old, new)  # the old directory is gone
    assert not old.exists()
    assert all(uri.startswith(old.resolve().as_uri()) for uri in _roots(new / "mlflow.db"))

    # MLflow alone (no journal, no checkpoints on disk): the weights come from the run's artifacts
    uri = f"sqlite:///{new / 'mlflow.db'}"
    assert main(["export", "--best", "--tracking-uri", uri, "--out", str(tmp_path / "b1"), "--no-mlflow"]) == 0
    assert "runs:/" in capsys.readouterr().out
    assert (tmp_path / "b1" / "weights.safetensors").stat().st_size > 1000
    assert all(u.startswith((new / "mlartifacts").resolve().as_uri()) for u in _roots(new / "mlflow.db"))
    # and with the campaign directory, registering the model in the moved store: nothing written at the old place
    assert main(["export", "--best", "--campaign", str(new), "--out", str(tmp_path / "b2")]) == 0
    assert "logged model models:/" in capsys.readouterr().out and not old.exists()
    assert main(["relocate", str(new)]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_relocate_rewrites_only_the_recorded_root(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from search.tracking.relocate import relocate_store

    db = tmp_path / "mlflow.db"
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE experiments (experiment_id INTEGER, artifact_location VARCHAR(256))")
        c.execute("CREATE TABLE runs (run_uuid TEXT, artifact_uri VARCHAR(200))")
        c.executemany("INSERT INTO experiments VALUES (?, ?)", [(0, "/somewhere/mlruns/0"),
                                                               (1, "file:///old/c/mlartifacts")])
        c.executemany("INSERT INTO runs VALUES (?, ?)", [("a", "file:///old/c/mlartifacts/a/artifacts"),
                                                        ("b", "file:///old/c/mlartifacts2/b/artifacts")])
    changes = relocate_store(db)
    new = (tmp_path / "mlartifacts").resolve().as_uri()
    assert [(c.old, c.new, c.rows) for c in changes] == [
        ("file:///old/c/mlartifacts", new, {"experiments.artifact_location": 1, "runs.artifact_uri": 1})]
    with sqlite3.connect(db) as c:
        assert set(c.execute("SELECT artifact_uri FROM runs")) == {
            (f"{new}/a/artifacts",), ("file:///old/c/mlartifacts2/b/artifacts",)}  # a sibling root is left alone
    assert relocate_store(db) == []
    assert main(["relocate", str(tmp_path / "nothing")]) == 2
    assert "no MLflow store here" in capsys.readouterr().err

"""Campaign-file checks that need no process of their own: names, tracking URIs, resources, the directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from search.campaign.checks import check_output_dir, tracking_uri_problem
from search.campaign.config import check_places, load_campaign_config, parse_campaign_config
from search.errors import ConfigError
from search.paths import directory_problem
from tests.search.test_faults import config


@pytest.mark.parametrize("uri", ["sqlite:////tmp/x/mlflow.db", "sqlite:///rel.db", "http://127.0.0.1:5000",
                                 "https://mlflow.example.org", "postgresql+psycopg2://u:p@h/db", "mysql://h/db",
                                 "file:///tmp/mlruns", "/tmp/mlruns", "mlruns", "databricks"])
def test_tracking_uris_mlflow_accepts(uri: str) -> None:
    assert tracking_uri_problem(uri) is None


@pytest.mark.parametrize(("uri", "problem"), [("foo://bar", "unknown scheme 'foo'"), ("http://", "no host"),
                                              ("sqlite://", "three slashes"), ("sqlite://rel.db", "three slashes"),
                                              ("  ", "allowed is")])
def test_tracking_uris_mlflow_rejects(uri: str, problem: str) -> None:
    assert problem in (tracking_uri_problem(uri) or "")


def test_names_up_to_the_length_mlflow_takes(tmp_path: Path) -> None:
    assert parse_campaign_config(config(tmp_path, "a" * 191)).name == "a" * 191
    for bad in ("a" * 192, "..", "has space", "slash/es"):
        with pytest.raises(ConfigError, match="allowed is 1 to 191 letters"):
            parse_campaign_config(config(tmp_path, bad))


@pytest.mark.parametrize(("workers", "message"), [
    ({"backend": "ray", "num_cpus": 2, "cpus_per_eval": 4},
     "workers.cpus_per_eval = 4: allowed is at most num_cpus = 2"),
    ({"backend": "ray", "num_gpus": 0, "gpus_per_eval": 1},
     "workers.gpus_per_eval = 1: allowed is at most num_gpus = 0"),
])
def test_impossible_resources_are_refused_from_the_file(tmp_path: Path, workers: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        parse_campaign_config(config(tmp_path, workers={**workers, "evaluate_fn": "ctm:evaluate"}))


def test_messages_cut_huge_values(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        parse_campaign_config(config(tmp_path, evaluation={"steps": "x" * 10**6}))
    assert len(str(info.value)) < 1500 and "1,000,002 characters" in str(info.value)


def test_directory_problems(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    assert "existing file" in directory_problem(tmp_path / "file")
    assert "symlink loop" in directory_problem(tmp_path / "loop1")
    assert "which does not exist" in directory_problem(tmp_path / "dangling")
    assert "is a file, not a directory" in directory_problem(tmp_path / "file" / "sub" / "deeper")
    assert "nothing can be created in /proc" in directory_problem(Path("/proc/ctmevo-x/y"))
    assert directory_problem(tmp_path / "new" / "nested") is None and not (tmp_path / "new").exists()
    assert directory_problem(tmp_path) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling", "file", "loop1", "loop2"]  # no probe left


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_a_directory_without_write_permission(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert "nothing can be created" in directory_problem(locked / "campaign")
        with pytest.raises(ConfigError, match="output_dir = "):
            check_output_dir(locked / "campaign", source="c.yaml")
    finally:
        locked.chmod(0o700)


def test_a_campaign_file_that_is_not_utf8_names_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"c\.yaml: not UTF-8 text \(byte 0xe9 at offset 9\)"):
        load_campaign_config(path)


def test_the_folder_of_a_sqlite_store_is_checked_too(tmp_path: Path) -> None:
    good = parse_campaign_config(config(tmp_path, tracking={"uri": f"sqlite:///{tmp_path}/new/mlflow.db"}))
    check_places(good, source="c.yaml")
    bad = parse_campaign_config(config(tmp_path, tracking={"uri": "sqlite:////proc/ctmevo-x/mlflow.db"}))
    with pytest.raises(ConfigError, match=r"c\.yaml: tracking\.uri = 'sqlite:////proc/ctmevo-x/mlflow\.db': allowed "
                                          r"is a database in a folder you can create"):
        check_places(bad, source="c.yaml")
    with pytest.raises(ConfigError, match=r"^--dir = '/proc/ctmevo-x': allowed is a directory"):
        check_places(good, source="c.yaml", directory=Path("/proc/ctmevo-x"), field="--dir")
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize(("consumers", "budget", "process"), [
    ("auto", {"evaluations": 6}, False), ("auto", {"evaluations": 10_001}, True), ("auto", {}, True),
    ("auto", {"steps": 1000}, False), ("thread", {}, False), ("process", {"evaluations": 6}, True)])
def test_where_the_consumers_run(tmp_path: Path, consumers: str, budget: dict, process: bool) -> None:
    from search.campaign.sidecar import command

    cfg = parse_campaign_config(config(tmp_path, budget=budget, tracking={"consumers": consumers}))
    assert cfg.tracking.consumers_process(cfg.budget) is process
    assert (command(cfg, tmp_path) is not None) is process
    with pytest.raises(ConfigError, match=r"tracking\.consumers.*'threads'.*'auto', 'thread' or 'process'"):
        parse_campaign_config(config(tmp_path, tracking={"consumers": "threads"}))


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[2] / "experiments").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_every_shipped_campaign_file_validates(path: Path) -> None:
    """The examples the docs point to (2-core and cluster-sized) build their task, strategy and workers."""
    config = load_campaign_config(path)
    assert config.name and config.task.name

"""MLflow tracking against the embedded sqlite store and a real ``mlflow server`` on loopback."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from genome import Genome, from_yaml
from search.journal import JsonLines
from search.tracking import Tracker, TrackingURIError, lineage
from tests.search.mlflow_helpers import MlflowServer, free_port, make_record


class Crash(BaseException):
    """Stands for the process dying mid-call (not caught by the tracker, unlike an Exception)."""


@pytest.fixture(scope="module")
def sqlite_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def campaign() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def _tracker(uri: str, campaign: str, spool: Path, **kw: Any) -> Tracker:
    return Tracker(tracking_uri=uri, experiment_name=f"exp-{campaign}", campaign_id=campaign, spool_dir=spool, **kw)


def _evaluation_runs(client: MlflowClient, tracker: Tracker) -> list:
    return client.search_runs([tracker.experiment_id], "tags.`ctmevo.kind` = 'evaluation'", max_results=1000)


def _history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def _connection_error(*args: Any, **kwargs: Any) -> None:
    raise MlflowException("API request to http://127.0.0.1:1/api failed with exception ConnectionError")


def test_evaluation_runs_hold_genes_metrics_tags_and_artifacts(sqlite_uri: str, campaign: str,
                                                                tmp_path: Path) -> None:
    tracker = _tracker(sqlite_uri, campaign, tmp_path)
    tracker.start_campaign(config={"name": "t", "strategy": {"name": "map_elites", "batch": 4}})
    a = Genome(ticks=8)
    b = a.replace(memory_length=6)
    checkpoint = tmp_path / "b.safetensors"
    checkpoint.write_bytes(b"weights")
    rec_a = make_record(a, campaign=campaign, birth=0, fitness=0.6)
    rec_b = make_record(b, campaign=campaign, birth=1, parents=[a.hash], operator="mutation", fitness=0.7)
    rec_f = make_record(a.replace(d_model=128), campaign=campaign, birth=2, parents=[a.hash],
                        operator="mutation", status="diverged")
    run_a = tracker.log_evaluation(rec_a, cell="(1, 2)")
    run_b = tracker.log_evaluation(rec_b, cell="(1, 3)", checkpoint_path=checkpoint)
    run_f = tracker.log_evaluation(rec_f, cell=None)
    client = MlflowClient(sqlite_uri)
    assert len(_evaluation_runs(client, tracker)) == 3

    camp = client.get_run(tracker.campaign_run_id)
    assert camp.data.tags["ctmevo.kind"] == "campaign" and camp.data.tags["ctmevo.campaign"] == campaign
    assert camp.data.params["strategy.batch"] == "4"
    assert "config.yaml" in [f.path for f in client.list_artifacts(tracker.campaign_run_id)]

    run = client.get_run(run_b)
    assert run.info.run_name == b.hash and run.info.status == "FINISHED"
    assert run.data.params == {k: str(v) for k, v in b.to_dict().items()}
    tags = run.data.tags
    assert tags["mlflow.parentRunId"] == tracker.campaign_run_id
    assert (tags["ctmevo.genome_hash"], tags["ctmevo.campaign"]) == (b.hash, campaign)
    assert (tags["ctmevo.parent_hashes"], tags["ctmevo.parent_run_ids"]) == (a.hash, run_a)
    assert (tags["ctmevo.operator"], tags["ctmevo.birth"], tags["ctmevo.cell"]) == ("mutation", "1", "(1, 3)")
    assert tags["ctmevo.status"] == "ok" and "ctmevo.failure" not in tags
    metrics = run.data.metrics
    assert metrics["fitness"] == pytest.approx(0.7) and metrics["descriptor.ticks"] == 8.0
    for key in ("val_accuracy", "exit_tick_mean", "ece", "wall_time_s", "param_count"):
        assert key in metrics
    assert [s for s, _ in _history(client, run_b, "tick_accuracy")] == [1, 2, 3, 4, 5]
    assert [s for s, _ in _history(client, run_b, "train_loss")] == [1, 2, 3, 4]
    artifacts = {f.path for f in client.list_artifacts(run_b)} | {
        f.path for f in client.list_artifacts(run_b, "checkpoint")}
    assert {"genome.yaml", "checkpoint/b.safetensors"} <= artifacts
    text = Path(client.download_artifacts(run_b, "genome.yaml", str(tmp_path))).read_text()
    assert from_yaml(text) == b

    failed = client.get_run(run_f)
    assert failed.info.status == "FAILED" and "fitness" not in failed.data.metrics
    assert failed.data.tags["ctmevo.status"] == "diverged"
    assert failed.data.tags["ctmevo.failure"].startswith("diverged: loss became NaN")
    assert "ctmevo.cell" not in failed.data.tags


def test_only_log_batch_within_mlflow_limits(sqlite_uri: str, campaign: str, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    tracker = _tracker(sqlite_uri, campaign, tmp_path)
    calls: list[tuple[int, int, int]] = []
    real = tracker._client.log_batch

    def spy(run_id: str, metrics: list = (), params: list = (), tags: list = (), **kw: Any) -> None:
        assert len(metrics) <= 1000 and len(params) <= 100 and len(tags) <= 100
        assert len(metrics) + len(params) + len(tags) <= 1000
        calls.append((len(metrics), len(params), len(tags)))
        real(run_id, metrics=metrics, params=params, tags=tags, **kw)

    def forbidden(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("one call per value: use log_batch")

    monkeypatch.setattr(tracker._client, "log_batch", spy)
    for name in ("log_metric", "log_param", "set_tag"):
        monkeypatch.setattr(tracker._client, name, forbidden)
    record = make_record(Genome(ticks=40), campaign=campaign, birth=0, ticks=40, losses=2500)
    run_id = tracker.log_evaluation(record, cell="0")
    assert 3 <= len(calls) <= 4  # 2500 losses + 40 ticks x 2 + scalars: three or four batches
    client = MlflowClient(sqlite_uri)
    assert len(_history(client, run_id, "train_loss")) == 2500
    assert [s for s, _ in _history(client, run_id, "tick_accuracy")] == list(range(1, 41))
    before = len(calls)
    tracker.log_campaign_metrics(step=1, metrics={"coverage": 0.1, "qd_score": 2.0, "label": "x"})
    assert len(calls) == before + 1 and calls[-1] == (2, 0, 0)  # non-numbers are left out


def test_logging_a_record_twice_gives_one_run(sqlite_uri: str, campaign: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    tracker = _tracker(sqlite_uri, campaign, tmp_path)
    record = make_record(Genome(ticks=9), campaign=campaign, birth=0)
    first = tracker.log_evaluation(record, cell="a")
    assert tracker.log_evaluation(record, cell="a") == first
    tracker.close()
    resumed = _tracker(sqlite_uri, campaign, tmp_path)  # a resumed campaign finds its runs
    assert resumed.campaign_run_id == tracker.campaign_run_id
    monkeypatch.setattr(resumed._client, "search_runs", _connection_error)  # known at start-up: no query
    assert resumed.log_evaluation(record, cell="a") == first
    monkeypatch.undo()
    client = MlflowClient(sqlite_uri)
    assert len(_evaluation_runs(client, tracker)) == 1
    assert client.get_run(resumed.campaign_run_id).info.status == "RUNNING"
    assert len(_history(client, first, "tick_accuracy")) == 5


def test_a_success_replaces_an_earlier_failure_of_the_same_genome(sqlite_uri: str, campaign: str,
                                                                  tmp_path: Path) -> None:
    tracker = _tracker(sqlite_uri, campaign, tmp_path)
    genome = Genome(ticks=10, memory_length=3)
    failed = make_record(genome, campaign=campaign, birth=0, status="timeout")
    good = make_record(genome, campaign=campaign, birth=5, fitness=0.9)
    run_id = tracker.log_evaluation(failed, cell=None)
    assert tracker.log_evaluation(good, cell="c") == run_id
    assert tracker.log_evaluation(failed, cell=None) == run_id  # a replayed failure changes nothing now
    client = MlflowClient(sqlite_uri)
    (run,) = _evaluation_runs(client, tracker)
    assert run.info.status == "FINISHED" and run.data.tags["ctmevo.status"] == "ok"
    assert "ctmevo.failure" not in run.data.tags and run.data.metrics["fitness"] == pytest.approx(0.9)


def test_a_half_written_run_is_completed_not_duplicated(sqlite_uri: str, campaign: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    tracker = _tracker(sqlite_uri, campaign, tmp_path)
    record = make_record(Genome(ticks=11), campaign=campaign, birth=0)

    def crash(*args: Any, **kwargs: Any) -> None:
        raise Crash

    monkeypatch.setattr(tracker._client, "log_text", crash)  # dies after create_run and log_batch
    with pytest.raises(Crash):
        tracker.log_evaluation(record, cell="a")
    client = MlflowClient(sqlite_uri)
    (half,) = _evaluation_runs(client, tracker)
    assert half.info.status == "RUNNING" and tracker.pending() == 0
    resumed = _tracker(sqlite_uri, campaign, tmp_path)
    assert resumed.log_evaluation(record, cell="a") == half.info.run_id
    (run,) = _evaluation_runs(client, tracker)
    assert run.info.status == "FINISHED"
    assert len(_history(client, run.info.run_id, "tick_accuracy")) == 5  # re-sent metrics not doubled
    assert len(_history(client, run.info.run_id, "train_loss")) == 4
    assert "genome.yaml" in [f.path for f in client.list_artifacts(run.info.run_id)]


def test_crossover_records_both_parent_run_ids(sqlite_uri: str, campaign: str, tmp_path: Path) -> None:
    tracker = _tracker(sqlite_uri, campaign, tmp_path)
    a, b = Genome(ticks=12), Genome(ticks=13, memory_length=4)
    run_a = tracker.log_evaluation(make_record(a, campaign=campaign, birth=0), cell=None)
    run_b = tracker.log_evaluation(make_record(b, campaign=campaign, birth=1), cell=None)
    child = make_record(a.replace(memory_length=4), campaign=campaign, birth=2, parents=[a.hash, b.hash],
                        operator="crossover")
    tags = MlflowClient(sqlite_uri).get_run(tracker.log_evaluation(child, cell=None)).data.tags
    assert tags["ctmevo.parent_run_ids"] == f"{run_a},{run_b}"
    assert tags["ctmevo.parent_hashes"] == f"{a.hash},{b.hash}"


def test_failures_are_spooled_and_replayed_in_order(sqlite_uri: str, campaign: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    tracker = _tracker(sqlite_uri, campaign, tmp_path, retry_interval_s=0.0)
    a = Genome(ticks=14)
    b = a.replace(heads=8)
    c = b.replace(memory_length=7)
    monkeypatch.setattr(tracker._client, "log_batch", _connection_error)
    assert tracker.log_evaluation(make_record(a, campaign=campaign, birth=0), cell=None) is None
    assert tracker.log_evaluation(make_record(b, campaign=campaign, birth=1, parents=[a.hash]), cell=None) is None
    tracker.log_campaign_metrics(step=2, metrics={"coverage": 0.5})
    assert tracker.pending() == 3
    monkeypatch.undo()
    run_c = tracker.log_evaluation(make_record(c, campaign=campaign, birth=2, parents=[b.hash]), cell=None)
    assert run_c is not None and tracker.pending() == 0  # the spool went first: parents before children
    client = MlflowClient(sqlite_uri)
    runs = {r.data.tags["ctmevo.genome_hash"]: r for r in _evaluation_runs(client, tracker)}
    assert sorted(runs) == sorted([a.hash, b.hash, c.hash])
    assert all(r.info.status == "FINISHED" for r in runs.values())
    assert runs[c.hash].data.tags["ctmevo.parent_run_ids"] == runs[b.hash].info.run_id
    assert runs[b.hash].data.tags["ctmevo.parent_run_ids"] == runs[a.hash].info.run_id
    assert _history(client, tracker.campaign_run_id, "coverage") == [(2, 0.5)]
    assert tracker.replay() == 0


def test_the_offline_wait_doubles_while_the_server_stays_away(sqlite_uri: str, campaign: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    tracker = _tracker(sqlite_uri, campaign, tmp_path, retry_interval_s=10.0)
    monkeypatch.setattr(tracker._client, "search_runs", _connection_error)
    waits = []
    for birth in range(3):
        tracker.log_evaluation(make_record(Genome(ticks=40 + birth), campaign=campaign, birth=birth), cell=None)
        waits.append(tracker._offline_until - time.monotonic())
        tracker.replay(force=True)  # fails again: the next wait is longer
        waits.append(tracker._offline_until - time.monotonic())
    assert [round(w / 10) for w in waits] == [1, 2, 2, 4, 4, 8]  # offline: logging spools without trying
    assert tracker.replay() == 0 and tracker.pending() == 3  # offline: no attempt
    monkeypatch.undo()
    assert tracker.replay(force=True) == 3 and tracker.online


def test_another_process_replays_the_spool_like_ctmevo_sync(sqlite_uri: str, campaign: str, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    tracker = _tracker(sqlite_uri, campaign, tmp_path, retry_interval_s=60.0)
    monkeypatch.setattr(tracker._client, "search_runs", _connection_error)
    records = [make_record(Genome(ticks=17 + i), campaign=campaign, birth=i) for i in range(2)]
    assert [tracker.log_evaluation(r, cell=None) for r in records] == [None, None]
    sync = _tracker(sqlite_uri, campaign, tmp_path)  # a fresh tracker on the same campaign directory
    assert sync.pending() == 2 and sync.replay(force=True) == 2 and sync.pending() == 0 and tracker.pending() == 0
    assert len(_evaluation_runs(MlflowClient(sqlite_uri), sync)) == 2


def test_entries_mlflow_rejects_are_set_aside(sqlite_uri: str, campaign: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    tracker = _tracker(sqlite_uri, campaign, tmp_path, retry_interval_s=0.0)
    bad = make_record(Genome(ticks=15), campaign=campaign, birth=0)
    real = tracker._client.log_batch

    def reject(run_id: str, **kw: Any) -> None:
        if run_id == poisoned:
            raise MlflowException("bad value", error_code=INVALID_PARAMETER_VALUE)
        real(run_id, **kw)

    poisoned = "*"
    monkeypatch.setattr(tracker._client, "log_batch", lambda run_id, **kw: reject("*", **kw))
    assert tracker.log_evaluation(bad, cell=None) is None and tracker.online  # rejected, not offline
    poisoned = _evaluation_runs(MlflowClient(sqlite_uri), tracker)[0].info.run_id
    monkeypatch.setattr(tracker._client, "log_batch", reject)
    good = make_record(Genome(ticks=16), campaign=campaign, birth=1)
    assert tracker.log_evaluation(good, cell=None) is not None  # a poisoned entry blocks nothing
    tracker.replay()
    assert tracker.pending() == 1
    tracker.replay()  # third failed attempt: moved aside
    assert tracker.pending() == 0
    (rejected,) = JsonLines(tmp_path / "mlflow-spool-rejected.jsonl").read()
    assert rejected["attempts"] == 3 and "bad value" in rejected["error"]


def test_campaign_artifacts_are_refreshed(sqlite_uri: str, campaign: str, tmp_path: Path) -> None:
    tracker = _tracker(sqlite_uri, campaign, tmp_path / "spool")
    (tmp_path / "plots").mkdir()
    csv = tmp_path / "archive.csv"
    for content in ("a,b\n1,2\n", "a,b\n3,4\n"):
        csv.write_text(content)
        (tmp_path / "plots" / "heatmap.png").write_bytes(b"png")
        tracker.log_campaign_artifacts([csv, tmp_path / "plots"])
    client = MlflowClient(sqlite_uri)
    assert {"archive.csv", "plots"} <= {f.path for f in client.list_artifacts(tracker.campaign_run_id)}
    got = client.download_artifacts(tracker.campaign_run_id, "archive.csv", str(tmp_path / "dl"))
    assert Path(got).read_text() == "a,b\n3,4\n"


def test_unusable_uris_fail_clearly_at_start_up(tmp_path: Path) -> None:
    with pytest.raises(TrackingURIError, match="foo://nowhere"):
        _tracker("foo://nowhere", "c1", tmp_path)
    dead = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(TrackingURIError, match=dead.replace(".", r"\.")) as info:
        _tracker(dead, "c1", tmp_path)
    assert time.monotonic() - started < 15 and info.value.uri == dead
    offline = _tracker(dead, "c1", tmp_path, offline_ok=True)
    started = time.monotonic()
    assert offline.log_evaluation(make_record(Genome(), campaign="c1", birth=0), cell=None) is None
    assert time.monotonic() - started < 1.0  # offline: spooled without touching the network
    assert offline.pending() == 1 and offline.campaign_run_id is None
    with pytest.raises(ValueError, match="campaign_id"):
        _tracker(dead, "bad id!", tmp_path)


# -- a real mlflow server on loopback --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> MlflowServer:
    srv = MlflowServer(tmp_path_factory.mktemp("server")).start()
    yield srv
    srv.stop()


@pytest.mark.slow
def test_server_down_and_back_spools_then_replays_without_duplicates(server: MlflowServer, campaign: str,
                                                                    tmp_path: Path) -> None:
    tracker = _tracker(server.uri, campaign, tmp_path, retry_interval_s=60.0)
    tracker.start_campaign(config={"name": "remote"})
    chain = [Genome(ticks=20)]
    for gene, value in (("memory_length", 5), ("heads", 8), ("nlm_depth", 1), ("dropout", 0.1)):
        chain.append(chain[-1].replace(**{gene: value}))
    records = [make_record(g, campaign=campaign, birth=i, parents=[chain[i - 1].hash] if i else [],
                           operator="mutation" if i else "sample", fitness=0.1 * (i + 1))
               for i, g in enumerate(chain)]
    ids = [tracker.log_evaluation(r, cell=str(i)) for i, r in enumerate(records[:3])]
    assert all(ids)
    tracker.log_campaign_metrics(step=3, metrics={"coverage": 0.3})

    server.stop()
    started = time.monotonic()
    assert tracker.log_evaluation(records[3], cell="3") is None
    first_call = time.monotonic() - started
    started = time.monotonic()
    assert tracker.log_evaluation(records[4], cell="4") is None
    tracker.log_campaign_metrics(step=5, metrics={"coverage": 0.5})
    later_calls = time.monotonic() - started
    print(f"dead server: first log_evaluation {first_call:.2f} s, next calls {later_calls:.3f} s")
    assert first_call < 10 and later_calls < 0.5
    assert tracker.pending() == 3

    server.start()
    assert tracker.replay() == 0  # still inside the offline window: no attempt, no wait
    assert tracker.replay(force=True) == 3
    assert tracker.pending() == 0 and tracker.replay() == 0
    assert tracker.log_evaluation(records[3], cell="3") is not None  # idempotent after the replay
    client = MlflowClient(server.uri)
    runs = {r.data.tags["ctmevo.genome_hash"]: r for r in _evaluation_runs(client, tracker)}
    assert len(runs) == 5 and len(_evaluation_runs(client, tracker)) == 5
    for i in range(1, 5):
        assert runs[chain[i].hash].data.tags["ctmevo.parent_run_ids"] == runs[chain[i - 1].hash].info.run_id
    assert _history(client, tracker.campaign_run_id, "coverage") == [(3, 0.3), (5, 0.5)]
    assert [s for s, _ in _history(client, runs[chain[4].hash].info.run_id, "tick_accuracy")] == [1, 2, 3, 4, 5]

    graph = lineage(server.uri, chain[4].hash[:10])  # lineage reads the remote server alone
    assert list(graph.nodes) == [g.hash for g in reversed(chain)]
    assert graph.nodes[chain[4].hash].changes == {chain[3].hash: {"dropout": ("0.0", "0.1")}}
    tracker.close()
    assert client.get_run(tracker.campaign_run_id).info.status == "FINISHED"

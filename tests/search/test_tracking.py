"""The MLflow archive (MlflowArchiver and its batched writers) against sqlite stores and a real ``mlflow server``."""

from __future__ import annotations

import itertools
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

import search.tracking.payload as mp
from genome import Genome
from search.tracking import lineage
from search.tracking.archiver import MlflowArchiver, TrackingUnavailable, TrackingURIError
from search.tracking.writers import ClientWriter, SqlWriter
from tests.search.mlflow_helpers import MlflowServer, free_port, make_record


def test_sql_run_ids_follow_the_order_runs_were_made(sqlite_uri: str, campaign: str) -> None:
    """Run ids of a SQL store sort by creation (every table is keyed by run id: inserts append, not scatter)."""
    archiver = _archiver(sqlite_uri, campaign)
    assert isinstance(archiver._writer, SqlWriter)
    records = [make_record(Genome(ticks=1 + i), campaign=campaign, birth=i) for i in range(12)]
    for i in range(0, 12, 4):
        archiver.write_results(list(enumerate(records))[i:i + 4])
        time.sleep(0.002)  # the next batch in a later millisecond
    ids = [archiver.run_id_of(r.genome.hash) for r in records]
    batches = [ids[i:i + 4] for i in range(0, 12, 4)]
    assert all(max(a) < min(b) for a, b in itertools.pairwise(batches))  # later batches sort after
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert {r.info.run_id for r in _evaluation_runs(MlflowClient(sqlite_uri), archiver)} == set(ids)


class Crash(BaseException):
    """Stands for the process dying mid-call (not caught anywhere, unlike an Exception)."""


@pytest.fixture(scope="module")
def sqlite_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def campaign() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def _archiver(uri: str, campaign: str, **kw: Any) -> MlflowArchiver:
    archiver = MlflowArchiver(tracking_uri=uri, experiment_name=f"exp-{campaign}", campaign_id=campaign,
                              config=kw.pop("config", {"name": campaign}), **kw)
    archiver.connect()
    return archiver


def _evaluation_runs(client: MlflowClient, archiver: MlflowArchiver) -> list:
    return client.search_runs([archiver.experiment_id], "tags.`ctmevo.kind` = 'evaluation'", max_results=1000)


def _history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def _detail(client: MlflowClient, run_id: str, tmp: Path | None = None) -> list[dict]:
    """The rows of the campaign run's detail file that this run's ``ctmevo.detail`` tag names, for this genome."""
    import json
    import tempfile

    run = client.get_run(run_id)
    with tempfile.TemporaryDirectory() as folder:
        local = client.download_artifacts(run.data.tags["mlflow.parentRunId"], run.data.tags["ctmevo.detail"],
                                          str(tmp or folder))
        rows = [json.loads(line) for line in Path(local).read_text().splitlines()]
    return [r for r in rows if r["genome_hash"] == run.data.tags["ctmevo.genome_hash"]]


def _connection_error(*args: Any, **kwargs: Any) -> None:
    raise MlflowException("API request to http://127.0.0.1:1/api failed with exception ConnectionError")


def test_evaluation_runs_hold_genes_metrics_tags_and_artifacts(sqlite_uri: str, campaign: str,
                                                                tmp_path: Path) -> None:
    checkpoints = {}
    archiver = _archiver(sqlite_uri, campaign, config={"name": "t", "strategy": {"name": "map_elites", "batch": 4}},
                         checkpoints="elites", checkpoint_of=lambda h: checkpoints.get(h))
    assert isinstance(archiver._writer, SqlWriter)  # a database store: batched SQL writes
    a = Genome(ticks=8)
    b = a.replace(memory_length=6)
    c = a.replace(memory_length=7)
    for genome in (b, c):
        checkpoints[genome.hash] = tmp_path / f"{genome.hash}.safetensors"
        checkpoints[genome.hash].write_bytes(b"weights")
    rec_a = make_record(a, campaign=campaign, birth=0, fitness=0.6, cell="1_2")
    rec_b = make_record(b, campaign=campaign, birth=1, parents=[a.hash], operator="mutation", fitness=0.7,
                        cell="1_3")
    rec_c = make_record(c, campaign=campaign, birth=2, parents=[a.hash], operator="mutation", fitness=0.65,
                        cell="1_3")  # not better than b: not an elite, so its weights are not uploaded
    rec_f = make_record(a.replace(d_model=128), campaign=campaign, birth=3, parents=[a.hash],
                        operator="mutation", status="diverged")
    assert archiver.write_results(list(enumerate([rec_a, rec_b, rec_c, rec_f]))) == 4  # one transaction
    client = MlflowClient(sqlite_uri)
    assert len(_evaluation_runs(client, archiver)) == 4

    camp = client.get_run(archiver.campaign_run_id)
    assert camp.data.tags["ctmevo.kind"] == "campaign" and camp.data.tags["ctmevo.campaign"] == campaign
    assert camp.data.params["strategy.batch"] == "4"
    assert "config.yaml" in [f.path for f in client.list_artifacts(archiver.campaign_run_id)]

    run_a, run_b = archiver.run_id_of(a.hash), archiver.run_id_of(b.hash)
    run = client.get_run(run_b)
    assert run.info.run_name == b.hash and run.info.status == "FINISHED" and run.info.user_id
    assert run.data.params == {k: str(v) for k, v in b.to_dict().items()}
    tags = run.data.tags
    assert tags["mlflow.parentRunId"] == archiver.campaign_run_id
    assert (tags["ctmevo.genome_hash"], tags["ctmevo.campaign"]) == (b.hash, campaign)
    assert (tags["ctmevo.parent_hashes"], tags["ctmevo.parent_run_ids"]) == (a.hash, run_a)
    assert (tags["ctmevo.operator"], tags["ctmevo.birth"], tags["ctmevo.cell"]) == ("mutation", "1", "1_3")
    assert tags["ctmevo.status"] == "ok" and "ctmevo.failure" not in tags
    metrics = run.data.metrics
    assert metrics["fitness"] == pytest.approx(0.7) and metrics["descriptor.ticks"] == 8.0
    for key in ("val_accuracy", "exit_tick_mean", "ece", "wall_time_s", "param_count"):
        assert key in metrics
    assert not any(k in metrics for k in ("tick_accuracy", "tick_certainty", "train_loss"))  # in the detail file
    # the per-evaluation contract: a metric is a row in two tables with five indexes, so only what the runs table
    # sorts by; every gene is a param, and only the table's gene columns are metrics too
    assert {k for k in metrics if k.startswith("gene.")} == {f"gene.{g}" for g in mp.SORTED_GENES}
    assert "attempts" not in metrics and "ctmevo.worker" not in tags  # one attempt: said in the detail file
    (row,) = _detail(client, run_b)
    assert row["attempts"] == 1 and row["worker"] == rec_b.result.worker
    assert len(row["tick_accuracy"]) == len(row["tick_certainty"]) == 5
    assert row["train_loss_steps"] == [1, 2, 3, 4] and len(row["train_loss"]) == 4
    assert Genome.from_dict(row["genes"]) == b
    artifacts = {f.path for f in client.list_artifacts(run_b)} | {
        f.path for f in client.list_artifacts(run_b, "checkpoint")}
    assert artifacts == {"checkpoint", f"checkpoint/{b.hash}.safetensors"}  # no folder per run but for weights
    assert "checkpoint" not in {f.path for f in client.list_artifacts(archiver.run_id_of(c.hash))}
    best = client.search_runs([archiver.experiment_id], "tags.`ctmevo.kind` = 'evaluation'",
                              order_by=["metrics.fitness DESC"], max_results=1)[0]
    assert best.info.run_id == run_b  # latest_metrics written: the UI and searches sort by fitness

    failed = client.get_run(archiver.run_id_of(rec_f.genome.hash))
    assert failed.info.status == "FAILED" and "fitness" not in failed.data.metrics
    assert failed.data.tags["ctmevo.status"] == "diverged"
    assert failed.data.tags["ctmevo.failure"].startswith("diverged: loss became NaN")
    assert "ctmevo.cell" not in failed.data.tags


def test_a_client_writer_keeps_log_batch_within_mlflow_limits(sqlite_uri: str, campaign: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    archiver = _archiver(sqlite_uri, campaign)
    archiver._writer = ClientWriter(archiver._client)  # the path a tracking server takes
    calls: list[tuple[int, int, int]] = []
    real = archiver._client.log_batch

    def spy(run_id: str, metrics: list = (), params: list = (), tags: list = (), **kw: Any) -> None:
        assert len(metrics) <= 1000 and len(params) <= 100 and len(tags) <= 100
        assert len(metrics) + len(params) + len(tags) <= 1000
        calls.append((len(metrics), len(params), len(tags)))
        real(run_id, metrics=metrics, params=params, tags=tags, **kw)

    def forbidden(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("one call per value: use log_batch")

    monkeypatch.setattr(archiver._client, "log_batch", spy)
    for name in ("log_metric", "log_param"):
        monkeypatch.setattr(archiver._client, name, forbidden)
    record = make_record(Genome(ticks=40), campaign=campaign, birth=0, ticks=40, losses=2500)
    archiver.write_results([(0, record)])
    run_id = archiver.run_id_of(record.genome.hash)
    assert len(calls) == 2  # the run's values in one batch (curves are in the detail file), its rank_score
    client = MlflowClient(sqlite_uri)
    (row,) = _detail(client, run_id)
    assert len(row["train_loss"]) == 2500 and len(row["tick_accuracy"]) == 40
    before = len(calls)
    archiver.write_metrics([(1, {"coverage": 0.1, "qd_score": 2.0, "label": "x"})])
    assert len(calls) == before + 1 and calls[-1] == (2, 0, 0)  # non-numbers are left out


class _NoLookup:
    """A flat archiver's lookup that knows nothing (the runs of a re-sent batch must come from MLflow)."""

    def rows(self, hashes: list[str]) -> dict:
        return {}

    def children(self, parent: str, limit: int) -> tuple[int, list[str]]:
        return 0, []

    def refresh(self) -> None:
        return None


@pytest.mark.parametrize(("writer", "flat"), [("sql", False), ("client", False), ("sql", True), ("client", True)])
def test_a_batch_sent_twice_gives_one_run_each(sqlite_uri: str, campaign: str, writer: str, flat: bool) -> None:
    """Also in a flat campaign, whose archiver reads back at its first batch only the runs that batch may hold."""
    kw: dict[str, Any] = {"flat": True, "lookup": _NoLookup()} if flat else {}
    archiver = _archiver(sqlite_uri, campaign, **kw)
    if writer == "client":
        archiver._writer = ClientWriter(archiver._client)
    records = [make_record(Genome(ticks=9 + i), campaign=campaign, birth=i) for i in range(3)]
    batch = list(enumerate(records))
    assert archiver.write_results(batch[:1]) == 1
    assert archiver.write_results(batch) == 2
    assert archiver.write_results(batch) == 0  # the same results again (a cursor saved too late): skipped
    resumed = _archiver(sqlite_uri, campaign, **kw)  # a resumed campaign finds its runs, with what they hold
    assert resumed.campaign_run_id == archiver.campaign_run_id
    assert resumed.write_results(batch) == 0
    client = MlflowClient(sqlite_uri)
    assert len(_evaluation_runs(client, archiver)) == 3
    assert client.get_run(resumed.campaign_run_id).info.status == "RUNNING"
    assert len(_detail(client, archiver.run_id_of(records[0].genome.hash))) == 1  # one detail row, not two


def test_a_success_replaces_an_earlier_failure_of_the_same_genome(sqlite_uri: str, campaign: str) -> None:
    archiver = _archiver(sqlite_uri, campaign)
    genome = Genome(ticks=10, memory_length=3)
    archiver.write_results([(0, make_record(genome, campaign=campaign, birth=0, status="timeout"))])
    run_id = archiver.run_id_of(genome.hash)
    archiver.write_results([(5, make_record(genome, campaign=campaign, birth=5, fitness=0.9, cell="c"))])
    assert archiver.run_id_of(genome.hash) == run_id
    client = MlflowClient(sqlite_uri)
    (run,) = _evaluation_runs(client, archiver)
    assert run.info.status == "FINISHED" and run.data.tags["ctmevo.status"] == "ok"
    assert "ctmevo.failure" not in run.data.tags and run.data.metrics["fitness"] == pytest.approx(0.9)


def test_a_half_written_run_on_a_server_is_completed_not_duplicated(sqlite_uri: str, campaign: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    archiver = _archiver(sqlite_uri, campaign)
    archiver._writer = ClientWriter(archiver._client)
    record = make_record(Genome(ticks=11), campaign=campaign, birth=0)

    def crash(*args: Any, **kwargs: Any) -> None:
        raise Crash

    monkeypatch.setattr(archiver._client, "log_text", crash)  # dies after create_run and log_batch
    with pytest.raises(Crash):
        archiver.write_results([(0, record)])
    monkeypatch.undo()
    client = MlflowClient(sqlite_uri)
    (half,) = _evaluation_runs(client, archiver)
    assert half.info.status == "RUNNING" and "ctmevo.result_index" not in half.data.tags
    resumed = _archiver(sqlite_uri, campaign)
    resumed._writer = ClientWriter(resumed._client)
    assert resumed.write_results([(0, record)]) == 1
    (run,) = _evaluation_runs(client, archiver)
    assert run.info.run_id == half.info.run_id and run.info.status == "FINISHED"
    assert len(_detail(client, run.info.run_id)) == 1 and len(_history(client, run.info.run_id, "fitness")) == 1


def test_a_failed_sql_batch_writes_nothing_and_can_be_sent_again(sqlite_uri: str, campaign: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    archiver = _archiver(sqlite_uri, campaign)
    a = Genome(ticks=14)
    records = [make_record(a, campaign=campaign, birth=0, cell="x"),
               make_record(a.replace(heads=8), campaign=campaign, birth=1, parents=[a.hash], cell="x", fitness=0.8)]
    import search.tracking.writers as writers

    insert = writers._insert

    def locked(session: Any, table: Any, *args: Any, **kwargs: Any) -> Any:  # after the runs and params
        if table.name == "tags":
            raise MlflowException("(sqlite3.OperationalError) database is locked")
        return insert(session, table, *args, **kwargs)

    monkeypatch.setattr(writers, "_insert", locked)
    with pytest.raises(TrackingUnavailable, match="database is locked"):
        archiver.write_results(list(enumerate(records)))
    monkeypatch.undo()
    client = MlflowClient(sqlite_uri)
    assert _evaluation_runs(client, archiver) == []  # all or nothing: the transaction was rolled back
    assert archiver.write_results(list(enumerate(records))) == 2
    runs = {r.data.tags["ctmevo.genome_hash"]: r for r in _evaluation_runs(client, archiver)}
    assert runs[records[1].genome.hash].data.tags["ctmevo.parent_run_ids"] == runs[a.hash].info.run_id
    assert archiver._cell_best == {"x": 0.8}  # the elite mirror counted each record once


def test_crossover_records_both_parent_run_ids(sqlite_uri: str, campaign: str) -> None:
    a, b = Genome(ticks=12), Genome(ticks=13, memory_length=4)
    child = make_record(a.replace(memory_length=4), campaign=campaign, birth=2, parents=[a.hash, b.hash],
                        operator="crossover")
    archiver = _archiver(sqlite_uri, campaign)
    archiver.write_results([(0, make_record(a, campaign=campaign, birth=0)),
                            (1, make_record(b, campaign=campaign, birth=1)), (2, child)])  # parents in the batch
    tags = MlflowClient(sqlite_uri).get_run(archiver.run_id_of(child.genome.hash)).data.tags
    assert tags["ctmevo.parent_run_ids"] == f"{archiver.run_id_of(a.hash)},{archiver.run_id_of(b.hash)}"
    assert tags["ctmevo.parent_hashes"] == f"{a.hash},{b.hash}"


def test_campaign_metrics_artifacts_and_status(sqlite_uri: str, campaign: str, tmp_path: Path) -> None:
    archiver = _archiver(sqlite_uri, campaign)
    (tmp_path / "plots").mkdir()
    csv = tmp_path / "archive.csv"
    for content in ("a,b\n1,2\n", "a,b\n3,4\n"):
        csv.write_text(content)
        (tmp_path / "plots" / "heatmap.png").write_bytes(b"png")
        (tmp_path / "plots" / "page").mkdir(exist_ok=True)
        (tmp_path / "plots" / "page" / "index.html").write_text("<p>")
        (tmp_path / "plots" / ".heatmap.png.x1.tmp").write_bytes(b"half")  # an atomic write under way: not sent
        archiver.write_artifacts([csv, tmp_path / "plots"])
    archiver.write_metrics([(3, {"coverage": 0.3}), (5, {"coverage": 0.5})])
    client = MlflowClient(sqlite_uri)
    assert {"archive.csv", "plots"} <= {f.path for f in client.list_artifacts(archiver.campaign_run_id)}
    assert {f.path for f in client.list_artifacts(archiver.campaign_run_id, "plots")} == {"plots/heatmap.png",
                                                                                          "plots/page"}
    assert [f.path for f in client.list_artifacts(archiver.campaign_run_id, "plots/page")] == ["plots/page/index.html"]
    got = client.download_artifacts(archiver.campaign_run_id, "archive.csv", str(tmp_path / "dl"))
    assert Path(got).read_text() == "a,b\n3,4\n"
    assert _history(client, archiver.campaign_run_id, "coverage") == [(3, 0.3), (5, 0.5)]
    archiver.close("KILLED")
    assert client.get_run(archiver.campaign_run_id).info.status == "KILLED"
    with sqlite3.connect(sqlite_uri[len("sqlite:///"):]) as db:  # the planner's statistics, for the runs table
        assert db.execute("SELECT COUNT(*) FROM sqlite_stat1 WHERE tbl = 'latest_metrics'").fetchone()[0] > 0
    _archiver(sqlite_uri, campaign)  # a resumed campaign is running again
    assert client.get_run(archiver.campaign_run_id).info.status == "RUNNING"


def test_unusable_uris_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(TrackingURIError, match="foo://nowhere"):
        _archiver("foo://nowhere", "c1")
    dead = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(TrackingUnavailable, match=dead.replace(".", r"\.")):
        _archiver(dead, "c1")
    assert time.monotonic() - started < 15
    with pytest.raises(ValueError, match="campaign_id"):
        MlflowArchiver(tracking_uri=dead, experiment_name="x", campaign_id="bad id!", config={})


# -- a real mlflow server on loopback --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> MlflowServer:
    srv = MlflowServer(tmp_path_factory.mktemp("server")).start()
    yield srv
    srv.stop()


@pytest.mark.slow
def test_a_server_down_and_back_gets_every_record_once(server: MlflowServer, campaign: str) -> None:
    archiver = _archiver(server.uri, campaign)
    assert isinstance(archiver._writer, ClientWriter)
    chain = [Genome(ticks=20)]
    for gene, value in (("memory_length", 5), ("heads", 8), ("nlm_depth", 1), ("dropout", 0.1)):
        chain.append(chain[-1].replace(**{gene: value}))
    records = [make_record(g, campaign=campaign, birth=i, parents=[chain[i - 1].hash] if i else [],
                           operator="mutation" if i else "sample", fitness=0.1 * (i + 1))
               for i, g in enumerate(chain)]
    archiver.write_results(list(enumerate(records[:3])))
    archiver.write_metrics([(3, {"coverage": 0.3})])

    server.stop()
    started = time.monotonic()
    with pytest.raises(TrackingUnavailable):
        archiver.write_results([(3, records[3]), (4, records[4])])
    print(f"dead server: a batch fails in {time.monotonic() - started:.2f} s")
    assert time.monotonic() - started < 15

    server.start()
    assert archiver.write_results([(3, records[3]), (4, records[4])]) == 2  # the same batch, later
    assert archiver.write_results([(3, records[3]), (4, records[4])]) == 0
    client = MlflowClient(server.uri)
    runs = {r.data.tags["ctmevo.genome_hash"]: r for r in _evaluation_runs(client, archiver)}
    assert len(runs) == 5 and len(_evaluation_runs(client, archiver)) == 5
    for i in range(1, 5):
        assert runs[chain[i].hash].data.tags["ctmevo.parent_run_ids"] == runs[chain[i - 1].hash].info.run_id
    assert all(r.info.status == "FINISHED" for r in runs.values())
    assert len(_detail(client, runs[chain[4].hash].info.run_id)[0]["tick_accuracy"]) == 5

    graph = lineage(server.uri, chain[4].hash[:10])  # lineage reads the remote server alone
    assert list(graph.nodes) == [g.hash for g in reversed(chain)]
    assert graph.nodes[chain[4].hash].changes == {chain[3].hash: {"dropout": ("0.0", "0.1")}}
    archiver.close()
    assert client.get_run(archiver.campaign_run_id).info.status == "FINISHED"


def test_a_parents_note_is_rewritten_at_most_every_few_seconds_and_completed_at_the_end(sqlite_uri: str,
                                                                                         campaign: str) -> None:
    """An elite with thousands of children had its note (its best children and their gene changes) rebuilt on
    every batch: the MLflow consumer fell 11,000 runs behind at 100,000 evaluations. Now at most every
    NOTES_EVERY_S seconds, and every waiting note at the end (settle_scores)."""
    archiver = _archiver(sqlite_uri, campaign)
    a = Genome(ticks=5)
    b, c = a.replace(memory_length=3), a.replace(memory_length=4)
    records = [make_record(g, campaign=campaign, birth=i, parents=[a.hash] if i else [], operator="mutation",
                           fitness=0.5) for i, g in enumerate((a, b, c))]
    client = MlflowClient(sqlite_uri)

    def note() -> str:
        return client.get_run(archiver.run_id_of(a.hash)).data.tags["mlflow.note.content"]

    archiver.write_results([(0, records[0])])
    archiver.write_results([(1, records[1])])  # a's first rewrite: now
    assert archiver.run_id_of(b.hash) in note() and archiver.run_id_of(c.hash) is None
    archiver.write_results([(2, records[2])])  # within NOTES_EVERY_S of it: waits
    assert archiver.run_id_of(c.hash) not in note()
    archiver.settle_scores()  # the end of the campaign: every note complete
    assert archiver.run_id_of(b.hash) in note() and archiver.run_id_of(c.hash) in note()


def sql_writer_contract(uri: str, artifacts: Path) -> None:
    """What :class:`SqlWriter` must do on any SQL store (sqlite here, PostgreSQL in tests/e2e): a batch of new
    runs lands whole; the same values sent again change nothing; an update replaces tags and keeps the newest
    metric as the latest, whatever order the values arrive in."""
    from mlflow.entities import Metric

    from search.tracking.writers import RunWrite, make_writer

    client = MlflowClient(uri)
    experiment = client.create_experiment(f"writer-{uuid.uuid4().hex[:8]}", artifact_location=str(artifacts))
    writer = make_writer(client, uri)
    assert isinstance(writer, SqlWriter)
    ids = [writer.new_run_id(experiment, f"r{i}", 0, {}) for i in range(3)]
    batch = [RunWrite(run_id=rid, new=True, run_name=f"r{i}", start_ms=1000 + i, end_ms=2000 + i,
                      status="FINISHED", tags={"ctmevo.cell": f"c{i}"}, params={"ticks": str(i), "heads": "2"},
                      metrics=[Metric("fitness", 0.5 + i / 10, 10, 0), Metric("fitness", 0.6 + i / 10, 11, 1)])
             for i, rid in enumerate(ids)]

    def state() -> list[tuple]:
        runs = [client.get_run(rid) for rid in ids]
        return [(r.info.run_name, r.info.status, sorted(r.data.params.items()), sorted(r.data.tags.items()),
                 r.data.metrics, [(m.step, m.value) for m in client.get_metric_history(r.info.run_id, "fitness")])
                for r in runs]

    writer.write(batch, experiment)
    first = state()
    assert [s[2] for s in first] == [[("heads", "2"), ("ticks", str(i))] for i in range(3)]
    assert [s[4]["fitness"] for s in first] == pytest.approx([0.6, 0.7, 0.8])  # the latest is step 1's
    assert all(len(s[5]) == 2 for s in first)
    again = [RunWrite(run_id=w.run_id, new=False, run_name=w.run_name, start_ms=w.start_ms, end_ms=w.end_ms,
                      status=w.status, tags=w.tags, metrics=w.metrics) for w in batch]
    writer.write(again, experiment)  # the same values sent again (a re-sent update): nothing doubles
    assert state() == first
    update = RunWrite(run_id=ids[0], new=False, run_name="r0", start_ms=1000, end_ms=3000, status="FAILED",
                      tags={"ctmevo.cell": "moved"}, metrics=[Metric("fitness", 0.1, 5, 0)])  # an older step
    writer.write([update], experiment)
    after = client.get_run(ids[0])
    assert after.info.status == "FAILED" and after.data.tags["ctmevo.cell"] == "moved"
    assert after.data.metrics["fitness"] == pytest.approx(0.6)  # step 1 stays the latest
    writer.write([RunWrite(run_id=ids[0], new=False, run_name="r0", start_ms=1000, end_ms=4000,
                           status="FINISHED", tags={}, metrics=[Metric("fitness", 0.9, 12, 2)])], experiment)
    assert client.get_run(ids[0]).data.metrics["fitness"] == pytest.approx(0.9)
    assert state()[1:] == first[1:]  # the other runs untouched


def test_the_sql_writer_keeps_its_contract_on_sqlite(tmp_path: Path) -> None:
    sql_writer_contract(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "artifacts")

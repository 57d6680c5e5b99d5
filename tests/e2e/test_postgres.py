"""MLflow on a real database, the way a cluster runs it: ``mlflow server`` backed by PostgreSQL on loopback, a
campaign with fidelity rungs and repeats talking HTTP to it; and ctmevo's own batched SQL writer straight into the
database (``tracking.uri: postgresql://…``, what ``benchmarks/campaign_scale.py --postgres`` measures).

Needs Debian's ``postgresql`` package and the ``postgres`` extra (``pip install -e '.[postgres]'``: the psycopg
driver); ``.ci/run`` installs both, and without them the test is skipped and says so.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from search.campaign import start
from search.export import locate
from search.records import standings
from tests.e2e.postgres import Postgres, postgres_binaries
from tests.search.mlflow_helpers import MlflowServer
from tests.search.test_rungs import rung_campaign
from tests.search.test_tracking import sql_writer_contract

try:
    import psycopg  # noqa: F401
    DRIVER = True
except ImportError:
    DRIVER = False

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.skipif(
    postgres_binaries() is None or not DRIVER, reason="PostgreSQL check skipped: needs Debian's postgresql "
    "(apt-get install -y postgresql) and the postgres extra (pip install -e '.[postgres]')")]


@pytest.fixture(scope="module")
def database() -> Iterator[Postgres]:
    pg = Postgres().start()
    try:
        yield pg
    finally:
        pg.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, database: Postgres) -> Iterator[MlflowServer]:
    mlflow = MlflowServer(tmp_path_factory.mktemp("pg") / "mlflow", backend=database.uri)
    try:
        yield mlflow.start(timeout=180)
    finally:
        mlflow.stop()


def test_the_sql_writer_keeps_its_contract_on_postgresql(tmp_path: Path, server: MlflowServer,
                                                        database: Postgres) -> None:
    sql_writer_contract(database.uri, tmp_path / "artifacts")  # the server made MLflow's tables


@pytest.mark.timeout(600)
def test_a_campaign_tracks_into_mlflow_on_postgresql_in_the_order_of_status(tmp_path: Path,
                                                                           server: MlflowServer) -> None:
    from mlflow import MlflowClient

    path = rung_campaign(tmp_path, "pgtour", evaluations=30)
    config = yaml.safe_load(path.read_text())
    config["tracking"] = {"uri": server.uri, "checkpoints": "elites"}
    path.write_text(yaml.safe_dump(config))
    campaign = start(path)
    campaign.run()
    order = [s.record.genome.hash for s in standings(campaign.records)]
    client = MlflowClient(server.uri)
    experiment = client.get_experiment_by_name("pgtour").experiment_id
    started = time.monotonic()
    runs = client.search_runs([experiment], "tags.`ctmevo.kind` = 'evaluation' and metrics.rank_score > -1",
                              order_by=["metrics.`rank_score` DESC"], max_results=100)  # the runs table's query
    print(f"runs-table query on PostgreSQL: {(time.monotonic() - started) * 1000:.0f} ms for {len(runs)} runs")
    assert [r.data.tags["ctmevo.genome_hash"] for r in runs] == order  # one run per genome, status's order
    all_runs = client.search_runs([experiment], "tags.`ctmevo.kind` = 'evaluation'", max_results=1000)
    assert len(all_runs) == len({r.genome.hash for r in campaign.records})
    found = locate(best=True, tracking_uri=server.uri)  # the genome and its curves from the detail file
    assert found.record.genome.hash == order[0] and found.record.result.per_tick_accuracy
    (campaign_run,) = client.search_runs([experiment], "tags.`ctmevo.kind` = 'campaign'")
    assert order[0][:12] in campaign_run.data.tags["mlflow.note.content"]

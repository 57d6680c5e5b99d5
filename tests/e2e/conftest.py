"""A finished small campaign on a real ``mlflow server`` (loopback), shared by the REST and browser checks.

The campaign is real: ``ctm.evaluate`` trains tiny CTMs (parity of length 4, 3 steps each), MAP-Elites makes
children of elites, every record is logged to the server. Then the family views are refreshed and logged to the
campaign run the way the campaign does it with its pictures (``refresh_family_views`` +
``Tracker.log_campaign_artifacts``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.e2e.webdriver import Session, find_browser
from tests.search.mlflow_helpers import MlflowServer
from tests.search.test_export import CONFIG

EVALUATIONS = 10
BROWSER = find_browser()  # None: the browser checks skip, saying so


@dataclass
class Finished:
    server: MlflowServer
    root: Path  # the campaign directory
    campaign_id: str
    experiment_id: str
    campaign_run_id: str
    run_ids: dict[str, str]  # genome hash -> evaluation run id
    records: list  # EvaluationRecord, journal order
    best: str  # genome hash of the best evaluation


@pytest.fixture(scope="session")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Finished]:
    import torch
    from mlflow import MlflowClient

    from search.campaign import Campaign, start
    from search.records import best_record

    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("e2e")
    server = MlflowServer(tmp / "server").start()
    try:
        config = {**CONFIG, "name": "tour", "output_dir": str(tmp / "tour"), "budget": {"evaluations": EVALUATIONS},
                  "tracking": {"uri": server.uri, "checkpoints": "elites"}}
        (tmp / "tour.yaml").write_text(yaml.safe_dump(config))
        start(tmp / "tour.yaml").run()  # the campaign writes its runs, notes and family tree itself
        c = Campaign.open(tmp / "tour")
        client = MlflowClient(server.uri)
        experiment_id = client.get_experiment_by_name("tour").experiment_id
        runs = client.search_runs([experiment_id], f"tags.`ctmevo.campaign` = '{c.campaign_id}'", max_results=1000)
        run_ids = {r.data.tags["ctmevo.genome_hash"]: r.info.run_id for r in runs
                   if r.data.tags.get("ctmevo.kind") == "evaluation"}
        (campaign_run,) = [r for r in runs if r.data.tags.get("ctmevo.kind") == "campaign"]
        best = best_record(c.records)
        assert best is not None and len(run_ids) == EVALUATIONS
        yield Finished(server=server, root=c.paths.root, campaign_id=c.campaign_id, experiment_id=str(experiment_id),
                       campaign_run_id=campaign_run.info.run_id, run_ids=run_ids, records=c.records,
                       best=best.genome.hash)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    assert BROWSER is not None
    session = Session(BROWSER, log=tmp_path_factory.mktemp("chromedriver") / "chromedriver.log")
    try:
        yield session
    finally:
        session.close()

"""A campaign against a real ``mlflow server`` on loopback that goes down and comes back mid-campaign."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from search.campaign import start
from tests.search.mlflow_helpers import MlflowServer
from tests.search.test_campaign import ROOT, campaign_file, child_runs, results_in

pytestmark = pytest.mark.slow


def test_server_outage_mid_campaign_loses_nothing_and_duplicates_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("CTMEVO_TEST_EVAL_SLEEP", "0.05")
    server = MlflowServer(tmp_path / "server").start()
    try:
        campaign = start(campaign_file(tmp_path, "remote", evaluations=16, tracking_uri=server.uri))
        events = {"stopped": False, "restarted": False}

        def outage(progress):
            if progress.done >= 4 and not events["stopped"]:
                server.stop()
                events["stopped"] = True
            elif progress.done >= 10 and not events["restarted"]:
                server.start()
                events["restarted"] = True

        campaign.run(on_progress=outage)
        assert events == {"stopped": True, "restarted": True}
        assert campaign.progress.done == 16 and len(results_in(campaign.paths.root)) == 16

        # Whatever MLflow lacks after the outage goes out with `ctmevo sync` (the campaign may already have sent it).
        sync = subprocess.run([sys.executable, "-m", "search.cli", "sync", str(campaign.paths.root)],
                              capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                              timeout=300)
        assert sync.returncode == 0, sync.stdout + sync.stderr
        assert "all 16 evaluation(s)" in sync.stdout

        hashes = sorted(r["record"]["result"]["genome_hash"] for r in results_in(campaign.paths.root))
        runs = child_runs(server.uri, campaign.campaign_id)
        assert sorted(r.data.tags["ctmevo.genome_hash"] for r in runs) == hashes  # all there, once each
    finally:
        server.stop()


@pytest.mark.parametrize("consumers", ["thread", "process"])
def test_an_unreachable_server_at_start_is_a_clear_error(tmp_path, consumers):
    path = campaign_file(tmp_path, "dead", evaluations=2, tracking_uri="http://127.0.0.1:9", consumers=consumers)
    out = subprocess.run([sys.executable, "-m", "search.cli", "run", str(path)], capture_output=True, text=True,
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert out.returncode == 2
    assert "http://127.0.0.1:9" in out.stderr and "--offline" in out.stderr and "Traceback" not in out.stderr
    assert results_in(tmp_path / "dead") == []

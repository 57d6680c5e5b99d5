"""How long the MLflow UI of a campaign takes to answer, and how big the store is per evaluation.

    python benchmarks/ui_start.py CAMPAIGN_DIR [--repeats 3]

For the campaign's own sqlite store (e.g. the quickstart's after ``make run``: ``campaigns/quickstart``) it
times, ``--repeats`` times each:

- ``ctmevo ui DIR``: from the command's start to the line saying the UI answers (a fresh Python process, as a
  user runs it: imports, store check, server start);
- plain ``mlflow ui --backend-store-uri … --port P`` (MLflow's defaults), until ``/health`` answers;
- with the ``ctmevo ui`` server up, the query behind the runs table: ``search_runs`` of the campaign's
  evaluations ordered by ``rank_score``, 100 results, over HTTP.

Then the store's size: the database and the artifact folder, per journal result and per run. Target (issue 27):
``ctmevo ui`` answers within 10 s on the quickstart's store.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/health", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def time_ctmevo_ui(directory: Path) -> tuple[float, str, subprocess.Popen]:
    """Seconds until ``ctmevo ui`` says the UI answers; its base URL; the running process (to stop)."""
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "search.cli", "ui", str(directory)], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None
    base = ""
    for line in proc.stdout:
        if m := re.search(r"on (http://127\.0\.0\.1:\d+)", line):
            base = m.group(1)
        if "answers after" in line:
            return time.monotonic() - started, base, proc
    raise RuntimeError(f"ctmevo ui ended without answering (exit {proc.wait()})")


def time_plain_mlflow_ui(store: str) -> float:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"}
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", store, "--host",
                             "127.0.0.1", "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        while not _answers(base):
            if proc.poll() is not None or time.monotonic() - started > 180:
                raise RuntimeError("mlflow ui did not answer")
            time.sleep(0.1)
        return time.monotonic() - started
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()


def runs_table_query(base: str, directory: Path) -> float:
    from mlflow import MlflowClient

    campaign_id = json.loads((directory / "campaign.json").read_text())["campaign_id"]
    client = MlflowClient(base)
    experiments = [e.experiment_id for e in client.search_experiments()]
    started = time.monotonic()
    client.search_runs(experiments, f"tags.`ctmevo.campaign` = '{campaign_id}' and tags.`ctmevo.kind` = "
                       "'evaluation'", order_by=["metrics.`rank_score` DESC"], max_results=100)
    return time.monotonic() - started


def store_size(directory: Path) -> None:
    db = directory / "mlflow.db"
    artifacts = directory / "mlartifacts"
    art = sum(p.stat().st_size for p in artifacts.rglob("*") if p.is_file()) if artifacts.exists() else 0
    assets = sum(p.stat().st_size for p in artifacts.rglob("plotly.min.mjs"))
    results = sum(1 for line in (directory / "journal.jsonl").read_text().splitlines() if '"event": "result"' in line
                  or '"event":"result"' in line)
    import sqlite3

    with sqlite3.connect(db) as c:
        runs = c.execute("select count(*) from tags where key = 'ctmevo.kind' and value = 'evaluation'").fetchone()[0]
    print(f"store: mlflow.db {db.stat().st_size / 1e6:.2f} MB, artifacts {art / 1e6:.2f} MB (of which plotly.js, "
          f"once per store: {assets / 1e6:.2f} MB); {results} results in {runs} evaluation runs: "
          f"{db.stat().st_size / max(1, results) / 1e3:.1f} KB of database per result")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("campaign", type=Path, help="a campaign directory with its own sqlite store")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    store = f"sqlite:///{(args.campaign / 'mlflow.db').resolve()}"
    ours, plain, queries = [], [], []
    for _ in range(args.repeats):
        seconds, base, proc = time_ctmevo_ui(args.campaign)
        try:
            queries.append(runs_table_query(base, args.campaign))
        finally:
            _stop(proc)
        ours.append(seconds)
        plain.append(time_plain_mlflow_ui(store))
    print(f"ctmevo ui answers after   {statistics.median(ours):5.1f} s (median of {args.repeats}: "
          + ", ".join(f"{s:.1f}" for s in ours) + ")   target <= 10 s")
    print(f"plain mlflow ui answers   {statistics.median(plain):5.1f} s (" + ", ".join(f"{s:.1f}" for s in plain)
          + ")")
    print(f"runs-table query (100 by rank_score, HTTP) {statistics.median(queries) * 1000:.0f} ms")
    store_size(args.campaign)


if __name__ == "__main__":
    main()

"""`ctmevo ui` in headless Chromium: the URL it prints opens the campaign's runs sorted with the best of
`ctmevo status` first, the campaign run's description names that best, an analysis page draws with the store's
shared plotly.js, the chart view shows ctmevo's charts (not one per metric), and the family tree's links follow
the non-default port the UI was started on.

The campaign (fidelity rungs and repeats, a fake evaluation) tracks into its own sqlite store, the default of a
new user; ``ctmevo ui`` starts the MLflow server for it on a free port and is stopped with Ctrl-C (SIGINT).
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from search.campaign import start
from search.cli.ui_command import answers
from search.records import standings
from tests.e2e.conftest import BROWSER
from tests.e2e.test_mlflow_ui import CLOSE_ASSISTANT, ROW_NAMES, SHOW_MORE
from tests.e2e.webdriver import Session
from tests.search.test_campaign import ROOT
from tests.search.test_rungs import rung_campaign

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.skipif(
    BROWSER is None, reason="browser check skipped: Chromium is not installed (apt-get install -y chromium "
    "chromium-driver, then make e2e)")]


def _read_urls(proc: subprocess.Popen, timeout: float = 90.0) -> dict[str, str]:
    """The `what  URL` lines `ctmevo ui` prints, until 'Ctrl-C stops it.' (read by a thread: no blocking)."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    urls, seen, deadline = {}, [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1.0)
        except queue.Empty:
            continue
        if line is None:
            break
        seen.append(line)
        if m := re.match(r"^\s+(.+?)\s{2,}(http://\S+)$", line):
            urls[m.group(1)] = m.group(2)
        if line.startswith("Ctrl-C stops it"):
            return urls
    raise AssertionError(f"ctmevo ui printed no URLs: {seen}")


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, dict[str, str], str]]:
    tmp = tmp_path_factory.mktemp("ui")
    campaign = start(rung_campaign(tmp, "uitour", evaluations=30))
    campaign.run()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "search.cli", "ui", str(campaign.paths.root)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        urls = _read_urls(proc)
        yield campaign, urls, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.terminate()  # never leave a server behind, even when the test failed
                proc.wait(timeout=30)


@pytest.mark.timeout(300)
def test_ctmevo_ui_opens_the_campaign_best_first_with_analysis_and_links_on_its_port(ui, browser: Session) -> None:
    campaign, urls, proc = ui
    shots = os.environ.get("CTMEVO_SCREENSHOTS")  # make e2e: the pictures of docs/mlflow.md
    order = [s.record.genome.hash for s in standings(campaign.records)]
    port = re.match(r"http://127\.0\.0\.1:(\d+)/", urls["evaluations, best first"]).group(1)
    assert port != "5000"

    # 1. the runs, sorted by rank_score: status's order, with rung and seeds columns
    browser.open(urls["evaluations, best first"])
    browser.wait_for(ROW_NAMES, what="run names in the list")
    browser.run(CLOSE_ASSISTANT)
    names = browser.run(ROW_NAMES)
    assert names[: min(5, len(order))] == order[:5], (names[:5], order[:5])
    headers = browser.run("return Array.from(document.querySelectorAll('[role=columnheader]')).map(h => h.innerText)")
    assert {"rank_score", "seeds", "rung"} <= {h.strip() for h in headers}, headers

    # 2. the campaign run's description: the best and how it was measured
    browser.open(urls["campaign run (its description)"])
    browser.wait_text("Best genome")
    text = browser.text()
    assert order[0][:12] in text and "Evaluations and runs" in text
    if shots:
        browser.run(SHOW_MORE)
        browser.screenshot(Path(shots) / "mlflow-campaign-run.png")

    # 3. an analysis page, drawn by the store's shared plotly.js inside MLflow's artifact viewer
    browser.open(urls["progress"])
    browser.wait_for("return document.querySelector('iframe.mlflow-html-iframe')", what="the artifact's frame")
    browser.frame("iframe.mlflow-html-iframe")
    try:
        browser.wait_for("return document.body.dataset.drawn === '2'", what="two plotly figures drawn")
        assert browser.run("return document.querySelectorAll('.js-plotly-plot').length") == 2
    finally:
        browser.frame(None)
    if shots:
        browser.run(CLOSE_ASSISTANT)
        browser.screenshot(Path(shots) / "mlflow-analysis.png")

    # 4. the family tree's run links point at this UI's port
    browser.open("about:blank")  # a full load: the same page at another #route keeps the old frame a while
    browser.open(urls["family tree"])
    browser.wait_for("return document.querySelector('iframe.mlflow-html-iframe')", what="the artifact's frame")
    browser.frame("iframe.mlflow-html-iframe")
    try:
        browser.wait_for("return document.querySelectorAll('a.node').length > 0", what="the tree's nodes")
        href = browser.run("return document.querySelector(`a.node[data-hash='${arguments[0]}']`).getAttribute('href')",
                           order[0])
    finally:
        browser.frame(None)
    assert href.startswith(f"http://127.0.0.1:{port}/#/experiments/"), href
    browser.open("about:blank")
    browser.open(href)
    browser.wait_text(f"Genome {order[0]}")

    # 5. the chart view: ctmevo's few charts, not one bar chart per logged metric
    browser.open("about:blank")
    browser.open(urls["evaluations, best first"])
    browser.wait_for(ROW_NAMES, what="run names in the list")
    browser.run("document.querySelector('input[name=runs-view-mode][value=CHART]').click()")
    browser.wait_text("ctmevo: what to look at")
    text = browser.text()
    assert re.search(r"ctmevo: what to look at\s*\(4\)", text) and re.search(r"Model metrics\s*\(0\)", text)
    assert "gene.ticks" not in text
    if shots:
        browser.screenshot(Path(shots) / "mlflow-chart-view.png")

    # 6. Ctrl-C stops the UI and its server
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    assert not answers(f"http://127.0.0.1:{port}")

"""The MLflow UI as a researcher sees it, in headless Chromium: the run list, a run's parent links, the family tree.

Needs Debian's ``chromium`` and ``chromium-driver`` (``apt-get install -y chromium chromium-driver``); without
them the test is skipped and says so. ``make e2e`` runs it and refreshes the screenshots in ``docs/img/``
(``CTMEVO_SCREENSHOTS`` names the folder; by default they go to the test's temporary folder).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import search.tracking.notes as notes
from search.records import ranked
from tests.e2e.conftest import BROWSER, EVALUATIONS, Finished
from tests.e2e.webdriver import Session

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.skipif(
    BROWSER is None, reason="browser check skipped: Chromium is not installed (apt-get install -y chromium "
    "chromium-driver, then make e2e)")]

CLOSE_ASSISTANT = """let closed = false;
for (const b of document.querySelectorAll('button[aria-label="Close"], button[aria-label="Hide banner"]')) {
  let box = b; for (let i = 0; i < 6 && box; i++) box = box.parentElement;
  if (b.getAttribute('aria-label') === 'Hide banner' || (box && box.innerText.includes('Assistant'))) {
    b.click(); closed = true; }
}
return closed;"""
ROW_NAMES = """return Array.from(document.querySelectorAll('a')).map(a => a.innerText.trim())
  .filter(t => /^[0-9a-f]{16}$/.test(t));"""
NOTE_LINKS = """return Array.from(document.querySelectorAll('a[href*="/runs/"]')).map(a => a.getAttribute('href'));"""
SHOW_MORE = """const b = Array.from(document.querySelectorAll('button')).find(b => b.innerText.trim() === 'Show more');
if (b) b.click(); return !!b;"""
SCROLL_TO = """const el = Array.from(document.querySelectorAll('strong'))
  .find(e => e.textContent.startsWith(arguments[0]));
if (el) el.scrollIntoView({block: 'center'});
return !!el;"""


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("CTMEVO_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.timeout(240)
def test_the_ui_walks_from_the_best_genome_to_its_parents_and_the_family_tree(finished: Finished, browser: Session,
                                                                              shots: Path) -> None:
    base, exp = finished.server.uri, finished.experiment_id
    best_run = finished.run_ids[finished.best]
    # 1. the printed URL opens the campaign's evaluations (not the GenAI overview), best first
    browser.open(notes.experiment_url(base, exp, finished.campaign_id))
    browser.wait_text(f"{EVALUATIONS} matching runs")
    browser.wait_for(ROW_NAMES, what="run names in the list")
    browser.run(CLOSE_ASSISTANT)
    names = browser.run(ROW_NAMES)
    assert names[0] == finished.best and len(set(names)) == EVALUATIONS  # best first, as ctmevo status says
    headers = browser.run("return Array.from(document.querySelectorAll('[role=columnheader]')).map(h => h.innerText)")
    assert {"fitness", "generation", "birth"} <= set(headers), headers  # the view's columns, not 117 to pick
    assert "Traces" not in browser.run("return document.querySelector('main') ? "
                                       "document.querySelector('main').innerText : ''")
    browser.screenshot(shots / "mlflow-runs.png")

    # 2. the best child's description links its parents' runs (and names the genes changed) ...
    record = ranked([r for r in finished.records if r.proposal.parents])[0]
    run_id = finished.run_ids[record.genome.hash]
    browser.open(notes.run_url(exp, run_id, base))
    browser.wait_text("Parents (")
    links = browser.run(NOTE_LINKS)
    parent_runs = [finished.run_ids[p] for p in record.proposal.parents]
    for parent in parent_runs:
        assert any(f"/runs/{parent}?" in href for href in links), (parent, links)
    browser.wait_for("return Array.from(document.querySelectorAll('a')).some(a => a.innerText.trim() === arguments[0])",
                     finished.campaign_id, what="the link to its campaign run (the page fully loaded)")
    browser.run(SHOW_MORE)
    assert browser.run(SCROLL_TO, f"Genome {record.genome.hash}")  # the description, in view
    browser.screenshot(shots / "mlflow-run-note.png")

    # ... and back: its parent's description links it among the parent's children
    browser.open(notes.run_url(exp, parent_runs[0], base))
    browser.wait_text("Children (")
    assert any(f"/runs/{run_id}?" in href for href in browser.run(NOTE_LINKS))

    # 3. the family tree, an artifact of the campaign run, drawn in MLflow's artifact viewer
    browser.open(f"{base}/#/experiments/{exp}/runs/{finished.campaign_run_id}/artifacts/family_tree.html"
                 "?workflowType=machine_learning")
    browser.wait_for("return document.querySelector('iframe.mlflow-html-iframe')", what="the artifact's frame")
    browser.run(CLOSE_ASSISTANT)
    browser.frame("iframe.mlflow-html-iframe")
    try:
        browser.wait_for("return document.querySelectorAll('a.node').length === arguments[0]", EVALUATIONS,
                         what="one node per evaluation")
        href = browser.run("return document.querySelector(`a.node[data-hash='${arguments[0]}']`).getAttribute('href')",
                           finished.best)
        assert href == notes.run_url(exp, best_run, base)  # the frame's own server, not a guessed address
        assert best_run in browser.run("return document.getElementById('panel').innerText")  # selected first
        browser.run("document.getElementById('fop').value = 'sample'; document.getElementById('fop').onchange();")
        founders = sum(1 for r in finished.records if not r.proposal.parents)
        assert browser.run("return document.getElementById('count').innerText") == f"{founders} of {EVALUATIONS} shown"
        browser.run("document.getElementById('fop').value = ''; document.getElementById('fop').onchange();")
    finally:
        browser.frame(None)
    browser.screenshot(shots / "mlflow-family-tree.png")

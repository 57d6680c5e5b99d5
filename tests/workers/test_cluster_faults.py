"""Faults of a real cluster: a node dies, the head dies (driver disconnect), a pool-owned local cluster.

Each test starts its own Ray nodes with ``ray start`` on loopback addresses (``loopback_cluster``) and drives
them from a subprocess (``cluster_driver.py``), so the session's shared cluster is never involved. Only the
processes these tests started are killed.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


def finish(driver: subprocess.Popen[str], out: Path, timeout_s: float = 120) -> dict[str, Any]:
    try:
        log, _ = driver.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        driver.kill()
        log, _ = driver.communicate()
        pytest.fail(f"driver did not finish in {timeout_s} s:\n{log[-4000:]}")
    assert driver.returncode == 0 and out.exists(), f"driver failed ({driver.returncode}):\n{log[-4000:]}"
    return json.loads(out.read_text())


def test_node_death_retries_elsewhere_and_the_campaign_goes_on(
        loopback_cluster: Any, run_driver: Callable[..., subprocess.Popen[str]],
        wait_for_reports: Callable[..., list[dict[str, Any]]], tmp_path: Path) -> None:
    address = loopback_cluster.start_head("127.0.0.2", num_cpus=1)
    loopback_cluster.add_node("127.0.0.3", num_cpus=1)
    reports, out = tmp_path / "reports", tmp_path / "out.json"
    reports.mkdir()
    driver = run_driver("node_death", "--address", address, "--report-dir", str(reports), "--out", str(out))
    try:
        started = wait_for_reports(reports, 2, timeout_s=90)
    except TimeoutError:
        driver.kill()
        pytest.fail(f"jobs did not start: {driver.communicate()[0][-4000:]}\n{loopback_cluster.log('127.0.0.3')}")
    assert {r["node_ip"] for r in started} == {"127.0.0.2", "127.0.0.3"}  # one job on each node
    victim = next(r for r in started if r["node_ip"] == "127.0.0.3")
    killed = loopback_cluster.kill("127.0.0.3")
    assert victim["pid"] in killed  # the evaluation's worker process was part of the node we started
    outcome = finish(driver, out)
    results = {r["genome_hash"]: r for r in outcome["results"]}
    assert len(results) == 3 and all(r["status"] == "ok" for r in results.values()), results
    moved = results[victim["genome_hash"]]
    assert moved["attempts"] == 2 and moved["worker"].startswith("127.0.0.2:")
    stayed = next(r for h, r in results.items() if h not in (victim["genome_hash"], outcome["after"]))
    assert stayed["attempts"] == 1
    assert outcome["free_slots_after"] == 1  # the pool noticed the cluster shrank to one CPU


def test_driver_disconnect_raises_pool_disconnected(
        loopback_cluster: Any, run_driver: Callable[..., subprocess.Popen[str]],
        wait_for_reports: Callable[..., list[dict[str, Any]]], tmp_path: Path) -> None:
    address = loopback_cluster.start_head("127.0.0.2", num_cpus=1)
    reports, out = tmp_path / "reports", tmp_path / "out.json"
    reports.mkdir()
    driver = run_driver("disconnect", "--address", address, "--report-dir", str(reports), "--out", str(out))
    try:
        wait_for_reports(reports, 1, timeout_s=90)
    except TimeoutError:
        driver.kill()
        pytest.fail(f"job did not start: {driver.communicate()[0][-4000:]}")
    loopback_cluster.kill("127.0.0.2")
    killed_at = time.time()
    outcome = finish(driver, out)
    print("disconnect detected after", outcome["raised_at"] - killed_at, "s; shutdown took", outcome["shutdown_s"])
    assert outcome["disconnected"], outcome
    assert outcome["in_flight"] == [outcome["job"]] and "resubmit them on resume" in outcome["message"]
    assert outcome["raised_at"] - killed_at < 30  # well before Ray's own 60 s limit ends the process
    assert outcome["raises_again"] and outcome["shutdown_s"] < 10
    assert outcome["shutdown_ids"] == [outcome["job"]]


def test_own_local_cluster_shipped_code_and_memory_aware_gpu_shares(
        run_driver: Callable[..., subprocess.Popen[str]], tmp_path: Path,
        wait_for_reports: Callable[..., list[dict[str, Any]]]) -> None:
    reports, out = tmp_path / "reports", tmp_path / "out.json"
    reports.mkdir()
    outcome = finish(run_driver("local", "--report-dir", str(reports), "--out", str(out)), out)
    assert outcome["started"] and outcome["stopped"]
    assert outcome["free_slots"] == 4  # one GPU in quarter-GPU evaluations before any job was sized
    assert outcome["shares"] == {"small": 0.125, "large": 1.0}
    assert [r["status"] for r in outcome["results"]] == ["ok"] * 4
    large = next(r for r in outcome["results"] if r["genome_hash"] == outcome["large"])
    assert large["attempts"] == 2 and large["metrics"]["batch_size"] == 256
    import workers.testing

    for report in wait_for_reports(reports, 3):  # the workers ran the shipped copy, not this checkout
        assert report["module"] != workers.testing.__file__ and "runtime_resources" in report["module"]
        assert report["device"] == "cuda"  # Ray gave the evaluation (its share of) a GPU


def test_promoted_evaluations_continue_on_any_node_of_a_two_node_cluster(
        loopback_cluster: Any, run_driver: Callable[..., subprocess.Popen[str]], tmp_path: Path) -> None:
    address = loopback_cluster.start_head("127.0.0.2", num_cpus=0)  # the driver's node runs no evaluation
    loopback_cluster.add_node("127.0.0.3", num_cpus=1)
    loopback_cluster.add_node("127.0.0.4", num_cpus=1)
    out = tmp_path / "out.json"
    driver = run_driver("rungs", "--address", address, "--report-dir", str(tmp_path), "--out", str(out))
    results = finish(driver, out, timeout_s=240)["results"]
    assert len(results) == 24 and all(r["status"] == "ok" for r in results), results  # a wrong start: error
    by = {(r["hash"], r["rung"]): r for r in results}
    promoted = [r for r in results if r["rung"] == 1]
    assert promoted and all(r["start_step"] == 100 for r in promoted)  # continued from the rung-0 state
    assert {r["worker"].split(":")[0] for r in results} == {"127.0.0.3", "127.0.0.4"}  # both worker nodes
    moved = [r for r in promoted if r["worker"].split(":")[0] != by[(r["hash"], 0)]["worker"].split(":")[0]]
    print(f"{len(moved)} of {len(promoted)} promotions ran on another node than their rung-0 evaluation")
    assert moved  # the training state travelled with the job (Ray's object store), not through a local file


def test_children_inherit_their_parents_weights_across_a_two_node_cluster(
        loopback_cluster: Any, run_driver: Callable[..., subprocess.Popen[str]], tmp_path: Path) -> None:
    address = loopback_cluster.start_head("127.0.0.2", num_cpus=0)  # the driver's node runs no evaluation
    loopback_cluster.add_node("127.0.0.3", num_cpus=1)
    loopback_cluster.add_node("127.0.0.4", num_cpus=1)
    out = tmp_path / "out.json"
    driver = run_driver("inherit", "--address", address, "--report-dir", str(tmp_path), "--out", str(out))
    results = finish(driver, out, timeout_s=300)["results"]
    assert len(results) == 20 and all(r["status"] == "ok" for r in results), results  # real CTM training
    children = [r for r in results if r["parent"]]
    assert len(children) >= 4
    for r in children:
        assert 0 < r["metrics"]["inherited_fraction"] <= 1 and r["metrics"]["parent_steps"] in (20, 60)
        assert r["inherited"] == f"inherited: {r['metrics']['inherited_fraction']:.2f} of parameters from {r['parent']}"
    node = {r["hash"]: r["worker"].split(":")[0] for r in results if r["rung"] == 0}
    assert set(node.values()) == {"127.0.0.3", "127.0.0.4"}
    moved = [r for r in children if r["worker"].split(":")[0] != node[r["parent"]]]
    fractions = sorted(round(r["metrics"]["inherited_fraction"], 2) for r in children)
    print(f"{len(children)} children inherited (fractions {fractions}); {len(moved)} ran on another node than "
          "their parent")
    assert moved  # the parent's weights travelled with the job, not through a node's local disk

"""Requests no node can hold: refused at start (config alone, or the cluster's nodes), or waited for on an
autoscaling cluster; and cluster addresses where nothing answers."""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

import pytest

from workers import ClusterUnreachable, UnsatisfiableRequest, WorkersConfig, WorkersConfigError
from workers.feasibility import check_request, evaluation_request
from workers.reach import address_problem, host_port

FAKE_FN = "workers.testing:fake_evaluate"
CPU4 = {"CPU": 4.0, "memory": 8e9, "node:10.0.0.1": 1.0}
GPU_NODE = {"CPU": 2.0, "GPU": 1.0}


def test_the_config_alone_rejects_a_local_cluster_too_small_for_one_evaluation() -> None:
    with pytest.raises(WorkersConfigError, match=r"workers\.cpus_per_eval = 1\.0: allowed is at most num_cpus = 0"):
        WorkersConfig(num_cpus=0)
    with pytest.raises(WorkersConfigError, match=r"workers\.cpus_per_eval = 3: allowed is at most num_cpus = 2"):
        WorkersConfig(num_cpus=2, cpus_per_eval=3)
    with pytest.raises(WorkersConfigError, match=r"workers\.gpus_per_eval = 2: allowed is at most num_gpus = 1"):
        WorkersConfig(num_gpus=1, gpus_per_eval=2)
    assert WorkersConfig(num_cpus=0, cpus_per_eval=0).num_cpus == 0  # zero-CPU evaluations fit anywhere
    assert WorkersConfig(backend="inline", num_cpus=0).num_cpus == 0  # the inline pool ignores num_cpus
    assert WorkersConfig(address="auto", num_cpus=0).num_cpus == 0  # ignored when joining a cluster


def test_a_pool_joining_a_dead_address_raises_cluster_unreachable_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    from workers.ray_pool import RayPool

    if ray.is_initialized():
        pytest.skip("Ray is initialised in this process (a pool would reuse it)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(ClusterUnreachable, match="connection refused"):
            RayPool(WorkersConfig(address=address, evaluate_fn=FAKE_FN))
        monkeypatch.setenv("RAY_ADDRESS", address)  # "auto" resolves to it, as to a stale ray_current_cluster
        with pytest.raises(ClusterUnreachable, match=f"'auto': connection refused on {address}"):
            RayPool(WorkersConfig(address="auto", evaluate_fn=FAKE_FN))
        assert time.monotonic() - started < 20


def test_a_request_one_node_holds_is_ok() -> None:
    assert check_request({"CPU": 4.0}, [CPU4], where="c").kind == "ok"
    assert check_request({"CPU": 1.0, "GPU": 1.0}, [CPU4, GPU_NODE], where="c").kind == "ok"
    assert check_request({}, [], where="c").kind == "ok"  # nothing reserved: runs anywhere


def test_a_request_no_node_holds_names_the_setting_the_request_and_the_nodes() -> None:
    verdict = check_request({"CPU": 8.0}, [CPU4, CPU4], where="the Ray cluster at h:6379")
    assert verdict.kind == "never"
    [(field, value, allowed)] = verdict.problems
    assert (field, value) == ("cpus_per_eval", 8.0)
    assert "at most 4" in allowed and "the Ray cluster at h:6379" in allowed and "2 × {CPU 4, GPU 0}" in allowed
    gpu = check_request({"CPU": 1.0, "GPU": 1.0}, [CPU4], where="c")
    assert gpu.kind == "never" and gpu.problems[0][0] == "gpus_per_eval"


def test_enough_of_each_resource_but_never_on_one_node_is_refused() -> None:
    verdict = check_request({"CPU": 4.0, "GPU": 1.0}, [CPU4, GPU_NODE], where="c")
    assert verdict.kind == "never" and "together" in verdict.problems[0][2]


def test_an_autoscaling_cluster_that_may_add_a_fitting_node_is_waited_for() -> None:
    verdict = check_request({"CPU": 8.0}, [CPU4], where="c", node_types=[{"CPU": 16.0}])
    assert verdict.kind == "wait" and "waiting for the autoscaler" in verdict.message and "CPU 8" in verdict.message
    never = check_request({"CPU": 64.0}, [CPU4], where="c", node_types=[{"CPU": 16.0}])
    assert never.kind == "never" and "at most 16" in never.problems[0][2]


def test_the_request_of_one_evaluation() -> None:
    assert evaluation_request(WorkersConfig(cpus_per_eval=2), cluster_gpus=0) == {"CPU": 2.0}
    assert evaluation_request(WorkersConfig(), cluster_gpus=2) == {"CPU": 1.0, "GPU": 1.0}
    assert evaluation_request(WorkersConfig(gpus_per_eval=0.25), cluster_gpus=0) == {"CPU": 1.0, "GPU": 0.25}
    aware = WorkersConfig(gpu_memory_aware=True, gpu_memory_gib=80, gpus_per_eval=0.125)
    assert evaluation_request(aware, cluster_gpus=1)["GPU"] == 1.0  # a large genome may need a whole GPU


def test_a_real_cluster_refuses_a_request_none_of_its_nodes_holds(ray_session: Any) -> None:
    from workers.ray_pool import RayPool

    with pytest.raises(UnsatisfiableRequest, match=r"workers\.cpus_per_eval = 64: allowed is at most 4"):
        RayPool(WorkersConfig(cpus_per_eval=64, evaluate_fn=FAKE_FN))
    RayPool(WorkersConfig(cpus_per_eval=1, evaluate_fn=FAKE_FN)).shutdown()  # the shared cluster is still up


def test_a_real_cluster_that_autoscales_waits_with_a_status_line(ray_session: Any, monkeypatch: pytest.MonkeyPatch,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    import workers.ray_pool as ray_pool

    monkeypatch.setattr(ray_pool, "autoscaling_node_types", lambda: [{"CPU": 128.0}])  # as a cluster config says
    with caplog.at_level(logging.WARNING, logger="workers.ray_pool"):
        pool = ray_pool.RayPool(WorkersConfig(cpus_per_eval=64, evaluate_fn=FAKE_FN))
    try:
        assert pool.waiting_for and "waiting for the autoscaler" in pool.waiting_for
        assert "set workers.concurrency" in pool.waiting_for
        assert any("waiting for the autoscaler" in r.getMessage() for r in caplog.records)
        assert pool.free_slots == 0 and pool.poll(timeout=0.2) == []
    finally:
        pool.shutdown()


def test_an_address_where_nothing_listens_is_named_in_seconds() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        started = time.monotonic()
        assert "connection refused" in (address_problem(f"127.0.0.1:{port}") or "")
        assert time.monotonic() - started < 5
    assert host_port("ray://head:10001") == ("head", 10001) and host_port("auto") is None
    assert host_port("[::1]:6379") == ("::1", 6379)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert address_problem(f"127.0.0.1:{server.getsockname()[1]}") is None

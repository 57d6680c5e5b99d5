"""Suite-wide test setup: environment, thread limits and one shared Ray cluster.

Environment (set when pytest loads this file, before any test imports ray or torch, and inherited by the Ray
worker processes that tests start):

- ``RAY_AUTH_MODE=disabled``, ``RAY_USAGE_STATS_ENABLED=0``; ``RAY_ADDRESS`` is removed so that no test joins
  a cluster someone else started on this machine.
- ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS`` = 1 (torch reads them when imported):
  the suite runs on a small shared machine.
- SIGINT caught, not ignored: a suite started as a shell's background job inherits SIGINT ignored, and so would
  every process it starts; the tests of Ctrl-C need their processes to see it as a terminal sends it.

Fixtures:

- ``ray_session`` (session scope): a local Ray cluster with :data:`RAY_TEST_CPUS` logical CPUs, no GPUs and no
  dashboard, started on first use and stopped at the end of the session. Request it in any test that needs
  Ray, e.g. ``def test_x(ray_session): pool = RayPool(WorkersConfig(...))``: a ``RayPool`` built while Ray is
  initialised reuses that connection and leaves it open. Do not call ``ray.init``/``ray.shutdown`` in
  tests; tests that need a cluster of their own (several nodes, a cluster to kill) start it with
  ``ray start`` in separate processes and drive it from a subprocess (see ``tests/workers/conftest.py``).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest

if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # a handler is reset to the default in a child, SIG_IGN is not
    signal.signal(signal.SIGINT, signal.default_int_handler)

os.environ["RAY_AUTH_MODE"] = "disabled"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ.pop("RAY_ADDRESS", None)
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

RAY_TEST_CPUS = 4  # logical CPUs of the shared test cluster (fake evaluations sleep; they do not use a core)
RAY_TEST_OBJECT_STORE_BYTES = 256 * 2**20


@pytest.fixture(scope="session")
def ray_session() -> Iterator[Any]:
    """A local Ray cluster shared by every test of the session; yields ``ray.init``'s context."""
    ray = pytest.importorskip("ray")
    if ray.is_initialized():  # someone else's fixture or conftest already started one: share it
        yield ray.get_runtime_context()
        return
    context = ray.init(address="local", num_cpus=RAY_TEST_CPUS, num_gpus=0, include_dashboard=False,
                       object_store_memory=RAY_TEST_OBJECT_STORE_BYTES, configure_logging=False)
    try:
        yield context
    finally:
        ray.shutdown()

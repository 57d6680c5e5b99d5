"""WorkersConfig validation: every bad field is named with its value and what is allowed."""

from __future__ import annotations

import pytest

from workers import WorkersConfig, WorkersConfigError


def test_defaults_are_valid_and_round_trip() -> None:
    config = WorkersConfig()
    assert config.backend == "ray" and config.evaluate_fn == "ctm:evaluate"
    assert WorkersConfig.from_dict(config.to_dict()) == config
    assert WorkersConfig.from_dict(None) == config


@pytest.mark.parametrize(("field", "value", "allowed"), [
    ("backend", "dask", "one of ['ray', 'inline', 'simulated']"),
    ("cpus_per_eval", -1, "a number >= 0"),
    ("gpus_per_eval", 1.5, "a fraction in (0, 1] or a whole number"),
    ("gpus_per_eval", float("nan"), "a fraction in (0, 1] or a whole number"),
    ("concurrency", 0, "a whole number >= 1"),
    ("num_cpus", 2.5, "a whole number >= 0"),
    ("timeout_s", 0, "a number of seconds > 0"),
    ("max_retries", -1, "a whole number >= 0"),
    ("max_retries", True, "a whole number >= 0"),
    ("evaluate_fn", "ctm.evaluate", '"package.module:function"'),
    ("runtime_env", "working_dir", "a mapping"),
    ("address", "", '"auto", "host:port" or "ray://host:port"'),
    ("disconnect_after_s", -3, "a number of seconds > 0"),
])
def test_invalid_field_is_named_with_value_and_allowed(field: str, value: object, allowed: str) -> None:
    with pytest.raises(WorkersConfigError) as info:
        WorkersConfig(**{field: value})
    message = str(info.value)
    assert f"workers.{field} = {value!r}" in message and allowed in message
    assert [p[0] for p in info.value.problems] == [field]


def test_memory_aware_needs_gpu_memory() -> None:
    with pytest.raises(WorkersConfigError, match=r"workers\.gpu_memory_gib = None.*gpu_memory_aware"):
        WorkersConfig(gpu_memory_aware=True)
    assert WorkersConfig(gpu_memory_aware=True, gpu_memory_gib=80).gpu_memory_gib == 80


def test_all_problems_reported_at_once_and_unknown_keys_rejected() -> None:
    with pytest.raises(WorkersConfigError) as info:
        WorkersConfig(backend="x", max_retries=-2)
    assert [p[0] for p in info.value.problems] == ["backend", "max_retries"]
    with pytest.raises(WorkersConfigError, match=r"workers\.num_gpu = 1: allowed is a known key"):
        WorkersConfig.from_dict({"num_gpu": 1})


def test_fractional_and_whole_gpu_shares_accepted() -> None:
    assert WorkersConfig(gpus_per_eval=0.25).gpus_per_eval == 0.25
    assert WorkersConfig(gpus_per_eval=2).gpus_per_eval == 2
    assert WorkersConfig(address="ray://head:10001").address == "ray://head:10001"

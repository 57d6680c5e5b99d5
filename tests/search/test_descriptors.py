"""Descriptors: built-ins, genes, user-defined module:function, and start-up errors naming the YAML field."""

from __future__ import annotations

import math

import pytest

from ctm.result import EvalResult
from genome import Genome, GenomeSpace
from search.descriptors import (
    BUILTINS,
    DescriptorError,
    DescriptorValueError,
    describe,
    make_descriptors,
)
from tests.search import landscapes as L

SPACE = L.space()
GENOME = Genome(ticks=40, memory_length=8, d_model=512, d_input=64, heads=1, sync_select="random",
                n_sync_action=0, decay_init="spread")
RESULT = EvalResult(genome_hash=GENOME.hash, fitness=0.9, metrics={
    "param_count": 12_345.0, "macs_per_forward": 1e7, "exit_tick_mean": 10.0, "ece": 0.07, "b0": 0.3, "b1": 0.6})


def test_builtins_compute_from_genome_and_result() -> None:
    ds = make_descriptors(["ticks", "memory_length", "param_count", "macs_per_forward", "exit_tick",
                           "exit_tick_mean", "ece"], space=SPACE)
    values = dict(zip([d.name for d in ds], describe(ds, GENOME, RESULT), strict=True))
    assert values == pytest.approx({"ticks": 40, "memory_length": 8, "param_count": math.log10(12_345),
                                    "macs_per_forward": 7.0, "exit_tick": 0.25, "exit_tick_mean": 10.0,
                                    "ece": 0.07})
    by_name = {d.name: d for d in ds}
    assert by_name["ticks"].range == (1, 100) and by_name["ticks"].genome_only
    assert by_name["exit_tick"].range == (0.0, 1.0) and not by_name["exit_tick"].genome_only
    assert by_name["exit_tick_mean"].range == (0.0, 100.0)  # up to the space's largest ticks
    assert set(BUILTINS) <= {d.name for d in ds}
    assert all(d.label for d in ds)


def test_gene_descriptors_follow_the_space_and_the_gene_scale() -> None:
    narrow = GenomeSpace.from_config({"ticks": {"min": 5, "max": 20}})
    ticks, d_model, select, action = make_descriptors(
        ["ticks", "d_model", {"name": "decay_init", "label": "decay"}, "n_sync_action"], space=narrow)
    assert ticks.range == (5, 20) and ticks.bins == 10 and ticks.distinct == 16
    assert d_model.range == (5.0, 10.0) and d_model(GENOME, None) == 9.0  # log2, genome only
    assert select.range == (-0.5, 2.5) and select.bins == 3 and select(GENOME, None) == 1.0
    assert select.label == "decay"
    assert action.range == (0.0, math.log2(257)) and action(GENOME, None) == 0.0  # log2(1 + n), domain from 0


def test_user_defined_descriptor_and_custom_range_and_bins() -> None:
    (d,) = make_descriptors([{"name": "tests.search.landscapes:b1", "range": [0, 2], "bins": 4}])
    assert (d.range, d.bins, d.label) == ((0.0, 2.0), 4, "b1") and d(GENOME, RESULT) == 0.6
    assert d.normalise(0.6) == pytest.approx(0.3) and d.normalise(5) == 1.0
    assert d.to_config() == {"name": "tests.search.landscapes:b1", "bins": 4, "range": [0.0, 2.0]}
    assert make_descriptors(None) == [] and make_descriptors([]) == []


@pytest.mark.parametrize(("config", "field", "allowed"), [
    (["tickz"], "descriptors[0].name", "one of ['param_count'"),
    ([{"name": "ticks", "bins": 0}], "descriptors[0].bins", "a positive integer"),
    ([{"name": "ticks", "bins": True}], "descriptors[0].bins", "a positive integer"),
    ([{"name": "memory_length", "bins": 60}], "descriptors[0].bins", "at most 50"),
    ([{"name": "nlm_depth", "bins": 3}], "descriptors[0].bins", "at most 2"),
    ([{"name": "ece", "range": [0, 2]}], "descriptors[0].range", "[0, 1]"),
    ([{"name": "ticks", "range": [0, 50]}], "descriptors[0].range", "[1, 1000]"),
    ([{"name": "ece", "range": [0.5, 0.5]}], "descriptors[0].range", "low < high"),
    ([{"name": "ece", "range": "0-1"}], "descriptors[0].range", "[low, high]"),
    (["ticks", {"name": "ece", "bin": 4}], "descriptors[1].bin", "one of the keys"),
    (["ticks", "ticks"], "descriptors[1].name", "not already listed"),
    (["tests.search.landscapes:b0"], "descriptors[0].range", "must declare its range"),
    ([{"name": "no_such_module_xyz:f", "range": [0, 1]}], "descriptors[0].name", "ModuleNotFoundError"),
    ([{"name": "tests.search.landscapes:nope", "range": [0, 1]}], "descriptors[0].name", "has no attribute"),
    ([{"name": "tests.search.landscapes:NOT_CALLABLE", "range": [0, 1]}], "descriptors[0].name", "not callable"),
    ([{"name": "tests.search.landscapes:", "range": [0, 1]}], "descriptors[0].name", "module:function"),
    ([{"bins": 3}], "descriptors[0].name", "one of"),
    ([42], "descriptors[0]", "a descriptor name or a mapping"),
    ("ticks", "descriptors", "a list of descriptors"),
])
def test_bad_descriptors_name_the_field(config: object, field: str, allowed: str) -> None:
    with pytest.raises(DescriptorError) as info:
        make_descriptors(config, space=SPACE)
    message = str(info.value)
    assert info.value.field == field and message.startswith(f"{field} = "), message
    assert allowed in message, message
    assert isinstance(info.value, ValueError)


def test_the_field_prefix_follows_the_caller() -> None:
    with pytest.raises(DescriptorError, match=r"^campaign\.descriptors\[0\]\.bins = -2"):
        make_descriptors([{"name": "ece", "bins": -2}], field="campaign.descriptors")


def test_values_that_cannot_be_computed_raise_a_clear_error() -> None:
    ece, user = make_descriptors(["ece", {"name": "tests.search.landscapes:b0", "range": [0, 1]}])
    bare = EvalResult(genome_hash=GENOME.hash, fitness=0.5)
    with pytest.raises(DescriptorValueError, match=r"needs result.metrics\['ece'\]"):
        ece(GENOME, bare)
    with pytest.raises(DescriptorValueError, match="KeyError"):
        user(GENOME, bare)
    with pytest.raises(DescriptorValueError, match="needs an evaluation result"):
        ece(GENOME, None)
    nan = EvalResult(genome_hash=GENOME.hash, fitness=0.5, metrics={"ece": float("nan")})
    with pytest.raises(DescriptorValueError, match="not a finite number"):
        ece(GENOME, nan)

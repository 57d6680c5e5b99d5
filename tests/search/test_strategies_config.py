"""Bad strategy input fails at start-up with an error naming the YAML field, the value and what is allowed."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from search.descriptors import DescriptorError, make_descriptors
from search.errors import ConfigError, FieldError, SearchError
from search.strategies import STRATEGY_NAMES, StrategyConfigError, make_strategy, strategy_settings
from tests.search import landscapes as L

SPACE = L.space()
DESCRIPTORS = make_descriptors(L.DESCRIPTORS, space=SPACE)


def _error(name: str, settings: object = None, descriptors: list | None = None, **kw: object) -> str:
    with pytest.raises(StrategyConfigError) as info:
        make_strategy(name, space=SPACE, seed=kw.pop("seed", 0), descriptors=DESCRIPTORS if descriptors is None
                      else descriptors, settings=settings, **kw)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError) and isinstance(info.value, FieldError)
    return str(info.value)


def test_one_hierarchy_of_user_facing_errors() -> None:
    for cls in (StrategyConfigError, DescriptorError):
        assert issubclass(cls, FieldError) and issubclass(cls, ConfigError) and issubclass(cls, SearchError)
    with pytest.raises(DescriptorError) as info:
        make_descriptors([{"name": "ticks", "bins": "x" * 10_000}], space=SPACE)
    assert info.value.field == "descriptors[0].bins" and len(str(info.value)) < 400  # the value is cut short


@pytest.mark.parametrize(("settings", "refused", "variation"), [
    ({"crossover_rate": 0.2}, "crossover_rate", "genetic"),
    ({"mutation_sigma": 0.2}, "mutation_sigma", "genetic"),
    ({"variation": "iso_line", "mutation_rate": 0.5}, "mutation_rate", "genetic"),
    ({"variation": "genetic", "iso_sigma": 0.2}, "iso_sigma", "iso_line"),
])
def test_a_setting_the_chosen_variation_ignores_is_refused(settings: dict, refused: str, variation: str) -> None:
    message = _error("map_elites", settings)
    assert message.startswith(f"strategy.settings.{refused} = ") and f"variation: {variation}" in message


def test_settings_of_the_chosen_variation_are_used() -> None:
    genetic = make_strategy("map_elites", space=SPACE, seed=0, descriptors=DESCRIPTORS,
                            settings={"variation": "genetic", "crossover_rate": 1.0, "initial_samples": 8})
    assert genetic.settings["crossover_rate"] == 1.0
    for proposal in genetic.ask(8):
        genetic.tell(L.Landscape().evaluate(proposal.genome))
    assert len(genetic.qd.elite_indices()) >= 2  # two elites to cross
    children = genetic.ask(12)
    assert {p.operator for p in children} <= {"crossover", "mutation", "sample"}
    assert any(p.operator == "crossover" for p in children)


@pytest.mark.parametrize(("name", "settings", "field", "allowed"), [
    ("map_elites", {"batch_size": 8}, "strategy.settings.batch_size", "a known setting: one of"),
    ("map_elites", {"initial_samples": 0}, "strategy.settings.initial_samples", "an integer >= 1"),
    ("map_elites", {"initial_samples": 2.5}, "strategy.settings.initial_samples", "an integer"),
    ("map_elites", {"crossover_rate": 1.5}, "strategy.settings.crossover_rate", "<= 1"),
    ("map_elites", {"variation": "sbx"}, "strategy.settings.variation", "one of ['iso_line', 'genetic']"),
    ("map_elites", {"mutation_rate": 0}, "strategy.settings.mutation_rate", "> 0"),
    ("map_elites", {"qd_offset": "low"}, "strategy.settings.qd_offset", "a number"),
    ("cvt_map_elites", {"cells": 500, "cvt_samples": 200}, "strategy.settings.cvt_samples", "at least cells"),
    ("regularized_evolution", {"population_size": 4, "sample_size": 9}, "strategy.settings.sample_size",
     "at most population_size = 4"),
    ("novelty", {"threshold_lower": 1.0}, "strategy.settings.threshold_lower", "< 1"),
    ("novelty", {"behaviour": "genes"}, "strategy.settings.behaviour", "one of ['result', 'descriptors']"),
    ("nslc", {"k": True}, "strategy.settings.k", "an integer"),
    ("optuna_tpe", {"constant_liar": "yes"}, "strategy.settings.constant_liar", "a bool"),
    ("optuna_nsga2", {"directions": ["maximize"]}, "strategy.settings.directions", "one direction per objective"),
    ("optuna_nsga2", {"directions": ["up", "down"]}, "strategy.settings.directions", "from ['maximize'"),
    ("evotorch_cmaes", {"stdev_init": 0}, "strategy.settings.stdev_init", "> 0"),
    ("evotorch_ga", {"popsize": 1}, "strategy.settings.popsize", ">= 2"),
])
def test_bad_settings_name_the_field_value_and_allowed(name: str, settings: dict, field: str, allowed: str) -> None:
    message = _error(name, settings)
    key = field.rsplit(".", 1)[1]
    assert message.startswith(f"{field} = {settings[key]!r}"), message
    assert allowed in message, message


def test_unknown_strategy_names_every_known_one() -> None:
    message = _error("map_elitez")
    assert message.startswith("strategy.name = 'map_elitez'")
    assert all(n in message for n in STRATEGY_NAMES)


def test_the_field_prefix_follows_the_caller() -> None:
    with pytest.raises(StrategyConfigError, match=r"^campaigns\[2\]\.strategy\.settings\.k = -1"):
        make_strategy("novelty", space=SPACE, seed=0, descriptors=[], settings={"k": -1},
                      field="campaigns[2].strategy")


def test_other_bad_inputs() -> None:
    assert "a mapping" in _error("random", settings=[1, 2])
    assert _error("map_elites", descriptors=[]).startswith("strategy.name = 'map_elites'")
    assert "descriptors" in _error("novelty", {"behaviour": "descriptors"}, descriptors=[])
    assert _error("random", seed=-1).startswith("seed = -1")


def test_aliases_and_settings_listing() -> None:
    strategy = make_strategy("aging_evolution", space=SPACE, seed=0, descriptors=[], settings=None)
    assert strategy.NAME == "regularized_evolution"
    for name in STRATEGY_NAMES:
        settings = strategy_settings(name)
        assert "qd_offset" in settings and all(s.doc for s in settings.values())


def test_evotorch_imports_without_warnings() -> None:
    """Only EvoTorch's torch.jit.script DeprecationWarning is filtered, and it is: no warning escapes."""
    code = "import search.strategies.evotorch_strategy"
    done = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Warning" not in done.stderr


def test_tell_uses_the_descriptor_values_it_is_given_and_computes_them_otherwise() -> None:
    landscape = L.Landscape()
    strategy = make_strategy("map_elites", space=SPACE, seed=0, descriptors=DESCRIPTORS,
                             settings={"initial_samples": 4})
    given, computed = strategy.ask(2)
    strategy.tell(landscape.evaluate(given.genome), descriptors=[0.99, 0.01])
    strategy.tell(landscape.evaluate(computed.genome))
    rows = {row["hash"]: row["descriptors"] for row in strategy.archive_rows()}
    assert list(rows[given.genome.hash].values()) == [0.99, 0.01]
    assert list(rows[computed.genome.hash].values()) == landscape.behaviours[1]
    with pytest.raises(ValueError, match="3 descriptor values for 2 descriptors"):
        strategy.tell(landscape.evaluate(strategy.ask(1)[0].genome), descriptors=[0.1, 0.2, 0.3])


def test_seed_genomes_are_proposed_first_and_survive_a_restore(tmp_path) -> None:
    from genome import save

    inside = [SPACE.sample(np.random.default_rng(i)) for i in range(2)]
    paths = [save(g, tmp_path / f"seed{i}.yaml") for i, g in enumerate(inside)]
    settings = {"initial_samples": 4, "seed_genomes": [str(p) for p in paths]}
    strategy = make_strategy("map_elites", space=SPACE, seed=0, descriptors=DESCRIPTORS, settings=settings)
    first = strategy.ask(3)
    assert [p.genome for p in first[:2]] == inside and [p.operator for p in first] == ["seed", "seed", "sample"]
    state = strategy.state_dict()
    again = make_strategy("map_elites", space=SPACE, seed=0, descriptors=DESCRIPTORS, settings=settings)
    again.load_state_dict(state)
    assert [p.genome_hash for p in again.ask(3)] == [p.genome_hash for p in strategy.ask(3)]  # seeds not repeated


@pytest.mark.parametrize(("entry", "allowed"), [
    ("no-such-preset", "a preset name (one of ['cifar10-paper'"),
    ("parity-paper", "a genome inside genome_space"),  # the paper's CTM is far bigger than the test space
])
def test_bad_seed_genomes_are_refused_naming_the_entry(entry: str, allowed: str) -> None:
    message = _error("map_elites", {"seed_genomes": ["parity-paper", entry][1:]})
    assert message.startswith(f"strategy.settings.seed_genomes[0] = '{entry}': allowed is {allowed}")

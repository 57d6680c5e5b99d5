import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genome import Genome, GenomeError, GenomeSpace, RepairError, crossover, distance, mutate
from tests.genome.strategies import seeds, space_and_genome


def test_space_narrows_widens_and_fixes_genes():
    space = GenomeSpace.from_config({"ticks": {"min": 5, "max": 200}, "d_model": 128,
                                     "sync_select": {"choices": ["random-pairing"]}})
    assert space.domains["ticks"] == (5, 200)
    assert "d_model" not in space.evolvable and "sync_select" not in space.evolvable
    rng = np.random.default_rng(0)
    genomes = [space.sample(rng) for _ in range(100)]
    assert all(g.d_model == 128 and g.sync_select == "random-pairing" and 5 <= g.ticks <= 200 for g in genomes)
    assert max(g.ticks for g in genomes) > 100  # widened beyond the default domain of (1, 100)
    assert GenomeSpace.from_config(space.to_config()) == space


def test_bad_space_config_names_every_field():
    with pytest.raises(GenomeError) as err:
        GenomeSpace.from_config({"ticks": {"min": 0, "max": 5}, "tick": 3,
                                 "sync_select": {"choices": ["dense"]}, "dropout": {"min": 0.5, "max": 0.1}})
    fields = {p.gene for p in err.value.problems}
    assert fields == {"genome_space.ticks", "genome_space.tick", "genome_space.sync_select",
                      "genome_space.dropout"}
    assert "[1, 1000]" in str(err.value)


def test_a_space_with_no_valid_genome_is_rejected():
    with pytest.raises(GenomeError, match="holds a valid genome"):
        GenomeSpace.from_config({"d_input": 18, "heads": {"choices": [4, 8]}})


@settings(max_examples=100, deadline=None)
@given(space_and_genome())
def test_sampled_genomes_are_valid_and_repair_leaves_them_alone(pair):
    space, genome = pair
    space.check(genome)
    assert space.repair(genome.to_dict()) == genome


@settings(max_examples=150, deadline=None)
@given(space_and_genome(), seeds)
def test_mutation_gives_a_valid_different_child(pair, seed):
    space, genome = pair
    if not space.evolvable:
        return
    try:
        child = mutate(genome, space, np.random.default_rng(seed))
    except RepairError:  # a space with one reachable genome: reported, not silently returned
        return
    space.check(child)
    assert child != genome


@settings(max_examples=150, deadline=None)
@given(space_and_genome(), seeds, seeds)
def test_crossover_is_valid_and_inherits_from_parents(pair, seed_b, seed):
    space, a = pair
    b = space.sample(np.random.default_rng(seed_b))
    child = crossover(a, b, space, np.random.default_rng(seed))
    space.check(child)
    inherited = [name for name, value in child.to_dict().items()
                 if value in (a.to_dict()[name], b.to_dict()[name])]
    assert len(inherited) >= len(child.to_dict()) - 4  # repair touches at most heads/d_input/sync genes


def test_operators_are_reproducible_from_a_seed():
    space = GenomeSpace.default()
    def run(seed):
        rng = np.random.default_rng(seed)
        a, b = space.sample(rng), space.sample(rng)
        return [mutate(a, space, rng), crossover(a, b, space, rng), mutate(b, space, rng)]
    assert run(7) == run(7)
    assert run(7) != run(8)


def test_mutation_changes_few_genes_and_uses_each_gene_rule():
    space = GenomeSpace.default()
    rng = np.random.default_rng(3)
    parent = Genome(sync_select="random-pairing", n_self_pairs=2)
    changed = [len(parent.diff(mutate(parent, space, rng))) for _ in range(300)]
    assert np.mean(changed) < 3
    steps = [abs(c.ticks - parent.ticks) for c in (mutate(parent, space, rng, rate=1.0) for _ in range(200))]
    assert 1 <= np.median(steps) <= 25  # integer steps: local, not a resample of (1, 100)
    widths = [mutate(parent, space, rng, rate=1.0).d_model / parent.d_model for _ in range(200)]
    assert 0.6 < np.exp(np.mean(np.log(widths))) < 1.6  # log-scale steps are symmetric in ratio


@settings(max_examples=100, deadline=None)
@given(space_and_genome(), seeds)
def test_distance_is_a_normalised_semimetric(pair, seed):
    space, a = pair
    b = space.sample(np.random.default_rng(seed))
    assert distance(a, a, space) == 0.0
    assert distance(a, b, space) == pytest.approx(distance(b, a, space))
    assert 0.0 <= distance(a, b, space) <= 1.0
    if a != b and a.diff(b).keys() & set(space.evolvable):
        assert distance(a, b, space) > 0


def all_fixed_but(*names: str) -> dict:
    default = GenomeSpace.default()
    return {g: default.fixed_value(g) for g in default.evolvable if g not in names}


def test_distance_reaches_one_at_opposite_corners():
    space = GenomeSpace.from_config(all_fixed_but("ticks") | {"ticks": {"min": 1, "max": 10}})
    assert distance(Genome(ticks=1), Genome(ticks=10), space) == 1.0


@given(st.integers(0, 50))
def test_exhausted_space_fails_clearly(seed):
    space = GenomeSpace.from_config(all_fixed_but())
    with pytest.raises(RepairError, match="no searched gene"):
        mutate(space.sample(np.random.default_rng(seed)), space, np.random.default_rng(seed))

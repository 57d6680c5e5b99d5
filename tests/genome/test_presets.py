"""Presets (the paper's configurations by name) and genome spaces centred on a preset or a genome."""

import numpy as np
import pytest

import genome
from genome import PRESETS, Genome, GenomeError, GenomeSpace, VectorCodec, preset_names


def test_every_preset_is_a_valid_genome_with_a_one_line_description():
    assert preset_names() == tuple(PRESETS) and len(PRESETS) >= 10
    for name in preset_names():
        g = Genome.preset(name)
        assert isinstance(g, Genome) and g.to_dict() == {**Genome().to_dict(), **PRESETS[name].genes,
                                                         "dropout_nlm": g.dropout_nlm}
        preset = PRESETS[name]
        assert preset.description and "\n" not in preset.description and preset.task


def test_parity_paper_is_the_papers_configuration():
    g = Genome.preset("parity-paper")
    assert (g.ticks, g.memory_length, g.d_model, g.d_input, g.heads, g.synapse_depth) == (75, 25, 1024, 512, 8, 1)
    assert (g.n_sync_out, g.n_sync_action, g.sync_select, g.nlm_depth, g.nlm_hidden) == (32, 32, "random", 2, 16)
    assert g.positional_embedding == "rotational" and g.learning_rate == 1e-4 and g.batch_size == 64
    assert (g.decay_init, g.decay_learned, g.decay_clamp) == ("zeros", True, 15.0)
    sweep = {(Genome.preset(n).ticks, Genome.preset(n).memory_length) for n in preset_names() if n.startswith("parity")}
    assert sweep == {(1, 1), (10, 5), (25, 10), (50, 25), (75, 25), (100, 50)}
    maze = Genome.preset("maze-paper")
    assert (maze.d_model, maze.sync_select, maze.n_sync_out, maze.n_sync_action) == (2048, "first-last", 64, 32)
    assert maze.dropout == maze.dropout_nlm == 0.1  # the reference's dropout_nlm defaults to dropout
    assert Genome.preset("imagenet-paper").dropout_nlm == 0.0  # its script sets --dropout_nlm 0


def test_unknown_preset_lists_the_valid_names():
    with pytest.raises(GenomeError) as err:
        Genome.preset("parity-papr")
    assert "preset = 'parity-papr'" in str(err.value) and "parity-paper" in str(err.value)
    assert "maze-small" in str(err.value)


def test_presets_cannot_be_edited():
    with pytest.raises(TypeError):
        PRESETS["mine"] = PRESETS["parity-paper"]  # type: ignore[index]
    with pytest.raises(TypeError):
        PRESETS["parity-paper"].genes["ticks"] = 3  # type: ignore[index]
    assert genome.PRESETS is PRESETS


def test_a_centred_space_fixes_every_gene_not_named():
    space = GenomeSpace.from_config({"centre": "parity-paper"})
    assert space.evolvable == ()
    assert space.sample(np.random.default_rng(0)) == Genome.preset("parity-paper")
    open_ticks = GenomeSpace.from_config({"centre": "parity-paper", "ticks": {"min": 50, "max": 100},
                                          "sync_select": {"choices": ["random", "random-pairing"]}})
    assert open_ticks.evolvable == ("ticks", "sync_select")
    child = open_ticks.sample(np.random.default_rng(1))
    assert set(child.diff(Genome.preset("parity-paper"))) <= {"ticks", "sync_select", "n_self_pairs"}


def test_spread_opens_numeric_genes_around_the_centre():
    space = GenomeSpace.from_config({"centre": "parity-paper", "spread": 2})
    assert space.domains["d_model"] == (512, 2048) and space.domains["ticks"] == (37, 150)
    assert space.domains["n_sync_action"] == (16, 64) and space.domains["dropout"] == (0.0, 0.0)
    assert space.domains["sync_select"] == ("random",) and space.domains["learning_rate"] == (1e-4, 1e-4)
    assert space.contains(Genome.preset("parity-paper"))
    codec = VectorCodec(space)
    rng = np.random.default_rng(3)
    for _ in range(20):
        g = space.sample(rng)
        assert space.contains(g) and codec.decode(codec.encode(g)) == g
    assert GenomeSpace.from_config(space.to_config()) == space


def test_centre_can_be_a_mapping_of_genes():
    space = GenomeSpace.from_config({"centre": {"d_model": 64, "d_input": 32}, "d_model": {"min": 32, "max": 128}})
    assert space.evolvable == ("d_model",) and space.domains["d_input"] == (32, 32)


@pytest.mark.parametrize(("config", "field", "allowed"), [
    ({"centre": "nope"}, "genome_space.centre", "one of ['parity-paper'"),
    ({"centre": 3}, "genome_space.centre", "a preset name"),
    ({"centre": {"ticks": 0}}, "genome_space.centre.ticks", "an integer in [1, 1000]"),
    ({"spread": 2}, "genome_space.spread", "only together with a centre"),
    ({"centre": "parity-paper", "spread": 1}, "genome_space.spread", "a number > 1"),
    ({"centre": "parity-paper", "ticks": {"min": 10, "max": 20}}, "genome_space.ticks",
     "contains the centre's ticks = 75"),
    ({"center": "parity-paper"}, "genome_space.center", "or centre / spread"),
])
def test_centre_errors_name_the_field(config, field, allowed):
    with pytest.raises(GenomeError) as err:
        GenomeSpace.from_config(config)
    assert f"{field} = " in str(err.value) and allowed in str(err.value)

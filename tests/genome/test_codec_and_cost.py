import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genome import BackboneSpec, Genome, GenomeSpace, TaskShape, VectorCodec, estimate
from genome.cost import synapse_widths
from tests.genome.strategies import space_and_genome

PARITY = TaskShape(name="parity", backbone=BackboneSpec(kind="embedding", n_tokens=16, vocab=2),
                   out_positions=16, out_classes=2)


@settings(max_examples=200, deadline=None)
@given(space_and_genome())
def test_codec_round_trip_is_exact(pair):
    space, genome = pair
    codec = VectorCodec(space)
    x = codec.encode(genome)
    assert x.shape == (codec.dim,) and np.all((x >= 0) & (x <= 1))
    assert codec.decode(x) == genome


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-0.5, 1.5), min_size=17, max_size=17))
def test_any_point_decodes_to_a_valid_genome(point):
    space = GenomeSpace.default()
    codec = VectorCodec(space)
    assert codec.dim == 17
    space.check(codec.decode(point))


@pytest.mark.parametrize(("positions", "position_params"), [("learned", 6 * 4), ("rotational", 2 * 4 + 4)])
def test_parameter_count_by_hand_for_a_tiny_model(positions: str, position_params: int):
    g = Genome(ticks=3, memory_length=4, nlm_depth=1, d_model=8, d_input=4, heads=2, synapse_depth=1,
               sync_select="random-pairing", n_sync_out=5, n_sync_action=3, n_self_pairs=1, decay_learned=True,
               positional_embedding=positions)
    task = TaskShape(name="t", backbone=BackboneSpec(kind="embedding", n_tokens=6, vocab=2), out_positions=6,
                     out_classes=2)
    expected = {
        "backbone": 2 * 4 + position_params,  # embedding table + positions (a table, or Linear(2 → D_in))
        "kv_projection": 4 * 4 + 4 + 2 * 4,
        "start_state": 8 * 4 + 8,
        "attention": 4 * (4 * 4 + 4),
        "query_projection": 3 * 4 + 4,
        "synapses": (4 + 8) * 16 + 16 + 2 * 8,
        "neuron_level_models": 4 * 2 * 8 + 2 * 8 + 1,
        "decay": 5 + 3,
        "output_projection": 5 * 12 + 12,
    }
    cost = estimate(g, task)
    assert cost.params_by_part == expected
    assert cost.params == sum(expected.values())


def test_unet_widths_go_linearly_down_to_the_bottleneck():
    """As the reference: int() of numpy.linspace(D, 16, k), truncating, with the bottleneck always 16 (so the
    widths of a D < 16 model grow towards 16; they used to stay at D, and inner widths used to be rounded)."""
    assert synapse_widths(256, 1) == [256]
    assert synapse_widths(256, 4) == [256, 176, 96, 16]
    assert synapse_widths(8, 3) == [8, 12, 16]
    assert synapse_widths(32, 4) == [32, 26, 21, 16]  # rounding gave 27
    assert synapse_widths(2048, 4) == [2048, 1370, 693, 16]  # the paper's maze size; rounding gave 1371
    assert synapse_widths(2048, 6) == [2048, 1641, 1235, 828, 422, 16]
    assert synapse_widths(4096, 8) == [4096, 3513, 2930, 2347, 1764, 1181, 598, 16]


@settings(max_examples=100, deadline=None)
@given(space_and_genome())
def test_cost_is_monotone_where_it_must_be(pair):
    _, g = pair
    base = estimate(g, PARITY)
    more_ticks = estimate(g.replace(ticks=g.ticks + 1), PARITY)
    assert more_ticks.macs_per_forward > base.macs_per_forward
    assert more_ticks.params == base.params  # ticks reuse the same weights
    longer = estimate(g.replace(memory_length=g.memory_length + 1), PARITY)
    assert longer.params > base.params and longer.macs_per_tick > base.macs_per_tick
    assert base.macs_per_forward == base.macs_backbone + g.ticks * base.macs_per_tick


def test_fixed_decay_is_not_a_parameter():
    learned = estimate(Genome(decay_learned=True), PARITY)
    fixed = estimate(Genome(decay_learned=False), PARITY)
    assert learned.params - fixed.params == 2 * (32 * 33 // 2)

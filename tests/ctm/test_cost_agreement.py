"""The built model is exactly ``genome.cost``'s spec: parameter count and MACs agree with the cost model."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
import torch

from ctm import build_model
from ctm.metrics import measure_macs
from ctm.model import count_parameters
from genome.cost import BackboneSpec, TaskShape, estimate
from genome.genes import SYNC_SELECTIONS
from genome.genome import Genome

SHAPES = {
    "embedding": TaskShape(name="e", backbone=BackboneSpec(kind="embedding", n_tokens=6, vocab=3),
                           out_positions=6, out_classes=2),
    "scalar": TaskShape(name="s", backbone=BackboneSpec(kind="scalar", n_tokens=5), out_positions=1,
                        out_classes=6),
    "linear": TaskShape(name="l", backbone=BackboneSpec(kind="linear", n_tokens=3, in_features=7),
                        out_positions=2, out_classes=3),
    "conv": TaskShape(name="c", backbone=BackboneSpec(kind="conv", n_tokens=25, in_channels=3, height=9,
                                                      width=9, conv_layers=2, stride=2),
                      out_positions=4, out_classes=5),
    "conv1": TaskShape(name="c1", backbone=BackboneSpec(kind="conv", n_tokens=36, in_channels=1, height=6,
                                                        width=6, conv_layers=1, stride=1),
                       out_positions=1, out_classes=4),
    # stepped tasks (one observation per step, T ticks each, one answer per step), e.g. the partial maze
    "stepped-conv": TaskShape(name="sc", backbone=BackboneSpec(kind="conv", n_tokens=9, in_channels=5, height=3,
                                                               width=3, conv_layers=1, stride=1),
                              out_positions=3, out_classes=5, steps=3),
    "stepped-linear": TaskShape(name="sl", backbone=BackboneSpec(kind="linear", n_tokens=4, in_features=3),
                                out_positions=2, out_classes=3, steps=2),
}


def sample_input(shape: TaskShape, batch: int = 1) -> torch.Tensor:
    b = shape.backbone
    g = torch.Generator().manual_seed(0)
    if shape.steps > 1:  # one backbone input per observation step
        return torch.stack([sample_input(replace(shape, steps=1, out_positions=1), batch)
                            for _ in range(shape.steps)], dim=1)
    if b.kind == "embedding":
        return torch.randint(0, b.vocab, (batch, b.n_tokens), generator=g)
    if b.kind == "scalar":
        return torch.randn(batch, b.n_tokens, generator=g)
    if b.kind == "linear":
        return torch.randn(batch, b.n_tokens, b.in_features, generator=g)
    return torch.randn(batch, b.in_channels, b.height, b.width, generator=g)


def random_genomes(count: int, seed: int = 7) -> list[Genome]:
    """Small genomes covering every selection, synapse depths 1..6, NLM depth 1 and 2, n_action = 0, every
    decay schedule, learned and fixed decay, rotational and learned positions."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        select = SYNC_SELECTIONS[i % 3]
        d = rng.choice([8, 12, 20, 33, 48])
        d_in = rng.choice([4, 8, 12, 16])
        heads = rng.choice([h for h in (1, 2, 4) if d_in % h == 0])
        n_act = 0 if i % 4 == 0 else rng.randint(1, 6)
        n_out = rng.randint(2, 7)
        if select == "first-last":
            n_act = min(n_act, d - n_out)
        n_self = rng.randint(0, min(n_out, n_act if n_act else n_out) - 1) if select == "random-pairing" else 0
        out.append(Genome(
            d_model=d, d_input=d_in, heads=heads, ticks=rng.randint(1, 4), memory_length=rng.randint(1, 6),
            nlm_depth=1 + i % 2, nlm_hidden=rng.randint(1, 6), synapse_depth=1 + (i // 2) % 6,
            sync_select=select, n_sync_out=n_out, n_sync_action=n_act, n_self_pairs=n_self,
            decay_init=("zeros", "spread", "random")[i % 3 if i % 2 else (i // 3) % 3],
            decay_learned=bool((i // 5) % 2), decay_init_max=3.0, dropout=0.1 * (i % 2),
            positional_embedding=("rotational", "learned")[(i // 4) % 2]))
    return out


GENOMES = random_genomes(36)


@pytest.mark.parametrize("shape_name", sorted(SHAPES))
def test_parameter_count_equals_cost_model(shape_name: str) -> None:
    shape = SHAPES[shape_name]
    for genome in GENOMES:
        model = build_model(genome, shape)
        assert count_parameters(model) == estimate(genome, shape).params, genome
        assert not any(isinstance(p, torch.nn.parameter.UninitializedParameter) for p in model.parameters())


def test_genomes_cover_the_gene_values() -> None:
    seen = {(g.sync_select, g.nlm_depth, g.n_sync_action == 0, g.decay_learned) for g in GENOMES}
    assert {s for s, *_ in seen} == set(SYNC_SELECTIONS)
    assert {g.synapse_depth for g in GENOMES} >= {1, 2, 3, 4, 5, 6}
    assert {g.decay_init for g in GENOMES} == {"zeros", "spread", "random"}
    assert any(g.n_sync_action == 0 for g in GENOMES) and any(g.n_sync_action > 0 for g in GENOMES)
    assert {g.nlm_depth for g in GENOMES} == {1, 2} and {g.decay_learned for g in GENOMES} == {True, False}
    assert {g.positional_embedding for g in GENOMES[:12]} == {"rotational", "learned"}  # MACs use the first 12


def test_paper_sized_parity_config_count() -> None:
    """The reference's parity configuration (D = 1024, D_in = 512, 8 heads, M = 25, H = 16, 32/32 random)."""
    genome = Genome(d_model=1024, d_input=512, heads=8, ticks=75, memory_length=25, nlm_hidden=16,
                    n_sync_out=32, n_sync_action=32)
    shape = TaskShape(name="parity", backbone=BackboneSpec(kind="embedding", n_tokens=64, vocab=2),
                      out_positions=64, out_classes=2)
    assert count_parameters(build_model(genome, shape)) == estimate(genome, shape).params


@pytest.mark.parametrize("shape_name", sorted(SHAPES))
def test_measured_macs_equal_cost_model(shape_name: str) -> None:
    """The flop counter's MACs plus one per synchronisation pair per tick equal the cost model exactly."""
    shape = SHAPES[shape_name]
    for genome in GENOMES[:12]:
        model = build_model(genome, shape)
        assert measure_macs(model, sample_input(shape)) == estimate(genome, shape).macs_per_forward, genome


@pytest.mark.parametrize("shape_name", sorted(SHAPES))
def test_forward_shapes(shape_name: str) -> None:
    shape = SHAPES[shape_name]
    genome = GENOMES[1]
    predictions, certainties = build_model(genome, shape)(sample_input(shape, batch=3))
    assert predictions.shape == (3, shape.out_dim, genome.ticks)
    assert certainties.shape == (3, 2, genome.ticks)
    assert torch.allclose(certainties.sum(1), torch.ones(3, genome.ticks))

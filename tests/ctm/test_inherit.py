"""Weight inheritance, gene by gene: shapes, what is copied, and function preservation where it is promised."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from ctm_testutil import tiny

from ctm import build_model
from ctm.inherit import Inherited, InheritError, inherit
from ctm.model import CTM, count_parameters
from genome.cost import BackboneSpec, TaskShape
from genome.genome import Genome
from genome.operators import mutate
from genome.space import GenomeSpace

SHAPE = TaskShape(name="t", backbone=BackboneSpec(kind="scalar", n_tokens=4), out_positions=2, out_classes=3)
PARITY = TaskShape(name="parity", backbone=BackboneSpec(kind="embedding", n_tokens=6, vocab=2), out_positions=6,
                   out_classes=2)
SHAPES = {
    "scalar": (SHAPE, lambda g: torch.randn(3, 4, generator=g)),
    "embedding": (PARITY, lambda g: torch.randint(0, 2, (3, 6), generator=g)),
    "linear": (TaskShape(name="l", backbone=BackboneSpec(kind="linear", n_tokens=3, in_features=5), out_positions=1,
                         out_classes=4), lambda g: torch.randn(3, 3, 5, generator=g)),
    "conv": (TaskShape(name="c", backbone=BackboneSpec(kind="conv", n_tokens=16, in_channels=2, height=7, width=7,
                                                       stride=2), out_positions=1, out_classes=3),
             lambda g: torch.randn(3, 2, 7, 7, generator=g)),
}


def trained_like(genome: Genome, shape: TaskShape = SHAPE, seed: int = 3) -> dict[str, torch.Tensor]:
    """A parent state dict far from its init (as after training), so that a changed function shows."""
    model = build_model(genome, shape, seed=seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if name.endswith("temperature"):
                p.copy_(1.0 + 0.2 * noise.abs())
            elif name.endswith("theta"):
                p.copy_(noise.abs())
            else:
                p.add_(0.3 * noise)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def load(genome: Genome, weights: dict[str, torch.Tensor], shape: TaskShape = SHAPE, seed: int = 5) -> CTM:
    model = build_model(genome, shape, seed=seed)
    model.load_state_dict(weights, strict=True)
    return model.eval()


def outputs(model: CTM, kind: str = "scalar") -> torch.Tensor:
    with torch.no_grad():
        return model(SHAPES[kind][1](torch.Generator().manual_seed(0)))[0]


def step(parent: Genome, child: Genome, shape: TaskShape = SHAPE, seed: int = 5, **kw: Any
         ) -> tuple[Inherited, dict[str, torch.Tensor], CTM, CTM]:
    """Inherit parent → child; return the result, the parent's weights and both models (eval mode)."""
    weights = trained_like(parent, shape, **kw)
    result = inherit(parent, weights, child, shape, seed=seed)
    return result, weights, load(parent, weights, shape, seed=3), load(child, result.weights, shape, seed)


def assert_same_function(parent_model: CTM, child_model: CTM, kind: str = "scalar") -> None:
    a, b = outputs(parent_model, kind), outputs(child_model, kind)
    t = min(a.shape[-1], b.shape[-1])
    torch.testing.assert_close(b[..., :t], a[..., :t], rtol=1e-4, atol=1e-5)


def differs(parent_model: CTM, child_model: CTM, kind: str = "scalar") -> bool:
    a, b = outputs(parent_model, kind), outputs(child_model, kind)
    t = min(a.shape[-1], b.shape[-1])
    return not torch.allclose(a[..., :t], b[..., :t], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("ticks", [2, 5, 9])
def test_ticks_change_no_weight_and_the_first_ticks_exactly(ticks: int) -> None:
    parent = tiny(ticks=5)
    result, weights, p_model, c_model = step(parent, parent.replace(ticks=ticks) if ticks != 5 else parent)
    assert result.inherited_fraction == 1.0 and result.function_preserving and result.not_preserved == ()
    assert all(torch.equal(result.weights[k], weights[k]) for k in weights)  # pairs included
    a, b = outputs(p_model), outputs(c_model)
    t = min(5, ticks)
    assert b.shape[-1] == ticks and torch.equal(a[..., :t], b[..., :t])


def test_training_genes_copy_every_weight() -> None:
    parent = tiny(decay_init="random")
    child = parent.replace(learning_rate=0.01, batch_size=16, dropout=0.2, dropout_nlm=0.1, decay_init="spread")
    result, weights, p_model, c_model = step(parent, child)
    assert result.function_preserving and result.inherited_fraction == 1.0
    assert all(torch.equal(result.weights[k], weights[k]) for k in weights)
    assert_same_function(p_model, c_model)  # eval mode: dropout is off


def test_memory_padding_is_exact_with_zero_weights_on_the_oldest_side() -> None:
    parent = tiny(memory_length=4)
    result, weights, p_model, c_model = step(parent, parent.replace(memory_length=7))
    w = result.weights["nlm.layers.0.weight"]
    assert w.shape[-1] == 7 and torch.equal(w[..., 3:], weights["nlm.layers.0.weight"])
    assert not w[..., :3].any()
    assert torch.equal(result.weights["start_trace"][:, 3:], weights["start_trace"])
    assert result.function_preserving
    assert_same_function(p_model, c_model)
    d, h, total = 24, 4, count_parameters(c_model)
    assert result.inherited_fraction == pytest.approx(1 - (d * 2 * h * 3 + d * 3) / total)


def test_memory_truncation_keeps_the_most_recent_entries() -> None:
    parent = tiny(memory_length=5)
    result, weights, p_model, c_model = step(parent, parent.replace(memory_length=2))
    assert torch.equal(result.weights["nlm.layers.0.weight"], weights["nlm.layers.0.weight"][..., 3:])
    assert torch.equal(result.weights["start_trace"], weights["start_trace"][:, 3:])
    assert not result.function_preserving and "memory_length 5 → 2 (truncated)" in result.not_preserved
    assert differs(p_model, c_model)


def test_hidden_widening_is_exact_and_new_units_start_learning() -> None:
    parent = tiny(nlm_hidden=4)
    result, weights, p_model, c_model = step(parent, parent.replace(nlm_hidden=7))
    first, second = result.weights["nlm.layers.0.weight"], result.weights["nlm.layers.1.weight"]
    old_first = weights["nlm.layers.0.weight"]
    assert torch.equal(first[:, :4], old_first[:, :4]) and torch.equal(first[:, 7:11], old_first[:, 4:])  # halves
    assert first[:, 4:7].abs().sum() > 0 and first[:, 11:].abs().sum() > 0  # new units: fresh incoming weights
    assert not second[..., 4:].any() and torch.equal(second[..., :4], weights["nlm.layers.1.weight"])
    assert result.function_preserving
    assert_same_function(p_model, c_model)
    c_model.train()
    loss = c_model(SHAPES["scalar"][1](torch.Generator().manual_seed(1)))[0].square().mean()
    loss.backward()
    assert c_model.nlm.layers[1].weight.grad[..., 4:].abs().sum() > 0  # the zero columns get a gradient


def test_hidden_narrowing_keeps_the_first_units_of_each_half() -> None:
    parent = tiny(nlm_hidden=6)
    result, weights, p_model, c_model = step(parent, parent.replace(nlm_hidden=3))
    old = weights["nlm.layers.0.weight"]
    assert torch.equal(result.weights["nlm.layers.0.weight"], torch.cat([old[:, :3], old[:, 6:9]], dim=1))
    assert torch.equal(result.weights["nlm.layers.1.weight"], weights["nlm.layers.1.weight"][..., :3])
    assert not result.function_preserving and differs(p_model, c_model)


@pytest.mark.parametrize("genes", [
    {"sync_select": "random"}, {"sync_select": "first-last"},
    {"sync_select": "random-pairing", "n_self_pairs": 2}, {"n_sync_action": 0}, {"memory_length": 3},
])
def test_d_model_widening_by_a_multiple_replicates_neurons_exactly(genes: dict) -> None:
    parent = tiny(d_model=24, **genes)
    result, weights, p_model, c_model = step(parent, parent.replace(d_model=48))
    assert result.function_preserving, result.not_preserved
    assert "replicated ×2" in result.genes["D"]
    z0 = result.weights["start_state"]
    assert torch.equal(z0[:24], weights["start_state"]) and torch.equal(z0[24:], weights["start_state"])
    assert result.inherited_fraction == 1.0
    assert_same_function(p_model, c_model)
    cols = result.weights["synapses.net.1.weight"][:, 16:]  # the columns reading z: split among the copies
    rows = torch.tensor([*range(24), *range(24), *range(24, 48), *range(24, 48)])  # [value | gate], replicated
    torch.testing.assert_close(cols[:, :24] + cols[:, 24:], weights["synapses.net.1.weight"][rows, 16:])
    assert not torch.allclose(cols[:, :24], cols[:, 24:])


@pytest.mark.parametrize("d_model", [30, 16])
def test_d_model_other_changes_copy_the_first_neurons(d_model: int) -> None:
    parent = tiny(d_model=24)
    result, weights, p_model, c_model = step(parent, parent.replace(d_model=d_model))
    n = min(24, d_model)
    assert torch.equal(result.weights["start_trace"][:n], weights["start_trace"][:n])
    assert torch.equal(result.weights["nlm.layers.0.weight"][:n], weights["nlm.layers.0.weight"][:n])
    syn = result.weights["synapses.net.1.weight"]
    assert torch.equal(syn[:n, :16 + n], weights["synapses.net.1.weight"][:n, :16 + n])
    assert torch.equal(syn[d_model:d_model + n, :16 + n], weights["synapses.net.1.weight"][24:24 + n, :16 + n])
    for role in ("out", "action"):
        assert int(result.weights[f"sync_{role}.left"].max()) < d_model
    assert not result.function_preserving and differs(p_model, c_model)
    assert 0.5 < result.inherited_fraction < 1.0


@pytest.mark.parametrize("kind", ["scalar", "embedding", "linear"])
def test_d_input_widening_by_a_multiple_is_exact(kind: str) -> None:
    shape = SHAPES[kind][0]
    parent = tiny(d_input=16, heads=2)
    result, _, p_model, c_model = step(parent, parent.replace(d_input=32), shape)
    assert result.function_preserving, result.not_preserved
    assert result.inherited_fraction == 1.0
    assert_same_function(p_model, c_model, kind)


def test_d_input_widening_with_conv_or_other_heads_or_by_a_non_multiple_copies_the_overlap() -> None:
    parent = tiny(d_input=16, heads=2)
    for child, kind, why in [(parent.replace(d_input=32), "conv", "conv backbone"),
                             (parent.replace(d_input=32, heads=4), "scalar", "heads changed"),
                             (parent.replace(d_input=20), "scalar", "not a multiple")]:
        result, weights, p_model, c_model = step(parent, child, SHAPES[kind][0])
        assert any(why in loss for loss in result.not_preserved)
        assert torch.equal(result.weights["attention.w_k.weight"][:16, :16], weights["attention.w_k.weight"])
        assert differs(p_model, c_model, kind)


def _pair_keys(weights: dict[str, torch.Tensor], role: str) -> list[tuple[int, int]]:
    left, right = weights[f"sync_{role}.left"].tolist(), weights[f"sync_{role}.right"].tolist()
    return [(min(a, b), max(a, b)) for a, b in zip(left, right, strict=True)]


@pytest.mark.parametrize("select", ["random", "random-pairing", "first-last"])
def test_growing_synchronisation_keeps_pairs_decays_and_columns(select: str) -> None:
    parent = tiny(sync_select=select, n_sync_out=4, n_sync_action=3)
    result, weights, p_model, c_model = step(parent, parent.replace(n_sync_out=6, n_sync_action=5))
    assert result.function_preserving, result.not_preserved
    for role, proj, axis in (("out", "output.weight", 1), ("action", "query.weight", 1)):
        parent_keys, child_keys = _pair_keys(weights, role), _pair_keys(result.weights, role)
        assert set(parent_keys) < set(child_keys)
        for s, key in enumerate(child_keys):
            col = result.weights[proj].select(axis, s)
            if key in parent_keys:
                q = parent_keys.index(key)
                assert result.weights[f"sync_{role}.theta"][s] == weights[f"sync_{role}.theta"][q]
                assert torch.equal(col, weights[proj].select(axis, q))
            else:
                assert not col.any()  # a new pair's column starts at zero: it adds nothing yet
    assert_same_function(p_model, c_model)


def test_shrinking_or_reselecting_synchronisation_drops_pairs() -> None:
    parent = tiny(n_sync_out=6)
    result, weights, p_model, c_model = step(parent, parent.replace(n_sync_out=3))
    assert set(_pair_keys(result.weights, "out")) < set(_pair_keys(weights, "out"))
    assert any("sync_out" in loss and "dropped" in loss for loss in result.not_preserved)
    other, *_ = step(parent, parent.replace(sync_select="random-pairing", n_sync_out=6))
    assert any("strategy random → random-pairing" in note for note in other.per_tensor.values())
    assert differs(p_model, c_model)


def test_action_synchronisation_appearing_is_exact_and_disappearing_is_not() -> None:
    parent = tiny(n_sync_action=0)
    result, weights, p_model, c_model = step(parent, parent.replace(n_sync_action=4))
    assert not result.weights["query.weight"].any()
    assert torch.equal(result.weights["query.bias"], weights["query"])
    assert result.function_preserving
    assert_same_function(p_model, c_model)
    back, weights2, p2, c2 = step(parent.replace(n_sync_action=4), parent)
    assert torch.equal(back.weights["query"], weights2["query.bias"])
    assert not back.function_preserving and differs(p2, c2)


def test_decay_learned_switch_keeps_the_decays() -> None:
    parent = tiny(decay_learned=True)
    result, weights, p_model, c_model = step(parent, parent.replace(decay_learned=False))
    assert torch.equal(result.weights["sync_out.theta"], weights["sync_out.theta"])
    assert "sync_out.theta" not in dict(c_model.named_parameters())  # a buffer now, loaded from the parent
    assert result.function_preserving
    assert_same_function(p_model, c_model)


def test_heads_and_synapse_depth_copy_by_name_and_shape() -> None:
    parent = tiny(heads=2)
    result, weights, p_model, c_model = step(parent, parent.replace(heads=4))
    assert all(torch.equal(result.weights[k], weights[k]) for k in weights) and result.inherited_fraction == 1.0
    assert "heads 2 → 4 (the head split changes)" in result.not_preserved and differs(p_model, c_model)

    child = parent.replace(synapse_depth=2)
    result, weights, p_model, c_model = step(parent, child)
    fresh = build_model(child, SHAPE, seed=5).state_dict()
    synapse = [k for k in result.weights if k.startswith("synapses.")]
    assert synapse and all(torch.equal(result.weights[k], fresh[k]) for k in synapse)  # the child's init
    others = [k for k in result.weights if not k.startswith("synapses.")]
    assert all(torch.equal(result.weights[k], weights[k]) for k in others)
    params = dict(c_model.named_parameters())
    expected = sum(params[k].numel() for k in others if k in params) / count_parameters(c_model)
    assert result.inherited_fraction == pytest.approx(expected)
    assert not result.function_preserving


def test_pure_seeded_and_leaves_global_rngs_alone() -> None:
    parent = tiny()
    child = parent.replace(d_model=30, nlm_hidden=6, n_sync_out=7)
    weights = trained_like(parent)
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    a = inherit(parent, weights, child, SHAPE, seed=5)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], np_state[1])
    b = inherit(parent, weights, child, SHAPE, seed=5)
    c = inherit(parent, weights, child, SHAPE, seed=6)
    assert all(torch.equal(a.weights[k], b.weights[k]) for k in a.weights)
    assert not torch.equal(a.weights["start_state"], c.weights["start_state"])  # new neurons: the seed's init
    assert torch.equal(a.weights["start_state"][:24], c.weights["start_state"][:24])
    assert a.record()["inherited_fraction"] == a.inherited_fraction
    assert a.summary() == f"inherited: {a.inherited_fraction:.2f} of parameters from {parent.hash}"
    assert set(a.per_module) >= {"nlm", "synapses", "sync_out", "output", "start_trace"}


def test_parent_weights_must_fit_the_parent_genome() -> None:
    weights = trained_like(tiny(memory_length=4))
    with pytest.raises(InheritError, match="start_trace"):
        inherit(tiny(memory_length=5), weights, tiny(), SHAPE, seed=0)
    with pytest.raises(InheritError, match="allowed is a Tensor"):
        inherit(tiny(), {**weights, "output.bias": [1.0]}, tiny(), SHAPE, seed=0)


QUICK_SPACE = {"ticks": {"min": 1, "max": 16}, "memory_length": {"min": 1, "max": 8},
               "d_model": {"min": 16, "max": 64}, "d_input": {"min": 16, "max": 32}, "heads": {"choices": [1, 2, 4]},
               "nlm_hidden": {"min": 2, "max": 8}, "synapse_depth": {"min": 1, "max": 2},
               "n_sync_out": {"min": 4, "max": 16}, "n_sync_action": {"min": 0, "max": 16},
               "n_self_pairs": {"min": 0, "max": 2}, "dropout": 0.0, "dropout_nlm": 0.0, "batch_size": 32,
               "learning_rate": 0.003}


def test_random_mutations_load_strictly_and_keep_the_function_whenever_they_say_so() -> None:
    space = GenomeSpace.from_config(QUICK_SPACE)
    rng = np.random.default_rng(7)
    preserving = 0
    for i in range(16):
        parent = space.sample(rng)
        child = mutate(parent, space, rng, rate=0.15)
        result, _, p_model, c_model = step(parent, child, PARITY, seed=i)
        assert 0.0 <= result.inherited_fraction <= 1.0
        if result.function_preserving:
            preserving += 1
            assert_same_function(p_model, c_model, "embedding")
    assert preserving >= 3


@pytest.mark.parametrize("select", ["random", "random-pairing", "first-last"])
def test_every_exact_change_at_once_is_still_exact(select: str) -> None:
    parent = tiny(d_model=24, d_input=16, heads=2, memory_length=3, nlm_hidden=3, ticks=4, sync_select=select,
                  n_sync_out=4, n_sync_action=3, n_self_pairs=1, decay_init="random")
    child = parent.replace(d_model=48, d_input=32, memory_length=5, nlm_hidden=5, ticks=6, n_sync_out=6,
                           n_sync_action=5, learning_rate=0.01, decay_learned=False)
    result, _, p_model, c_model = step(parent, child, PARITY)
    assert result.function_preserving, result.not_preserved
    assert set(result.genes) == {"D", "D_in", "M", "H"}
    assert_same_function(p_model, c_model, "embedding")

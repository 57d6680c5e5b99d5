"""The model's equations and genes: NLM locality, gradients, each gene's effect, tracking, functional clamp."""

from __future__ import annotations

import math

import pytest
import torch
from ctm_testutil import tiny

from ctm import build_model
from ctm.model import count_parameters
from ctm.nlm import NeuronLevelModels
from ctm.synapses import GLUSynapse, UNetSynapse
from genome.cost import BackboneSpec, TaskShape, synapse_widths

SHAPE = TaskShape(name="t", backbone=BackboneSpec(kind="scalar", n_tokens=4), out_positions=2, out_classes=3)


def run(model: torch.nn.Module, batch: int = 3, seed: int = 0) -> tuple[torch.Tensor, ...]:
    return model(torch.randn(batch, 4, generator=torch.Generator().manual_seed(seed)), track=True)


@pytest.mark.parametrize("depth", [1, 2])
def test_nlm_of_neuron_d_sees_only_its_own_history(depth: int) -> None:
    torch.manual_seed(0)
    nlm = NeuronLevelModels(d_model=7, memory_length=5, depth=depth, hidden=3, dropout=0.0)
    history = torch.randn(7, 5, 4)  # [D, M, B]
    base = nlm(history)
    for other in range(7):
        changed = history.clone()
        changed[other] += torch.randn(5, 4)
        out = nlm(changed)
        keep = [d for d in range(7) if d != other]
        torch.testing.assert_close(out[keep], base[keep], rtol=0, atol=0)
        assert not torch.allclose(out[other], base[other])


def test_nlm_is_one_batched_contraction_not_a_loop() -> None:
    nlm = NeuronLevelModels(d_model=5, memory_length=3, depth=2, hidden=4, dropout=0.0)
    assert [tuple(layer.weight.shape) for layer in nlm.layers] == [(5, 8, 3), (5, 2, 4)]
    history = torch.randn(5, 3, 2)  # [D, M, B]
    manual = []
    for d in range(5):  # the same maths, neuron by neuron, sample-major
        h = history[d].t()  # [B, M]
        for layer in nlm.layers:
            h = torch.nn.functional.glu((h @ layer.weight[d].t() + layer.bias[d].t()) / layer.temperature, dim=-1)
        manual.append(h.squeeze(-1))
    torch.testing.assert_close(nlm(history), torch.stack(manual))


@pytest.mark.parametrize("genes", [
    {}, {"n_sync_action": 0}, {"synapse_depth": 3}, {"nlm_depth": 1}, {"sync_select": "first-last"},
    {"sync_select": "random-pairing", "n_self_pairs": 2, "decay_init": "spread"},
])
def test_gradients_reach_every_parameter(genes: dict) -> None:
    model = build_model(tiny(**genes), SHAPE)
    predictions, certainties, _ = run(model)
    (predictions.square().mean() + certainties[:, 1].mean()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("backbone,x", [
    (BackboneSpec(kind="embedding", n_tokens=5, vocab=3), torch.randint(0, 3, (2, 5))),
    (BackboneSpec(kind="linear", n_tokens=3, in_features=4), torch.randn(2, 3, 4)),
    (BackboneSpec(kind="conv", n_tokens=16, in_channels=2, height=7, width=7, stride=2), torch.randn(2, 2, 7, 7)),
])
def test_gradients_reach_every_backbone_parameter(backbone: BackboneSpec, x: torch.Tensor) -> None:
    shape = TaskShape(name="b", backbone=backbone, out_positions=1, out_classes=2)
    model = build_model(tiny(), shape)
    predictions, _ = model(x)
    predictions.square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_ticks_gene_sets_the_number_of_outputs() -> None:
    for ticks in (1, 3, 8):
        predictions, certainties, trace = run(build_model(tiny(ticks=ticks), SHAPE))
        assert predictions.shape[-1] == certainties.shape[-1] == ticks == trace.post.shape[0]


def test_memory_length_gene_sets_the_history_width() -> None:
    for m in (1, 4, 9):
        model = build_model(tiny(memory_length=m), SHAPE)
        assert model.start_trace.shape == (24, m)
        assert model.nlm.layers[0].weight.shape[2] == m


def test_history_is_a_fifo_of_the_last_m_preactivations() -> None:
    """With M = 2 and a depth-1 NLM, z_t depends only on (a_{t-1}, a_t): recompute it from the trace."""
    model = build_model(tiny(memory_length=2, nlm_depth=1, ticks=4), SHAPE).eval()
    with torch.no_grad():
        _, _, trace = run(model)
        for t in range(1, 4):
            history = torch.stack([trace.pre[t - 1], trace.pre[t]], dim=1).permute(2, 1, 0)  # [D, 2, B]
            torch.testing.assert_close(model.nlm(history).t(), trace.post[t])
        first = torch.stack([model.start_trace[:, -1].expand(3, -1), trace.pre[0]], 1).permute(2, 1, 0)
        torch.testing.assert_close(model.nlm(first).t(), trace.post[0])


def test_width_genes() -> None:
    model = build_model(tiny(d_model=40, d_input=12, heads=4, n_sync_out=5, n_sync_action=4), SHAPE)
    _, _, trace = run(model)
    assert trace.pre.shape == (5, 3, 40) and trace.attention.shape == (5, 3, 4, 4)
    assert trace.sync_out.shape[-1] == 15 and trace.sync_action.shape[-1] == 10
    torch.testing.assert_close(trace.attention.sum(-1), torch.ones(5, 3, 4))


def test_synapse_depth_gene() -> None:
    assert isinstance(build_model(tiny(synapse_depth=1), SHAPE).synapses, GLUSynapse)
    for depth in (2, 4):
        synapses = build_model(tiny(d_model=48, synapse_depth=depth), SHAPE).synapses
        assert isinstance(synapses, UNetSynapse)
        assert [layer[1].out_features for layer in synapses.down] == synapse_widths(48, depth)[1:]
        assert synapses.first[0].in_features == 16 + 48


def test_nlm_genes() -> None:
    assert len(build_model(tiny(nlm_depth=1), SHAPE).nlm.layers) == 1
    layers = build_model(tiny(nlm_depth=2, nlm_hidden=7), SHAPE).nlm.layers
    assert layers[0].weight.shape[1] == 14 and layers[1].weight.shape[2] == 7


def test_selection_gene_chooses_the_pairs() -> None:
    first_last = build_model(tiny(sync_select="first-last", d_model=24, n_sync_out=3, n_sync_action=2), SHAPE)
    assert set(first_last.sync_out.left.tolist()) | set(first_last.sync_out.right.tolist()) == {0, 1, 2}
    assert set(first_last.sync_action.left.tolist()) == {22, 23}
    sparse = build_model(tiny(sync_select="random-pairing", n_sync_out=6, n_self_pairs=2), SHAPE)
    assert sparse.sync_out.size == 6
    assert (sparse.sync_out.left[:2] == sparse.sync_out.right[:2]).all()


def test_n_sync_action_zero_uses_a_learned_query() -> None:
    model = build_model(tiny(n_sync_action=0), SHAPE)
    assert model.sync_action is None and isinstance(model.query, torch.nn.Parameter)
    _, _, trace = run(model)
    assert trace.sync_action.shape[-1] == 0
    assert torch.equal(trace.attention[0], trace.attention[-1])  # the query does not depend on the state


@pytest.mark.parametrize("learned", [True, False])
def test_decay_schedule_genes(learned: bool) -> None:
    zeros = build_model(tiny(decay_init="zeros", decay_learned=learned), SHAPE)
    assert torch.equal(zeros.sync_out.theta, torch.zeros(zeros.sync_out.size))
    spread = build_model(tiny(decay_init="spread", decay_init_max=3.0, decay_learned=learned), SHAPE)
    rates = spread.sync_out.rates().detach()
    assert rates.min() == pytest.approx(math.exp(-3.0), rel=1e-5) and rates.max() == pytest.approx(1.0)
    random_model = build_model(tiny(decay_init="random", decay_init_max=3.0, decay_learned=learned), SHAPE)
    theta = random_model.sync_out.theta
    assert theta.min() >= 0 and theta.max() <= 3.0 and theta.std() > 0
    names = {n for n, _ in random_model.named_parameters()}
    assert ("sync_out.theta" in names) is learned and ("sync_action.theta" in names) is learned
    assert "sync_out.theta" in random_model.state_dict()
    predictions, _, _ = run(random_model)
    predictions.sum().backward()
    assert (theta.grad is not None) is learned and theta.requires_grad is learned


def test_decay_is_clamped_functionally() -> None:
    model = build_model(tiny(decay_clamp=2.0), SHAPE)
    with torch.no_grad():
        model.sync_out.theta.copy_(torch.linspace(-1.0, 5.0, model.sync_out.size))
    before = model.sync_out.theta.detach().clone()
    run(model)
    assert torch.equal(model.sync_out.theta.detach(), before)  # forward edits nothing
    rates = model.sync_out.rates().detach()
    assert rates.max() == pytest.approx(1.0) and rates.min() == pytest.approx(math.exp(-2.0))
    model.project_()  # the explicit projection after an optimizer step
    assert model.sync_out.theta.min() == 0.0 and model.sync_out.theta.max() == 2.0


def test_dropout_genes_act_in_training_only() -> None:
    for genes in ({"dropout": 0.3}, {"dropout_nlm": 0.3}):
        model = build_model(tiny(**genes), SHAPE)
        x = torch.randn(3, 4)
        torch.manual_seed(0)
        a = model(x)[0]
        b = model(x)[0]
        assert not torch.allclose(a, b)
        model.eval()
        assert torch.equal(model(x)[0], model(x)[0])


def test_tracking_mode_matches_the_plain_forward() -> None:
    model = build_model(tiny(), SHAPE).eval()
    x = torch.randn(3, 4)
    plain = model(x)
    predictions, certainties, trace = model(x, track=True)
    torch.testing.assert_close(plain[0], predictions)
    torch.testing.assert_close(plain[1], certainties)
    assert trace.post.shape == trace.pre.shape == (5, 3, 24)


def test_certainty_is_one_minus_normalised_entropy() -> None:
    model = build_model(tiny(), SHAPE).eval()
    predictions, certainties = model(torch.randn(2, 4))
    p = predictions.reshape(2, 2, 3, -1).softmax(2)
    entropy = -(p * p.log()).sum(2) / math.log(3)
    torch.testing.assert_close(certainties[:, 1], 1 - entropy.mean(1))


def test_build_is_seeded_and_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = build_model(tiny(), SHAPE, seed=4)
    assert torch.equal(torch.rand(3), expected)
    b, c = build_model(tiny(), SHAPE, seed=4), build_model(tiny(), SHAPE, seed=5)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert not torch.equal(a.output.weight, c.output.weight)
    assert count_parameters(a) == count_parameters(c)


def test_nothing_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    model = build_model(tiny(), SHAPE)
    run(model)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""

"""The details in which ctmevo's CTM follows the reference: dropout placement, attention initialisation and the
rotational positional embedding."""

from __future__ import annotations

import math

import pytest
import torch
from ctm_testutil import tiny
from torch import nn

from ctm import build_model
from ctm.attention import TickAttention
from ctm.backbone import rotation_basis
from ctm.nlm import NeuronLevelModels
from genome.cost import BackboneSpec, TaskShape

PARITY = TaskShape(name="parity", backbone=BackboneSpec(kind="embedding", n_tokens=5, vocab=2), out_positions=5,
                   out_classes=2)


def test_attention_dropout_drops_attention_weights_not_the_output() -> None:
    """With one head, V = I (one-hot tokens, W_v = I) and an orthogonal W_o = Q, o = Q·(dropped weights), so
    o·Q recovers what dropout acted on: every entry either 0 or the softmax weight scaled by 1 / (1 − p).
    (Dropout on o itself would zero entries of Q·w instead, which o·Q would not show.)"""
    torch.manual_seed(0)
    n, p = 8, 0.5
    attention = TickAttention(n, 1, p)
    q = torch.linalg.qr(torch.randn(n, n))[0]
    with torch.no_grad():
        attention.w_v.weight.copy_(torch.eye(n))
        attention.w_o.weight.copy_(q)
        attention.w_v.bias.zero_()
    keys_t, values = attention.keys_values(torch.eye(n).unsqueeze(0).expand(64, n, n))
    query = torch.randn(64, n)
    attention.eval()
    weights = attention(query, keys_t, values)[0] @ q
    torch.testing.assert_close(weights.sum(-1), torch.ones(64))
    attention.train()
    out, returned = attention(query, keys_t, values, return_weights=True)
    out = out @ q
    kept = out.abs() > 1e-6
    assert 0.3 < kept.float().mean() < 0.7  # about half the weights dropped
    torch.testing.assert_close(out[kept], (weights / (1 - p))[kept])
    torch.testing.assert_close(returned.squeeze(1), weights)  # tracking reports the weights before dropout


def test_nlm_dropout_acts_before_each_layer() -> None:
    nlm = NeuronLevelModels(d_model=6, memory_length=4, depth=2, hidden=3, dropout=0.3)
    seen: list[tuple[int, ...]] = []

    class Recorder(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(tuple(x.shape))
            return x

    nlm.dropout = Recorder()
    nlm(torch.randn(6, 4, 2))
    assert seen == [(6, 4, 2), (6, 3, 2)]  # the history [D, M, B], then the hidden layer [D, H, B]


def test_dropout_nlm_defaults_to_dropout_in_the_model() -> None:
    model = build_model(tiny(dropout=0.2), PARITY)
    assert model.nlm.dropout.p == 0.2 and model.attention.dropout.p == 0.2


@pytest.mark.parametrize("d_input", [16, 64])
def test_attention_input_projections_are_initialised_as_multihead_attention(d_input: int) -> None:
    model = build_model(tiny(d_input=d_input, heads=4), PARITY, seed=3)
    bound = math.sqrt(6.0 / (4 * d_input))  # Xavier-uniform of the stacked [3·D_in, D_in] in-projection
    stacked = torch.cat([getattr(model.attention, f"w_{p}").weight for p in "qkv"]).detach()
    assert stacked.abs().max() <= bound and stacked.abs().max() > 0.95 * bound
    assert abs(float(stacked.std()) - bound / math.sqrt(3)) < 0.1 * bound / math.sqrt(3)
    for p in "qkvo":
        assert torch.equal(getattr(model.attention, f"w_{p}").bias, torch.zeros(d_input))
    assert model.attention.w_o.weight.abs().max() <= 1 / math.sqrt(d_input)  # nn.Linear's default


def test_rotational_positions_rotate_a_unit_vector_from_0_to_180_degrees() -> None:
    basis = rotation_basis(5)
    angles = torch.tensor([0.0, 45.0, 90.0, 135.0, 180.0]) * math.pi / 180
    torch.testing.assert_close(basis, torch.stack([-torch.sin(angles), torch.cos(angles)], -1))
    torch.testing.assert_close(basis.norm(dim=-1), torch.ones(5))
    assert torch.equal(rotation_basis(1), torch.tensor([[-0.0, 1.0]]))
    model = build_model(tiny(), PARITY)
    backbone = model.features.backbone
    assert backbone.positional_embedding == "rotational" and not hasattr(backbone, "positions")
    table = backbone.position_table()
    torch.testing.assert_close(table, basis @ backbone.rotation.weight.t() + backbone.rotation.bias)


def test_positional_embedding_gene_chooses_the_table() -> None:
    learned = build_model(tiny(positional_embedding="learned"), PARITY).features.backbone
    assert learned.position_table().shape == (5, 16) and isinstance(learned.positions, nn.Parameter)
    conv = TaskShape(name="c", backbone=BackboneSpec(kind="conv", n_tokens=16, in_channels=1, height=4, width=4,
                                                     conv_layers=1), out_positions=1, out_classes=2)
    for positions in ("rotational", "learned"):  # image inputs keep their fixed 2-D positions
        model = build_model(tiny(positional_embedding=positions), conv)
        assert model.spec.positional_embedding == "sinusoidal-2d"
        assert not hasattr(model.features.backbone, "rotation")

"""Neuron-level models (NLMs): every neuron d has its own MLP over its own pre-activation history A_d ∈ R^M.

All D neurons run as one batched matrix product over the neuron dimension (``torch.bmm`` with the neuron as
the batch), never a Python loop over neurons. The history is kept neuron-major, A ∈ R^{D×B×M}, so no
transposes are needed per tick. Weights of layer ℓ are stored as [D, n_in, n_out] (neuron d's matrix is
``weight[d]``; the reference's [n_in, n_out, D] layout transposed, same count); biases [D, n_out]; each
layer's output is divided by its own learnable scalar temperature (initialised to 1), as in the reference.

depth 1: z_d = GLU((A_d W_d + b_d) / τ)  with W_d ∈ R^{M×2}
depth 2: h_d = GLU((A_d W1_d + b1_d) / τ1) ∈ R^H,  z_d = GLU((h_d W2_d + b2_d) / τ2)
The division by τ is applied to W and b once per forward ((xW + b)/τ = x(W/τ) + b/τ), not to every tick's
output.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class NeuronLinear(nn.Module):
    """D independent linear maps, one per neuron: [D, B, n_in] → [D, B, n_out]."""

    def __init__(self, n_neurons: int, n_in: int, n_out: int):
        super().__init__()
        bound = 1.0 / math.sqrt(n_in + n_out)
        self.weight = nn.Parameter(torch.empty(n_neurons, n_in, n_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(n_neurons, 1, n_out))
        self.temperature = nn.Parameter(torch.ones(1))

    def scaled(self) -> tuple[Tensor, Tensor]:
        """(W / τ, b / τ): dividing the weights once per forward equals dividing every tick's output by τ."""
        return self.weight / self.temperature, self.bias / self.temperature

    def forward(self, x: Tensor, scaled: tuple[Tensor, Tensor] | None = None) -> Tensor:
        weight, bias = scaled if scaled is not None else self.scaled()
        return torch.baddbmm(bias, x, weight)


class NeuronLevelModels(nn.Module):
    """z_t = NLM(A_t): history [D, B, M] → post-activations [D, B]."""

    def __init__(self, *, d_model: int, memory_length: int, depth: int, hidden: int, dropout: float):
        super().__init__()
        if depth not in (1, 2):
            raise ValueError(f"nlm_depth = {depth!r}: allowed is one of [1, 2]")
        self.dropout = nn.Dropout(dropout)
        if depth == 1:
            self.layers = nn.ModuleList([NeuronLinear(d_model, memory_length, 2)])
        else:
            self.layers = nn.ModuleList([NeuronLinear(d_model, memory_length, 2 * hidden),
                                         NeuronLinear(d_model, hidden, 2)])

    def prepare(self) -> list[tuple[Tensor, Tensor]]:
        """Per-forward constants (temperature-scaled weights), computed once before the tick loop."""
        return [layer.scaled() for layer in self.layers]

    def forward(self, history: Tensor, prepared: list[tuple[Tensor, Tensor]] | None = None) -> Tensor:
        prepared = prepared if prepared is not None else self.prepare()
        h = self.dropout(history)
        for layer, scaled in zip(self.layers, prepared, strict=True):
            h = F.glu(layer(h, scaled), dim=-1)
        return h.squeeze(-1)

"""Neuron-level models (NLMs): every neuron d has its own MLP over its own pre-activation history A_d ∈ R^M.

All D neurons run as one batched matrix product with the neuron as the batch dimension (``torch.baddbmm``),
never a Python loop over neurons. Layout, chosen for speed: the history is neuron-major and time before batch,
A ∈ R^{D×M×B}; layer ℓ's weights are stored as [D, n_out, n_in] (neuron d's matrix is ``weight[d]``, in
``nn.Linear``'s [out, in] convention; the same count as the reference's [n_in, n_out, D]), biases [D, n_out, 1],
so each layer gives [D, n_out, B] and its GLU splits along dim 1 into two halves whose B·n_out/2 elements are
contiguous (several times faster than splitting the last dimension). Each layer's output is divided by its own
learnable scalar temperature τ (initialised to 1), and dropout (``dropout_nlm``) acts on each layer's input,
as in the reference:

depth 1: z_d = GLU((W_d Drop(A_d) + b_d) / τ)  with W_d ∈ R^{2×M}
depth 2: h_d = GLU((W1_d Drop(A_d) + b1_d) / τ1) ∈ R^H,  z_d = GLU((W2_d Drop(h_d) + b2_d) / τ2)

The division by τ is applied to W and b once per forward ((Wx + b)/τ = (W/τ)x + b/τ), not to every tick.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class NeuronLinear(nn.Module):
    """D independent linear maps, one per neuron: [D, n_in, B] → [D, n_out, B]."""

    def __init__(self, n_neurons: int, n_in: int, n_out: int):
        super().__init__()
        bound = 1.0 / math.sqrt(n_in + n_out)
        self.weight = nn.Parameter(torch.empty(n_neurons, n_out, n_in).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(n_neurons, n_out, 1))
        self.temperature = nn.Parameter(torch.ones(1))

    def scaled(self) -> tuple[Tensor, Tensor]:
        """(W / τ, b / τ), computed once per forward."""
        return self.weight / self.temperature, self.bias / self.temperature

    def forward(self, x: Tensor, scaled: tuple[Tensor, Tensor] | None = None) -> Tensor:
        weight, bias = scaled if scaled is not None else self.scaled()
        return torch.baddbmm(bias, weight, x)


class NeuronLevelModels(nn.Module):
    """z_t = NLM(A_t): history [D, M, B] → post-activations [D, B]."""

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
        h = history
        for layer, scaled in zip(self.layers, prepared, strict=True):
            h = F.glu(layer(self.dropout(h), scaled), dim=1)
        return h.squeeze(1)

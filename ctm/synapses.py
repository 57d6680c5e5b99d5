"""Synapses: the shared model that mixes attention output o and last post-activations z into pre-activations.

a_t = Synapse(concat(o_t, z_{t-1})) ∈ R^D. Depth 1: Dropout, Linear(D_in + D → 2D), GLU, LayerNorm(D).
Depth k > 1: a U-Net MLP over widths w_0 = D > w_1 > ... > w_{k-1} (``genome.cost.synapse_widths``):
first Linear(D_in + D → w_0), LayerNorm, SiLU; k-1 down levels (Dropout, Linear, LayerNorm, SiLU); k-1 up
levels (Dropout, Linear, LayerNorm, SiLU) each followed by adding the matching down activation and LayerNorm.
"""

from __future__ import annotations

import itertools

from torch import Tensor, nn


class GLUSynapse(nn.Module):
    def __init__(self, d_in: int, d_model: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(d_in + d_model, 2 * d_model), nn.GLU(),
                                 nn.LayerNorm(d_model))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def _level(n_in: int, n_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(n_in, n_out), nn.LayerNorm(n_out), nn.SiLU())


class UNetSynapse(nn.Module):
    def __init__(self, d_in: int, widths: list[int], dropout: float):
        super().__init__()
        self.first = nn.Sequential(nn.Linear(d_in + widths[0], widths[0]), nn.LayerNorm(widths[0]), nn.SiLU())
        pairs = list(itertools.pairwise(widths))
        self.down = nn.ModuleList(_level(a, b, dropout) for a, b in pairs)
        self.up = nn.ModuleList(_level(b, a, dropout) for a, b in pairs)  # up[i]: widths[i+1] → widths[i]
        self.skip_norms = nn.ModuleList(nn.LayerNorm(a) for a, _ in pairs)

    def forward(self, x: Tensor) -> Tensor:
        downs = [self.first(x)]
        for layer in self.down:
            downs.append(layer(downs[-1]))
        h = downs[-1]
        for i in range(len(self.up) - 1, -1, -1):
            h = self.skip_norms[i](self.up[i](h) + downs[i])
        return h


def make_synapses(d_in: int, widths: list[int], dropout: float) -> nn.Module:
    """Depth 1 (``widths == [D]``) gives the GLU synapse; longer width lists give the U-Net."""
    if len(widths) == 1:
        return GLUSynapse(d_in, widths[0], dropout)
    return UNetSynapse(d_in, widths, dropout)

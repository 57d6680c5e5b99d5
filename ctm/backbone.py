"""Input features: kv = LayerNorm(Linear(backbone(x) + positions)) as tokens [B, N, D_in].

Backbone kinds follow ``genome.cost.BackboneSpec``:
- ``embedding``: x [B, N] integers in [0, vocab) → Embedding(vocab, D_in) + 1-D positions;
- ``scalar``: x [B, N] reals → Linear(1 → D_in) + 1-D positions;
- ``linear``: x [B, N, F] → Linear(F → D_in) + 1-D positions;
- ``conv``: x [B, C, H, W] → ``conv_layers`` × (Conv3×3, padding 1, first with ``stride``; GELU) to D_in
  channels, plus fixed 2-D sinusoidal positions (a buffer), flattened row-major to N = h·w tokens.

1-D positions (``positional_embedding`` gene): ``rotational``, the reference's parity embedding: position p of N
has the fixed unit vector u_p = R(θ_p)·(0, 1) = (−sin θ_p, cos θ_p) with θ_p = π·p/(N − 1) (0 to 180 degrees),
and its embedding is a learned ``Linear(2 → D_in)`` of u_p (3·D_in parameters, smooth in p); ``learned``, a free
table [N, D_in] (initialised N(0, 0.02²)).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from genome.cost import BackboneSpec


def rotation_basis(n: int) -> Tensor:
    """The fixed unit vectors u_p = (−sin θ_p, cos θ_p), θ_p = π·p/(n − 1), computed as the reference does
    (float32 ``deg2rad(linspace(0, 180, n))``) so that imported reference weights give the same embedding."""
    angles = torch.deg2rad(torch.linspace(0.0, 180.0, n))
    return torch.stack([-torch.sin(angles), torch.cos(angles)], dim=-1)


def sinusoidal_2d(height: int, width: int, channels: int) -> Tensor:
    """Fixed 2-D positions [channels, height, width]: half the channels encode the row, half the column."""
    half = channels // 2
    def encode(n: int, dims: int) -> Tensor:
        pos = torch.arange(n, dtype=torch.float32).unsqueeze(1)
        out = torch.zeros(n, dims)
        freqs = torch.exp(torch.arange(0, dims, 2, dtype=torch.float32) * (-math.log(10000.0) / max(dims, 1)))
        out[:, 0::2] = torch.sin(pos * freqs)
        out[:, 1::2] = torch.cos(pos * freqs[: dims // 2])
        return out
    rows = encode(height, half).T.unsqueeze(2).expand(half, height, width)
    cols = encode(width, channels - half).T.unsqueeze(1).expand(channels - half, height, width)
    return torch.cat([rows, cols], dim=0).contiguous()


class Backbone(nn.Module):
    """backbone(x) + positions → [B, N, D_in] (before the kv projection)."""

    def __init__(self, spec: BackboneSpec, d_input: int, positional_embedding: str = "rotational"):
        super().__init__()
        self.kind = spec.kind
        self.positional_embedding = "sinusoidal-2d" if spec.kind == "conv" else positional_embedding
        self.n_tokens = spec.n_tokens
        if spec.kind == "embedding":
            self.embed: nn.Module = nn.Embedding(spec.vocab, d_input)
        elif spec.kind == "scalar":
            self.embed = nn.Linear(1, d_input)
        elif spec.kind == "linear":
            self.embed = nn.Linear(spec.in_features, d_input)
        elif spec.kind == "conv":
            layers: list[nn.Module] = []
            channels = spec.in_channels
            for i in range(spec.conv_layers):
                layers += [nn.Conv2d(channels, d_input, 3, stride=spec.stride if i == 0 else 1, padding=1),
                           nn.GELU()]
                channels = d_input
            self.embed = nn.Sequential(*layers)
            h, w = spec.height, spec.width
            for i in range(spec.conv_layers):
                s = spec.stride if i == 0 else 1
                h, w = (h - 1) // s + 1, (w - 1) // s + 1
            if h * w != spec.n_tokens:
                raise ValueError(f"backbone.n_tokens = {spec.n_tokens}: the conv backbone gives {h}×{w} = "
                                 f"{h * w} tokens")
            self.register_buffer("positions_2d", sinusoidal_2d(h, w, d_input), persistent=False)
        else:
            raise ValueError(f"backbone.kind = {spec.kind!r}: allowed is one of embedding, scalar, linear, conv")
        if self.positional_embedding == "rotational":
            self.rotation = nn.Linear(2, d_input)
            self.register_buffer("rotation_basis", rotation_basis(spec.n_tokens), persistent=False)
        elif self.positional_embedding == "learned":
            self.positions = nn.Parameter(torch.randn(spec.n_tokens, d_input) * 0.02)
        elif spec.kind != "conv":
            raise ValueError(f"positional_embedding = {positional_embedding!r}: allowed is one of rotational, "
                             "learned")

    def position_table(self) -> Tensor:
        """The 1-D positions [N, D_in] (rotational: computed from the learned projection each forward)."""
        if self.positional_embedding == "rotational":
            return self.rotation(self.rotation_basis)
        return self.positions

    def forward(self, x: Tensor) -> Tensor:
        if self.kind == "conv":
            feats = self.embed(x)
            feats = feats + self.positions_2d.to(feats.dtype)
            return feats.flatten(2).transpose(1, 2)
        if self.kind == "scalar":
            x = x.unsqueeze(-1)
        return self.embed(x) + self.position_table()


class FeatureProjection(nn.Module):
    """The full feature path: kv = LayerNorm(Linear(backbone(x) + positions))."""

    def __init__(self, spec: BackboneSpec, d_input: int, positional_embedding: str = "rotational"):
        super().__init__()
        self.backbone = Backbone(spec, d_input, positional_embedding)
        self.proj = nn.Linear(d_input, d_input)
        self.norm = nn.LayerNorm(d_input)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.proj(self.backbone(x)))

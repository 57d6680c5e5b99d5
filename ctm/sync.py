"""Recursive decayed synchronisation S over selected neuron pairs.

For pair k = (i_k, j_k) with decay rate r_k = exp(-θ_k), θ_k clamped to [0, decay_clamp]:

    α_1 = z_i(1) z_j(1),   β_1 = 1,   α_t = r α_{t-1} + z_i(t) z_j(t),   β_t = r β_{t-1} + 1,   S_t = α_t / √β_t

which equals Σ_{τ≤t} r^{t-τ} z_i(τ) z_j(τ) / √(Σ_{τ≤t} r^{t-τ}). Only the selected pairs are computed (O(#pairs)
per tick). θ is a parameter when learned, else a buffer; the clamp is applied functionally in :meth:`rates`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn


def initial_theta(init: str, n_pairs: int, init_max: float, rng: np.random.Generator) -> np.ndarray:
    """θ at build time. ``zeros``: no decay; ``spread``: rates r_k linearly spaced in [exp(-init_max), 1] across
    pairs (θ_k = -log r_k); ``random``: θ uniform in [0, init_max]."""
    if init == "zeros":
        return np.zeros(n_pairs)
    if init == "spread":
        rates = np.linspace(math.exp(-init_max), 1.0, n_pairs) if n_pairs > 1 else np.ones(n_pairs)
        return np.maximum(-np.log(rates), 0.0)
    if init == "random":
        return rng.uniform(0.0, init_max, size=n_pairs)
    raise ValueError(f"decay_init = {init!r}: allowed is one of ['zeros', 'spread', 'random']")


class Synchronisation(nn.Module):
    """One synchronisation (output or action): fixed pairs (buffers ``left``, ``right``) and decays θ."""

    def __init__(self, *, left: np.ndarray, right: np.ndarray, theta: np.ndarray, learned: bool,
                 clamp: float):
        super().__init__()
        self.register_buffer("left", torch.as_tensor(left, dtype=torch.long))
        self.register_buffer("right", torch.as_tensor(right, dtype=torch.long))
        theta_t = torch.as_tensor(theta, dtype=torch.float32)
        if learned:
            self.theta = nn.Parameter(theta_t)
        else:
            self.register_buffer("theta", theta_t)
        self.clamp = float(clamp)

    @property
    def size(self) -> int:
        return int(self.left.numel())

    def rates(self) -> Tensor:
        """r = exp(-clamp(θ, 0, decay_clamp)), computed without editing θ."""
        return torch.exp(-self.theta.clamp(0.0, self.clamp))

    def products(self, z: Tensor) -> Tensor:
        """z_i z_j for every selected pair: [B, D] → [B, P] (float32 for an accurate running sum)."""
        return (z.index_select(-1, self.left) * z.index_select(-1, self.right)).float()

    @staticmethod
    def step(alpha: Tensor | None, beta: Tensor | None, products: Tensor, r: Tensor) -> tuple[Tensor, Tensor]:
        """One recursion step; ``alpha is None`` starts the sums (α = z_i z_j, β = 1)."""
        if alpha is None or beta is None:
            return products, torch.ones_like(r)
        return r * alpha + products, r * beta + 1.0

    @staticmethod
    def read(alpha: Tensor, beta: Tensor) -> Tensor:
        """S = α / √β."""
        return alpha * torch.rsqrt(beta)

    @torch.no_grad()
    def project_(self) -> None:
        """Keep a learned θ inside [0, decay_clamp] after an optimizer step (outside forward), so its gradient
        never dies below 0; the forward clamp alone already bounds the rates."""
        if isinstance(self.theta, nn.Parameter):
            self.theta.clamp_(0.0, self.clamp)


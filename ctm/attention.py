"""Multi-head attention with one query token per tick over the input tokens kv, as PyTorch's
``nn.MultiheadAttention`` computes it (the reference's attention), with its three input projections kept apart.

Parameters W_q, W_k, W_v, W_o are four Linear(D_in → D_in) maps. Keys and values depend only on the input,
so :meth:`keys_values` runs once per forward; :meth:`forward` runs per tick with the query q_t ∈ R^{D_in}
(from S_action, or a learned vector when n_action = 0) and returns o_t = W_o · Σ_n Dropout(softmax(q·K_nᵀ/√d))·V_n
per head: dropout acts on the attention weights (as ``nn.MultiheadAttention(dropout=p)``), not on o_t.

Initialisation as ``nn.MultiheadAttention``: W_q, W_k, W_v are the three row blocks of one Xavier-uniform
[3·D_in, D_in] matrix, i.e. each uniform in ±√(6 / (D_in + 3·D_in)), with zero biases; W_o keeps ``nn.Linear``'s
default weights and gets a zero bias.

The two products (scores and the weighted sum of V) are written out rather than calling
``scaled_dot_product_attention``: with a single query token there is nothing for a fused kernel to save,
the weights are needed for tracking, and ``torch.utils.flop_counter`` counts plain matmuls on every device.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class TickAttention(nn.Module):
    def __init__(self, d_input: int, heads: int, dropout: float):
        super().__init__()
        if d_input % heads:
            raise ValueError(f"heads = {heads}: allowed is a divisor of d_input = {d_input}")
        self.heads = heads
        self.head_dim = d_input // heads
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.w_q = nn.Linear(d_input, d_input)
        self.w_k = nn.Linear(d_input, d_input)
        self.w_v = nn.Linear(d_input, d_input)
        self.w_o = nn.Linear(d_input, d_input)
        self.dropout = nn.Dropout(dropout)
        bound = math.sqrt(6.0 / (d_input + 3 * d_input))  # Xavier-uniform of the stacked [3·D_in, D_in] matrix
        with torch.no_grad():
            for projection in (self.w_q, self.w_k, self.w_v):
                projection.weight.uniform_(-bound, bound)
                projection.bias.zero_()
            self.w_o.bias.zero_()

    def _split(self, x: Tensor) -> Tensor:  # [B, N, D_in] → [B, heads, N, head_dim]
        b, n, _ = x.shape
        return x.view(b, n, self.heads, self.head_dim).transpose(1, 2)

    def keys_values(self, kv: Tensor) -> tuple[Tensor, Tensor]:
        """Kᵀ [B, heads, head_dim, N] and V [B, heads, N, head_dim] for the tokens kv [B, N, D_in], made
        contiguous once here so that no tick copies them again."""
        keys_t = self._split(self.w_k(kv)).transpose(-1, -2).contiguous()
        return keys_t, self._split(self.w_v(kv)).contiguous()

    def forward(self, query: Tensor, keys_t: Tensor, values: Tensor, *, return_weights: bool = False
                ) -> tuple[Tensor, Tensor | None]:
        """query [B, D_in] (or [D_in], broadcast) → (o [B, D_in], attention weights [B, heads, N] or None).

        The returned weights are the softmax before dropout (what the model attends to)."""
        b = keys_t.shape[0]
        q = self.w_q(query).expand(b, -1).reshape(b, self.heads, 1, self.head_dim)
        scores = (q * self.scale) @ keys_t  # [B, heads, 1, N]
        weights = torch.softmax(scores.float(), dim=-1).to(values.dtype)
        out = self.dropout(weights) @ values  # [B, heads, 1, head_dim]
        o = self.w_o(out.reshape(b, -1))
        return o, (weights.squeeze(2) if return_weights else None)

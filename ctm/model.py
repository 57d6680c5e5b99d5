"""The Continuous Thought Machine, built exactly to a ``genome.cost.ModelSpec``.

Per forward (input x, T ticks; see ``../shared/ctm-reference.md``):
    kv = LayerNorm(Linear(backbone(x) + positions));  K, V = W_k kv, W_v kv (once)
    (positions: rotational, learned or 2-D sinusoidal, see ``ctm.backbone``)
    A_0 (start trace, [D, M]) and z_0 (start post-activation, [D]) are learned.
    S_out is seeded with z_0; for t = 1..T:
        S_action(t) from z_0..z_{t-1};  q_t = W_S S_action(t) (or a learned vector when n_action = 0)
        o_t = MHA(q_t, K, V);  a_t = Synapses([o_t, z_{t-1}]);  A_t = FIFO(A_{t-1}, a_t)  (last M a's)
        z_t = NLM(A_t);  S_out(t) from z_0..z_t;  y_t = W_out S_out(t);  c_t = 1 − H(softmax y_t)/log C
Returns predictions [B, out_dim, T] and certainties [B, 2, T] ((1 − c_t, c_t) as the reference stores them).

A stepped task (``TaskShape.steps`` = S > 1, e.g. the partially observed maze) feeds one observation per step:
x [B, S, ...], kv_s from observation s alone, and the loop above runs T ticks per step with A, z and the
synchronisation sums carried over, so step s's answer (W_out [C, P_out], one position of C classes) depends on
observations 1..s only. Predictions are then [B, S·C, T]: position s holds step s's T ticks. ``act`` runs one
step at a time for a closed-loop rollout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ctm.attention import TickAttention
from ctm.backbone import FeatureProjection
from ctm.loss import certainties_from
from ctm.nlm import NeuronLevelModels
from ctm.pairs import select_pairs
from ctm.synapses import make_synapses
from ctm.sync import Synchronisation, initial_theta
from genome.cost import ModelSpec


@dataclass
class TickState:
    """What the tick loop carries from one tick to the next: the pre-activation history A [D, M, B], the
    post-activations z [B, D] and the running sums (α, β) of both synchronisations (action: ``None`` before the
    first tick or when n_action = 0)."""

    history: Tensor
    z: Tensor
    alpha_out: Tensor
    beta_out: Tensor
    alpha_act: Tensor | None = None
    beta_act: Tensor | None = None


@dataclass
class Trace:
    """Per-tick internals from ``forward(x, track=True)``, all detached, tick-major.

    pre [T, B, D] (a_t), post [T, B, D] (z_t), sync_out [T, B, P_out], sync_action [T, B, P_action] (empty
    when n_action = 0), attention [T, B, heads, N] (each head's weights over the N input tokens).
    """

    pre: Tensor
    post: Tensor
    sync_out: Tensor
    sync_action: Tensor
    attention: Tensor


class CTM(nn.Module):
    """A CTM for one task. ``seed`` fixes the synchronisation pairs and a ``random`` decay initialisation."""

    def __init__(self, spec: ModelSpec, *, seed: int = 0):
        super().__init__()
        if spec.task.out_classes < 2:
            raise ValueError(f"task.out_classes = {spec.task.out_classes}: allowed is at least 2")
        self.spec = spec
        d, m, d_in = spec.d_model, spec.memory_length, spec.d_input
        self.ticks = spec.ticks
        self.out_positions, self.out_classes = spec.task.out_positions, spec.task.out_classes
        rng = np.random.default_rng(seed)

        self.features = FeatureProjection(spec.task.backbone, d_in, spec.positional_embedding)
        self.start_trace = nn.Parameter(torch.empty(d, m).uniform_(-math.sqrt(1 / (d + m)),
                                                                   math.sqrt(1 / (d + m))))
        self.start_state = nn.Parameter(torch.empty(d).uniform_(-math.sqrt(1 / d), math.sqrt(1 / d)))
        self.attention = TickAttention(d_in, spec.heads, spec.dropout)
        self.synapses = make_synapses(d_in, spec.synapse_widths, spec.dropout)
        self.nlm = NeuronLevelModels(d_model=d, memory_length=m, depth=spec.nlm_depth, hidden=spec.nlm_hidden,
                                     dropout=spec.dropout_nlm)
        self.sync_out = self._sync(spec.n_sync_out, "out", rng)
        self.sync_action = self._sync(spec.n_sync_action, "action", rng) if spec.n_sync_action > 0 else None
        self.query: nn.Module | nn.Parameter
        if self.sync_action is not None:
            self.query = nn.Linear(self.sync_action.size, d_in)
        else:
            self.query = nn.Parameter(torch.randn(d_in) / math.sqrt(d_in))
        self.steps = spec.task.steps
        self.output = nn.Linear(self.sync_out.size, spec.out_dim if self.steps == 1 else spec.task.out_classes)

    def _sync(self, n: int, role: str, rng: np.random.Generator) -> Synchronisation:
        s = self.spec
        left, right = select_pairs(s.sync_select, s.d_model, n, role=role, n_self=s.n_self_pairs, rng=rng)
        theta = initial_theta(s.decay_init, len(left), s.decay_init_max, rng)
        return Synchronisation(left=left, right=right, theta=theta, learned=s.decay_learned,
                               clamp=s.decay_clamp)

    def project_(self) -> None:
        """Projection after an optimizer step: keep learned decays θ in [0, decay_clamp]."""
        self.sync_out.project_()
        if self.sync_action is not None:
            self.sync_action.project_()

    def start(self, batch: int) -> TickState:
        """The state before the first tick: A_0 and z_0 (learned) for every sample, S seeded with z_0."""
        d, m = self.spec.d_model, self.spec.memory_length
        z = self.start_state.unsqueeze(0).expand(batch, d)
        alpha_out, beta_out = Synchronisation.step(None, None, self.sync_out.products(z),
                                                   self.sync_out.rates())
        return TickState(history=self.start_trace.unsqueeze(-1).expand(d, m, batch), z=z,
                         alpha_out=alpha_out, beta_out=beta_out)

    def think(self, state: TickState, kv: Tensor, *, track: bool = False, nlm_weights: Any = None
              ) -> tuple[Tensor, TickState, dict[str, list[Tensor]]]:
        """T ticks attending to the tokens kv [B, N, D_in], from ``state``: the one per-tick loop.

        Returns the T output synchronisations S_out(t) stacked [T, B, P_out], the state after tick T, and (with
        ``track``) the per-tick internals. A task with several observation steps calls this once per step,
        carrying the state: the CTM keeps thinking where it stopped, now attending to the new observation.
        """
        keys_t, values = self.attention.keys_values(kv)
        batch = kv.shape[0]
        act = self.sync_action
        r_out = self.sync_out.rates()
        r_act = act.rates() if act is not None else None
        if nlm_weights is None:
            nlm_weights = self.nlm.prepare()
        if act is None:
            assert isinstance(self.query, nn.Parameter)
            o_fixed, w_fixed = self.attention(self.query, keys_t, values, return_weights=track)
        history, z = state.history, state.z
        alpha_out, beta_out, alpha_act, beta_act = state.alpha_out, state.beta_out, state.alpha_act, state.beta_act
        sync_outs: list[Tensor] = []
        rec: dict[str, list[Tensor]] = {"pre": [], "post": [], "sync_out": [], "sync_action": [], "att": []}
        for _ in range(self.ticks):
            if act is not None:
                alpha_act, beta_act = Synchronisation.step(alpha_act, beta_act, act.products(z), r_act)
                s_act = Synchronisation.read(alpha_act, beta_act)
                o, weights = self.attention(self.query(s_act), keys_t, values, return_weights=track)
            else:
                o, weights = o_fixed, w_fixed
            a = self.synapses(torch.cat([o, z.to(o.dtype)], dim=-1))
            history = torch.cat([history[:, 1:], a.t().unsqueeze(1)], dim=1)  # FIFO: drop oldest, append a_t
            z = self.nlm(history, nlm_weights).t()
            alpha_out, beta_out = Synchronisation.step(alpha_out, beta_out, self.sync_out.products(z), r_out)
            s_out = Synchronisation.read(alpha_out, beta_out)
            sync_outs.append(s_out)
            if track:
                rec["pre"].append(a.detach())
                rec["post"].append(z.detach())
                rec["sync_out"].append(s_out.detach())
                rec["sync_action"].append(s_act.detach() if act is not None else kv.new_zeros(batch, 0))
                rec["att"].append(weights.detach())
        after = TickState(history=history, z=z, alpha_out=alpha_out, beta_out=beta_out, alpha_act=alpha_act,
                          beta_act=beta_act)
        return torch.stack(sync_outs), after, rec

    def act(self, state: TickState, observation: Tensor) -> tuple[Tensor, Tensor, TickState]:
        """One observation step of a stepped task (closed loop): observation [B, ...] (one step of the task's
        input) → (predictions [B, C, T], certainties [B, 2, T], the state to carry to the next step)."""
        sync_outs, after, _ = self.think(state, self.features(observation))
        predictions = self.output(sync_outs).permute(1, 2, 0)
        return predictions, certainties_from(predictions, 1, self.out_classes), after

    def forward(self, x: Tensor, track: bool = False) -> tuple[Tensor, Tensor] | tuple[Tensor, Tensor, Trace]:
        batch = x.shape[0]
        state = self.start(batch)
        nlm_weights = self.nlm.prepare()
        if self.steps == 1:
            sync_outs, _, rec = self.think(state, self.features(x), track=track, nlm_weights=nlm_weights)
            # y_t = W_out S_out(t) for all ticks in one product (S_out does not feed back into the loop)
            predictions = self.output(sync_outs).permute(1, 2, 0)  # [B, out_dim, T]
        else:  # x [B, S, ...]: observation s is attended to during ticks s·T+1 .. (s+1)·T
            kv = self.features(x.flatten(0, 1)).unflatten(0, (batch, self.steps))
            per_step, rec = [], {}
            for s in range(self.steps):
                sync_outs, state, rec_s = self.think(state, kv[:, s], track=track, nlm_weights=nlm_weights)
                per_step.append(self.output(sync_outs).permute(1, 2, 0))  # [B, C, T]: this step's answer
                for key, values in rec_s.items():
                    rec.setdefault(key, []).extend(values)
            predictions = torch.cat(per_step, dim=1)  # [B, S·C, T]: position s is step s's answer
        certainties = certainties_from(predictions, self.out_positions, self.out_classes)
        if not track:
            return predictions, certainties
        trace = Trace(pre=torch.stack(rec["pre"]), post=torch.stack(rec["post"]),
                      sync_out=torch.stack(rec["sync_out"]), sync_action=torch.stack(rec["sync_action"]),
                      attention=torch.stack(rec["att"]))
        return predictions, certainties, trace


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (what ``genome.cost.estimate(...).params`` predicts)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

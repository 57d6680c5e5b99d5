"""State dicts of the reference CTM (SakanaAI/continuous-thought-machines, ``models/ctm.py``) ⇄ ctmevo's.

The two models compute the same function on equal weights; only names and layouts differ (reference → ctmevo):

- ``backbone.embedding.weight`` [2, D_in], row (x == +1) → ``features.backbone.embed.weight``, row = ctmevo's
  parity token (x == −1): the two rows swap;
- ``positional_embedding.projection`` (Linear 2 → D_in) → ``features.backbone.rotation``;
- ``kv_proj.0`` / ``kv_proj.1`` → ``features.proj`` / ``features.norm``;
- ``attention.in_proj_weight`` [3·D_in, D_in] and ``in_proj_bias`` (q, k, v stacked) → ``attention.w_q``,
  ``w_k``, ``w_v``; ``attention.out_proj`` → ``attention.w_o``;
- ``q_proj``, ``output_projector.0`` → ``query``, ``output``;
- synapses, depth 1: ``synapses.1`` / ``synapses.3`` → ``synapses.net.1`` / ``synapses.net.3``; U-Net:
  ``first_projection``, ``down_projections``, ``up_projections``, ``skip_lns`` → ``first``, ``down``, ``up``,
  ``skip_norms``;
- NLMs: ``trace_processor.0.{0,2}.w1`` [M, out, D], ``b1`` [1, D, out], ``T`` → ``nlm.layers.{0,1}.weight``
  [D, out, M], ``bias`` [D, out, 1], ``temperature`` (kept as a parameter, not folded into the weights);
- ``start_activated_state``, ``start_trace`` → ``start_state``, ``start_trace``;
- ``{out,action}_neuron_indices_{left,right}`` (n neurons each; first-last and random pair the upper triangle
  (a <= b) of left × right) → ``sync_{out,action}.left`` / ``.right`` (explicit pairs, in the same order);
- ``decay_params_{out,action}`` → ``sync_{out,action}.theta``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from genome.cost import ModelSpec


class ReferenceFormatError(ValueError):
    """A reference checkpoint (or a ctmevo model) that cannot be mapped; the message names what and why."""


def _names(spec: ModelSpec) -> list[tuple[str, str]]:
    """(ctmevo name, reference name) of every tensor copied as it is."""
    names = [("start_trace", "start_trace"), ("start_state", "start_activated_state"),
             ("features.backbone.rotation.weight", "positional_embedding.projection.weight"),
             ("features.backbone.rotation.bias", "positional_embedding.projection.bias"),
             ("attention.w_o.weight", "attention.out_proj.weight"), ("attention.w_o.bias", "attention.out_proj.bias"),
             ("query.weight", "q_proj.weight"), ("query.bias", "q_proj.bias"),
             ("output.weight", "output_projector.0.weight"), ("output.bias", "output_projector.0.bias"),
             ("sync_out.theta", "decay_params_out"), ("sync_action.theta", "decay_params_action")]
    for ours, ref in (("features.proj", "kv_proj.0"), ("features.norm", "kv_proj.1")):
        names += [(f"{ours}.weight", f"{ref}.weight"), (f"{ours}.bias", f"{ref}.bias")]
    if len(spec.synapse_widths) == 1:
        layers = [("synapses.net.1", "synapses.1"), ("synapses.net.3", "synapses.3")]
    else:
        layers = [("synapses.first.0", "synapses.first_projection.0"),
                  ("synapses.first.1", "synapses.first_projection.1")]
        for i in range(len(spec.synapse_widths) - 1):
            layers += [(f"synapses.{ours}.{i}.{k}", f"synapses.{ref}.{i}.{k}")
                       for ours, ref in (("down", "down_projections"), ("up", "up_projections")) for k in (1, 2)]
            layers.append((f"synapses.skip_norms.{i}", f"synapses.skip_lns.{i}"))
    names += [(f"{ours}.{p}", f"{ref}.{p}") for ours, ref in layers for p in ("weight", "bias")]
    return names


def _nlm_names(spec: ModelSpec) -> list[tuple[str, str]]:
    """(ctmevo layer prefix, reference layer prefix) of the neuron-level models."""
    return [(f"nlm.layers.{i}", f"trace_processor.0.{2 * i}") for i in range(spec.nlm_depth)]


def _check_spec(spec: ModelSpec) -> None:
    backbone = spec.task.backbone
    if backbone.kind != "embedding" or backbone.vocab != 2 or spec.task.out_classes != 2:
        raise ReferenceFormatError(f"task {spec.task.name!r}: only parity models (a 2-token embedding backbone and "
                                   "2 classes, the reference's parity_backbone) map onto the reference")
    if spec.positional_embedding != "rotational":
        raise ReferenceFormatError(f"positional_embedding = {spec.positional_embedding!r}: the reference's parity "
                                   "model has rotational positions ('custom-rotational-1d'); allowed is 'rotational'")
    if spec.n_sync_action == 0:
        raise ReferenceFormatError("n_sync_action = 0: the reference always synchronises for the attention query; "
                                   "allowed is at least 1")


def _expand_pairs(left: Tensor, right: Tensor, select: str) -> tuple[Tensor, Tensor]:
    """Reference index buffers → explicit pairs: first-last and random pair the upper triangle (i <= j)."""
    if select == "random-pairing":
        return left.long(), right.long()
    n = left.numel()
    i, j = torch.triu_indices(n, n)
    return left.long()[i], right.long()[j]


def _collapse_pairs(left: Tensor, right: Tensor, select: str, n: int, role: str) -> tuple[Tensor, Tensor]:
    """Explicit pairs → the reference's n left and n right neurons (the inverse of :func:`_expand_pairs`)."""
    if select == "random-pairing":
        return left.clone(), right.clone()
    i, j = torch.triu_indices(n, n)
    lefts, rights = left[(i == j)], right[:n]  # the diagonal holds (L[a], R[a]); row 0 holds R[0..n-1]
    if not (torch.equal(lefts[i], left) and torch.equal(rights[j], right)):
        raise ReferenceFormatError(f"sync_{role} pairs are not the upper triangle of n = {n} left and right neurons, "
                                   f"which the reference's {select!r} selection needs")
    return lefts, rights


def to_ctmevo(reference: Mapping[str, Tensor], spec: ModelSpec) -> dict[str, Tensor]:
    """ctmevo's state dict for the model of ``spec`` from a reference state dict (checked: every expected tensor
    present, nothing else)."""
    _check_spec(spec)
    ref = dict(reference)
    expected = {r for _, r in _names(spec)} | {f"{r}.{p}" for _, r in _nlm_names(spec) for p in ("w1", "b1", "T")}
    expected |= {"backbone.embedding.weight", "attention.in_proj_weight", "attention.in_proj_bias"}
    expected |= {f"{role}_neuron_indices_{side}" for role in ("out", "action") for side in ("left", "right")}
    missing, unexpected = sorted(expected - set(ref)), sorted(set(ref) - expected)
    if missing or unexpected:
        raise ReferenceFormatError(f"the reference state dict does not fit its config (missing {missing[:6]}, "
                                   f"unexpected {unexpected[:6]})")
    out = {ours: ref[r] for ours, r in _names(spec)}
    out["features.backbone.embed.weight"] = ref["backbone.embedding.weight"].flip(0)
    for part, weight, bias in zip("qkv", ref["attention.in_proj_weight"].chunk(3),
                                  ref["attention.in_proj_bias"].chunk(3), strict=True):
        out[f"attention.w_{part}.weight"], out[f"attention.w_{part}.bias"] = weight, bias
    for ours, r in _nlm_names(spec):
        out[f"{ours}.weight"] = ref[f"{r}.w1"].permute(2, 1, 0)
        out[f"{ours}.bias"] = ref[f"{r}.b1"][0].unsqueeze(-1)
        out[f"{ours}.temperature"] = ref[f"{r}.T"]
    for role in ("out", "action"):
        left, right = _expand_pairs(ref[f"{role}_neuron_indices_left"], ref[f"{role}_neuron_indices_right"],
                                    spec.sync_select)
        out[f"sync_{role}.left"], out[f"sync_{role}.right"] = left, right
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in out.items()}


def to_reference(state: Mapping[str, Tensor], spec: ModelSpec) -> dict[str, Tensor]:
    """The reference's state dict for a ctmevo parity model (the inverse of :func:`to_ctmevo`)."""
    _check_spec(spec)
    ours = dict(state)
    out = {r: ours[o] for o, r in _names(spec)}
    out["backbone.embedding.weight"] = ours["features.backbone.embed.weight"].flip(0)
    out["attention.in_proj_weight"] = torch.cat([ours[f"attention.w_{p}.weight"] for p in "qkv"])
    out["attention.in_proj_bias"] = torch.cat([ours[f"attention.w_{p}.bias"] for p in "qkv"])
    for o, r in _nlm_names(spec):
        out[f"{r}.w1"] = ours[f"{o}.weight"].permute(2, 1, 0)
        out[f"{r}.b1"] = ours[f"{o}.bias"].squeeze(-1).unsqueeze(0)
        out[f"{r}.T"] = ours[f"{o}.temperature"]
    for role, n in (("out", spec.n_sync_out), ("action", spec.n_sync_action)):
        left, right = _collapse_pairs(ours[f"sync_{role}.left"], ours[f"sync_{role}.right"], spec.sync_select, n,
                                      role)
        out[f"{role}_neuron_indices_left"], out[f"{role}_neuron_indices_right"] = left, right
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in out.items()}

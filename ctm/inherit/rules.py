"""Gene-by-gene mapping rules: how each axis of the CTM's tensors maps from parent to child.

Axes (paper symbols; see ``ctm/model.py``):

- T (ticks): no parameter. A child differing only in T gets the parent's weights unchanged and computes the
  parent's outputs for the first min(T_parent, T_child) ticks (the tick loop is causal).
- M (memory_length): the memory axis of the NLM first layer [D, ·, M] and of the start trace A0 [D, M] (oldest
  entry first, newest last). Truncation keeps the most recent M entries. Padding adds entries on the oldest side:
  NLM weights there are zero, which preserves the function exactly (the padded history slots, whatever they
  hold, are multiplied by zero; and the kept slots shift through the FIFO exactly as in the parent); the padded
  A0 columns keep the child's own init (they only ever meet those zero weights).
- H (nlm_hidden, depth 2): widening keeps every hidden unit, gives new units fresh incoming weights (layer 1,
  both GLU halves) and zero outgoing weights (layer 2): exact for every widening, and the new units learn at
  once (their outgoing weights get a gradient from the first step). Narrowing keeps the first H units.
- D (d_model): the synapse output passes a LayerNorm over all D neurons, so new neurons change every neuron's
  normalisation unless they leave the mean and variance alone. That holds for uniform replication: when
  D_child = k·D_parent and both synapses are the depth-1 GLU synapse, neuron j copies neuron j mod D_parent
  (start state z0, start trace A0, synapse rows in both GLU halves, LayerNorm affine, its whole NLM), and the
  synapse columns reading z are split among the copies with random positive shares summing to one (Net2Net):
  exact. Otherwise (other widenings, U-Net synapses, narrowing): the first min(D) neurons are copied, new ones
  keep the child's init; not function-preserving.
- D_in (d_input): LayerNorm over D_in on the input features, and attention heads. When D_in_child = k·D_in_parent
  with the same number of heads and a backbone with learned positions (not ``conv``, whose fixed sinusoidal
  positions depend on D_in), dimension j of head h copies the head's dimensions k times in order, every matrix
  reading D_in is split among copies, and the query rows W_q are scaled by 1/√k (the head width, and so the
  1/√d_head score scale and the sum in q·k, both grow k times): exact. Otherwise the first min(D_in)
  dimensions are copied.
- heads: no shape change; weights are copied, not function-preserving (the head split changes).
- synapse_depth and anything else: copied by name where the shape matches, overlap-copied where the rank
  matches, else the child's init (``ctm.inherit.core``'s generic fallback).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from ctm.inherit.axes import (
    AxisMap,
    concat,
    halves,
    identity,
    overlap,
    recent,
    replicate,
    replicate_heads,
    sqrt_inverse,
)
from genome.cost import ModelSpec


@dataclass(frozen=True)
class Entry:
    """How one child tensor is made: from parent tensor ``source`` through ``maps`` (one per axis); with no
    source, all zeros (``zero``) or the child's init."""

    source: str | None
    maps: list[AxisMap]
    note: str
    zero: bool = False


@dataclass
class GeneAxes:
    """The axis maps of one parent → child step, and why the result is not function-preserving (if not)."""

    neurons: AxisMap          # D, where neurons are produced or stored
    neurons_in: AxisMap       # D, where z is read (split among replicas)
    inputs: AxisMap           # D_in, where features are produced
    inputs_in: AxisMap        # D_in, where features are read (split among replicas)
    query_rows: AxisMap       # D_in rows of W_q (scaled 1/√k when replicated)
    memory_nlm: AxisMap       # M in the NLM's first layer (zeros on the padded, oldest side)
    memory_trace: AxisMap     # M in A0 (the child's init on the padded side)
    hidden_out: AxisMap       # H in the NLM's first layer output (each GLU half)
    hidden_in: AxisMap        # H in the NLM's second layer input (zero for new units)
    losses: list[str] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)


def _neurons(p: ModelSpec, c: ModelSpec, out: dict[str, Any]) -> tuple[AxisMap, AxisMap]:
    dp, dc = p.d_model, c.d_model
    if dp == dc:
        return identity(dc), identity(dc)
    glu_both = len(p.synapse_widths) == 1 and len(c.synapse_widths) == 1
    if dc > dp and dc % dp == 0 and glu_both:
        out["notes"]["D"] = f"{dp} → {dc}: each neuron replicated ×{dc // dp} (function-preserving)"
        m = replicate(dp, dc)
        return m, m.but(split=True)
    why = "narrowed" if dc < dp else ("not a multiple" if dc % dp else "U-Net synapses")
    out["notes"]["D"] = f"{dp} → {dc}: first {min(dp, dc)} neurons copied"
    out["losses"].append(f"d_model {dp} → {dc} ({why})")
    m = overlap(dp, dc)
    return m, m


def _inputs(p: ModelSpec, c: ModelSpec, out: dict[str, Any]) -> tuple[AxisMap, AxisMap, AxisMap]:
    ip, ic = p.d_input, c.d_input
    if ip == ic:
        return identity(ic), identity(ic), identity(ic)
    k = ic // ip
    if ic > ip and ic == k * ip and p.heads == c.heads and c.task.backbone.kind != "conv":
        out["notes"]["D_in"] = f"{ip} → {ic}: each dimension replicated ×{k} within its head (function-preserving)"
        m = replicate_heads(ip, ic, c.heads)
        return m, m.but(split=True), m.but(scale=sqrt_inverse(k, ic))
    why = ("narrowed" if ic < ip else "not a multiple" if ic % ip else "heads changed" if p.heads != c.heads
           else "conv backbone")
    out["notes"]["D_in"] = f"{ip} → {ic}: first {min(ip, ic)} dimensions copied"
    out["losses"].append(f"d_input {ip} → {ic} ({why})")
    m = overlap(ip, ic)
    return m, m, m


def gene_axes(p: ModelSpec, c: ModelSpec) -> GeneAxes:
    """The per-axis maps for parent spec ``p`` → child spec ``c``."""
    out: dict[str, Any] = {"losses": [], "notes": {}}
    neurons, neurons_in = _neurons(p, c, out)
    inputs, inputs_in, query_rows = _inputs(p, c, out)
    mp, mc = p.memory_length, c.memory_length
    if mp != mc:
        kind = "oldest side padded: zero NLM weights (function-preserving)" if mc > mp else "most recent kept"
        out["notes"]["M"] = f"{mp} → {mc}: {kind}"
        if mc < mp:
            out["losses"].append(f"memory_length {mp} → {mc} (truncated)")
    hp, hc = p.nlm_hidden, c.nlm_hidden
    if p.nlm_depth != c.nlm_depth:
        out["losses"].append(f"nlm_depth {p.nlm_depth} → {c.nlm_depth} (NLMs start fresh)")
    elif c.nlm_depth == 2 and hp != hc:
        out["notes"]["H"] = (f"{hp} → {hc}: new units fresh in, zero out (function-preserving)" if hc > hp
                             else f"{hp} → {hc}: first {hc} units kept")
        if hc < hp:
            out["losses"].append(f"nlm_hidden {hp} → {hc} (narrowed)")
    if p.heads != c.heads:
        out["losses"].append(f"heads {p.heads} → {c.heads} (the head split changes)")
    if len(p.synapse_widths) != len(c.synapse_widths):
        out["losses"].append(f"synapse_depth {len(p.synapse_widths)} → {len(c.synapse_widths)}")
    return GeneAxes(neurons=neurons, neurons_in=neurons_in, inputs=inputs, inputs_in=inputs_in,
                    query_rows=query_rows, memory_nlm=recent(mp, mc, "zero"), memory_trace=recent(mp, mc, "init"),
                    hidden_out=overlap(hp, hc), hidden_in=overlap(hp, hc, "zero"), losses=out["losses"],
                    notes=out["notes"])


def _name_of(model: nn.Module, module: nn.Module) -> str | None:
    for name, m in model.named_modules():
        if m is module:
            return name
    return None


def _linear(entries: dict[str, Entry], prefix: str, rows: AxisMap, cols: AxisMap, parent: dict, note: str,
            *, parent_prefix: str | None = None) -> None:
    src = parent_prefix or prefix
    if f"{src}.weight" in parent:
        entries[f"{prefix}.weight"] = Entry(f"{src}.weight", [rows, cols], note)
    if f"{src}.bias" in parent:
        entries[f"{prefix}.bias"] = Entry(f"{src}.bias", [rows], note)


def _vector(entries: dict[str, Entry], prefix: str, axis: AxisMap, parent: dict, note: str) -> None:
    for part in ("weight", "bias"):
        if f"{prefix}.{part}" in parent:
            entries[f"{prefix}.{part}"] = Entry(f"{prefix}.{part}", [axis], note)


def state_rules(model: nn.Module, parent: dict, p: ModelSpec, c: ModelSpec, ax: GeneAxes) -> dict[str, Entry]:
    """A0, z0 and the NLMs."""
    entries: dict[str, Entry] = {}
    if "start_trace" in parent:
        entries["start_trace"] = Entry("start_trace", [ax.neurons, ax.memory_trace], "A0 [D, M]")
    if "start_state" in parent:
        entries["start_state"] = Entry("start_state", [ax.neurons], "z0 [D]")
    layers = getattr(getattr(model, "nlm", None), "layers", None)
    prefix = _name_of(model, layers) if layers is not None else None
    if prefix is None or p.nlm_depth != c.nlm_depth:
        return entries  # a changed depth: the NLMs keep the child's init (the generic rule copies what matches)
    for i in range(c.nlm_depth):
        first, last = i == 0, i == c.nlm_depth - 1
        outs = identity(2) if last else halves(ax.hidden_out, p.nlm_hidden)
        ins = ax.memory_nlm if first else ax.hidden_in
        note = "NLM layer " + ("[D, out, M]" if first else "[D, 2, H]")
        if f"{prefix}.{i}.weight" in parent:
            entries[f"{prefix}.{i}.weight"] = Entry(f"{prefix}.{i}.weight", [ax.neurons, outs, ins], note)
        if f"{prefix}.{i}.bias" in parent:
            entries[f"{prefix}.{i}.bias"] = Entry(f"{prefix}.{i}.bias", [ax.neurons, outs, identity(1)], note)
    return entries


def synapse_rules(model: nn.Module, parent: dict, p: ModelSpec, c: ModelSpec, ax: GeneAxes) -> dict[str, Entry]:
    """The synapse input layer (reads [o | z]) and, for the GLU synapse, its output and LayerNorm over D."""
    entries: dict[str, Entry] = {}
    synapses = getattr(model, "synapses", None)
    if synapses is None:
        return entries
    base = _name_of(model, synapses)
    for name, module in synapses.named_modules():
        full = f"{base}.{name}" if name else base
        if isinstance(module, nn.Linear) and module.in_features == c.d_input + c.d_model:
            weight = parent.get(f"{full}.weight")
            if weight is None or weight.dim() != 2 or weight.shape[1] != p.d_input + p.d_model:
                break
            n_out_p, n_out_c = int(weight.shape[0]), module.out_features
            if (n_out_p, n_out_c) == (2 * p.d_model, 2 * c.d_model):
                rows = halves(ax.neurons, p.d_model)  # Linear → GLU: [value | gate] halves over D
            elif (n_out_p, n_out_c) == (p.d_model, c.d_model):
                rows = ax.neurons
            else:
                rows = overlap(n_out_p, n_out_c)
            cols = concat([(ax.inputs_in, 0), (ax.neurons_in, p.d_input)])
            _linear(entries, full, rows, cols, parent, "synapse input layer [·, D_in + D]")
            break
    for name, module in synapses.named_modules():
        full = f"{base}.{name}" if name else base
        parent_w = parent.get(f"{full}.weight")
        if (isinstance(module, nn.LayerNorm) and module.normalized_shape == (c.d_model,)
                and parent_w is not None and tuple(parent_w.shape) == (p.d_model,)):
            _vector(entries, full, ax.neurons, parent, "LayerNorm over D")
    return entries


def feature_rules(model: nn.Module, parent: dict, c: ModelSpec, ax: GeneAxes) -> dict[str, Entry]:
    """The backbone, positions, kv projection and LayerNorm, and the attention projections (all over D_in)."""
    entries: dict[str, Entry] = {}
    features = getattr(model, "features", None)
    backbone = getattr(features, "backbone", None)
    embed = getattr(backbone, "embed", None)
    if isinstance(embed, nn.Embedding):
        name = _name_of(model, embed)
        w = parent.get(f"{name}.weight")
        if w is not None and w.dim() == 2:
            entries[f"{name}.weight"] = Entry(f"{name}.weight", [overlap(int(w.shape[0]), embed.num_embeddings),
                                                                 ax.inputs], "embedding [vocab, D_in]")
    elif isinstance(embed, nn.Linear):
        name = _name_of(model, embed)
        w = parent.get(f"{name}.weight")
        if w is not None and w.dim() == 2:
            _linear(entries, name, ax.inputs, overlap(int(w.shape[1]), embed.in_features), parent,
                    "input embedding [D_in, features]")
    rotation = getattr(backbone, "rotation", None)
    if isinstance(rotation, nn.Linear):  # the rotational 1-D positions: Linear(2 → D_in) of a fixed basis
        _linear(entries, _name_of(model, rotation), ax.inputs, overlap(2, rotation.in_features), parent,
                "rotational positions [D_in, 2]")
    positions = getattr(backbone, "positions", None)
    if isinstance(positions, nn.Parameter):
        name = _name_of(model, backbone)
        w = parent.get(f"{name}.positions")
        if w is not None and w.dim() == 2:
            entries[f"{name}.positions"] = Entry(f"{name}.positions", [overlap(int(w.shape[0]), positions.shape[0]),
                                                                       ax.inputs], "positions [N, D_in]")
    proj, norm = getattr(features, "proj", None), getattr(features, "norm", None)
    if isinstance(proj, nn.Linear):
        _linear(entries, _name_of(model, proj), ax.inputs, ax.inputs_in, parent, "kv projection [D_in, D_in]")
    if isinstance(norm, nn.LayerNorm):
        _vector(entries, _name_of(model, norm), ax.inputs, parent, "LayerNorm over D_in")
    attention = getattr(model, "attention", None)
    for part in ("w_q", "w_k", "w_v", "w_o"):
        layer = getattr(attention, part, None)
        if isinstance(layer, nn.Linear):
            rows = ax.query_rows if part == "w_q" else ax.inputs
            _linear(entries, _name_of(model, layer), rows, ax.inputs_in, parent, f"attention {part} [D_in, D_in]")
    return entries


def projection_rules(model: nn.Module, parent: dict, ax: GeneAxes, out_pairs: AxisMap, action_pairs: AxisMap | None
                     ) -> dict[str, Entry]:
    """W_out [out, P_out] and the query: W_S [D_in, P_action] or the learned query vector [D_in].

    n_action 0 → n: W_S starts at zero with the parent's query vector as its bias (exact). n → 0: the query
    vector starts from the parent's bias of W_S (not exact).
    """
    entries: dict[str, Entry] = {}
    out_dim = model.output.out_features
    if "output.weight" in parent:
        rows = overlap(int(parent["output.weight"].shape[0]), out_dim)
        entries["output.weight"] = Entry("output.weight", [rows, out_pairs], "output projection [out, P_out]")
        if "output.bias" in parent:
            entries["output.bias"] = Entry("output.bias", [rows], "output projection bias")
    query = model.query
    if isinstance(query, nn.Linear) and action_pairs is not None:
        if "query.weight" in parent:
            _linear(entries, "query", ax.inputs, action_pairs, parent, "query projection [D_in, P_action]")
        elif "query" in parent:
            entries["query.weight"] = Entry(None, [], "zero (the parent had n_action = 0)", zero=True)
            entries["query.bias"] = Entry("query", [ax.inputs], "from the parent's learned query vector")
    elif isinstance(query, nn.Parameter):
        source = "query" if "query" in parent else "query.bias" if "query.bias" in parent else None
        if source is not None:
            entries["query"] = Entry(source, [ax.inputs], f"learned query vector from {source}")
    return entries


def pair_axis(src: np.ndarray, parent_pairs: int) -> AxisMap:
    """A pair axis: new pairs' projection columns are zero (the function is kept) when at least one pair is kept
    or the parent had none of this kind; when all of the parent's pairs are replaced they keep the child's init."""
    fill = "zero" if (src >= 0).any() or parent_pairs == 0 else "init"
    return AxisMap(src, fill=fill)

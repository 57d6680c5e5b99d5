"""``inherit``: a child's starting weights mapped from its parent's trained weights (see ``ctm.inherit``)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ctm.build import build_model, task_shape
from ctm.inherit.axes import AxisMap, apply_maps, generator_for, overlap
from ctm.inherit.pairs import child_pairs, match_slots
from ctm.inherit.rules import (
    Entry,
    feature_rules,
    gene_axes,
    pair_axis,
    projection_rules,
    state_rules,
    synapse_rules,
)
from genome.cost import ModelSpec, resolve
from genome.genome import Genome

ROLES = ("out", "action")


class InheritError(ValueError):
    """The parent's weights do not belong to the parent genome on this task."""


@dataclass(frozen=True)
class Inherited:
    """A child's starting weights and what they owe to the parent.

    ``weights`` is a complete state dict of ``ctm.build_model(child_genome, task, seed=seed)`` (load it with
    ``strict=True``; it includes the synchronisation pair buffers). ``inherited_fraction`` is the share of the
    child's trainable parameter elements whose values came from the parent (copied, replicated or split);
    zeros written to keep the function and the child's own init count as not inherited. ``reinitialised`` names
    the tensors re-initialised because the parent was trained on a task of another shape (``parent_task``).
    ``function_preserving`` says that the child, in eval mode, computes the parent's outputs for the first
    min(T_parent, T_child) ticks (up to float rounding); ``not_preserved`` lists why not, when not.
    ``per_module`` maps each top-level module (``nlm``, ``synapses``, ``sync_out``, ...) to its inherited share
    and what was done; ``per_tensor`` does the same per state-dict entry; ``genes`` says how each changed width
    or length (D, D_in, M, H) was mapped.
    """

    weights: dict[str, Tensor]
    inherited_fraction: float
    parent_hash: str
    function_preserving: bool
    not_preserved: tuple[str, ...]
    per_module: dict[str, str]
    per_tensor: dict[str, str]
    genes: dict[str, str] = field(default_factory=dict)
    reinitialised: tuple[str, ...] = ()

    def summary(self) -> str:
        """One line for a journal or an MLflow run: ``inherited: 0.83 of parameters from <parent hash>``."""
        return f"inherited: {self.inherited_fraction:.2f} of parameters from {self.parent_hash}"

    def record(self) -> dict[str, Any]:
        """Everything but the weights, as JSON-ready plain data."""
        return {"parent_hash": self.parent_hash, "inherited_fraction": self.inherited_fraction,
                "function_preserving": self.function_preserving, "not_preserved": list(self.not_preserved),
                "genes": dict(self.genes), "per_module": dict(self.per_module),
                "reinitialised": list(self.reinitialised)}


def _check_parent(weights: dict[str, Tensor], p: ModelSpec) -> None:
    bad = [k for k, v in weights.items() if not isinstance(v, Tensor)]
    if bad:
        raise InheritError(f"parent_weights[{bad[0]!r}] = {type(weights[bad[0]]).__name__}: allowed is a Tensor")
    expected = {"start_trace": (p.d_model, p.memory_length), "sync_out.left": (p.sync_out_size,)}
    if p.n_sync_action > 0:
        expected["sync_action.left"] = (p.sync_action_size,)
    for name, shape in expected.items():
        got = weights.get(name)
        if got is None or tuple(got.shape) != shape:
            found = "missing" if got is None else f"shape {tuple(got.shape)}"
            raise InheritError(f"parent_weights[{name!r}]: {found}; allowed is shape {shape}, as the parent genome "
                               f"(d_model = {p.d_model}, memory_length = {p.memory_length}, sync sizes "
                               f"{p.sync_out_size}/{p.sync_action_size}) builds it")


def _pairs(parent: dict[str, Tensor], init: dict[str, Tensor], p: ModelSpec, c: ModelSpec, neuron_src: np.ndarray,
           seed: int, weights: dict[str, Tensor], per_tensor: dict[str, str], losses: list[str]
           ) -> dict[str, AxisMap]:
    """Choose the child's pairs (written into ``weights``); return each role's slot map."""
    slot_maps: dict[str, AxisMap] = {}
    for index, role in enumerate(ROLES):
        key = f"sync_{role}"
        if f"{key}.left" not in init:
            if f"{key}.left" in parent and len(parent[f"{key}.left"]):
                losses.append(f"n_sync_{role} {getattr(p, f'n_sync_{role}')} → 0")
            continue
        own = (init[f"{key}.left"].numpy(), init[f"{key}.right"].numpy())
        theirs = None
        if f"{key}.left" in parent:
            theirs = (parent[f"{key}.left"].cpu().long().numpy(), parent[f"{key}.right"].cpu().long().numpy())
        rng = np.random.default_rng([seed, 1 + index, 20_250_505])
        (left, right), how = child_pairs(p.sync_select, c.sync_select, theirs, own,
                                         n_parent=getattr(p, f"n_sync_{role}"), n_child=getattr(c, f"n_sync_{role}"),
                                         d_child=c.d_model, rng=rng)
        src = match_slots((left, right), theirs, neuron_src) if theirs is not None else np.full(len(left), -1)
        n_parent = 0 if theirs is None else len(theirs[0])
        kept = int((src >= 0).sum())
        if kept < n_parent:
            losses.append(f"sync_{role}: {n_parent - kept} of the parent's {n_parent} pairs dropped")
        weights[f"{key}.left"] = torch.as_tensor(left, dtype=init[f"{key}.left"].dtype)
        weights[f"{key}.right"] = torch.as_tensor(right, dtype=init[f"{key}.right"].dtype)
        note = f"{how}: {kept} of {len(left)} pairs kept from the parent's {n_parent}"
        per_tensor[f"{key}.left"] = per_tensor[f"{key}.right"] = note
        slot_maps[role] = pair_axis(src, n_parent)
    return slot_maps


def _generic(name: str, child: Tensor, parent: dict[str, Tensor], seed: int) -> tuple[Tensor, int, str, bool]:
    """Copy by name and exact shape; else overlap-copy a same-rank floating tensor; else the child's init.

    Returns (tensor, inherited elements, note, exact) where ``exact`` means the tensor is the parent's as is.
    """
    theirs = parent.get(name)
    if theirs is None:
        return child.clone(), 0, "child's init (not in the parent)", False
    if tuple(theirs.shape) == tuple(child.shape):
        return theirs.detach().to("cpu", child.dtype).clone(), child.numel(), "copied", True
    if theirs.dim() == child.dim() and child.is_floating_point() and child.dim() > 0:
        maps = [overlap(int(a), int(b)) for a, b in zip(theirs.shape, child.shape, strict=True)]
        value, count = apply_maps(theirs, child, maps, generator=generator_for(seed, name))
        return value, count, f"overlap {tuple(theirs.shape)} → {tuple(child.shape)}", False
    return child.clone(), 0, f"child's init (parent shape {tuple(theirs.shape)})", False


def _apply(name: str, entry: Entry, child: Tensor, parent: dict[str, Tensor], seed: int
           ) -> tuple[Tensor, int, str] | None:
    if entry.source is None:
        return (torch.zeros_like(child) if entry.zero else child.clone()), 0, entry.note
    theirs = parent[entry.source]
    if all(m.is_identity and not m.split for m in entry.maps) and tuple(theirs.shape) == tuple(child.shape):
        return theirs.detach().to("cpu", child.dtype).clone(), child.numel(), "copied"
    try:
        value, count = apply_maps(theirs, child, entry.maps, generator=generator_for(seed, name))
    except ValueError:
        return None  # shapes other than the rule expects (e.g. an older checkpoint): the generic rule decides
    return value, count, f"mapped ({entry.note})"


def task_tensors(genome: Genome, task: Any, other_task: Any) -> tuple[str, ...]:
    """The state-dict entries of ``genome``'s CTM whose shape differs between ``task`` and ``other_task`` (or that
    exist on one only): the heads a transfer between the two tasks cannot carry over (input embedding,
    positions, output projection); empty when the tasks have the same shape."""
    a, b = task_shape(task), task_shape(other_task)
    if a == b:
        return ()
    sa = {k: tuple(v.shape) for k, v in build_model(genome, a).state_dict().items()}
    sb = {k: tuple(v.shape) for k, v in build_model(genome, b).state_dict().items()}
    return tuple(sorted(k for k in sa.keys() | sb.keys() if sa.get(k) != sb.get(k)))


def inherit(parent_genome: Genome, parent_weights: dict[str, Tensor], child_genome: Genome, task: Any, *,
            seed: int, parent_task: Any = None) -> Inherited:
    """The child's starting weights: ``build_model(child_genome, task, seed=seed)``'s init, overwritten by what
    maps from ``parent_weights`` (the parent's state dict, e.g. its checkpoint) gene by gene.

    A pure function of its arguments (``task``: a task object, ``TaskSpec`` or ``TaskShape``): the caller's
    global RNG is untouched. Raises :class:`InheritError` when ``parent_weights`` do not fit ``parent_genome``.
    ``parent_task``: the task the parent was trained on when it is not ``task`` (a transfer): the CTM core maps as
    usual and every tensor whose shape the task decides (:func:`task_tensors`) keeps the child's init, listed in
    ``reinitialised`` and in ``not_preserved``.
    """
    shape = task_shape(task)
    parent_shape = shape if parent_task is None else task_shape(parent_task)
    p, c = resolve(parent_genome, parent_shape), resolve(child_genome, shape)
    parent = dict(parent_weights)
    _check_parent(parent, p)
    heads = task_tensors(parent_genome, parent_shape, shape)
    child = build_model(child_genome, shape, seed=seed)
    init = {k: v.detach().clone() for k, v in child.state_dict().items()}
    parameters = {name for name, prm in child.named_parameters() if prm.requires_grad}

    ax = gene_axes(p, c)
    losses = list(ax.losses)
    weights: dict[str, Tensor] = {}
    per_tensor: dict[str, str] = {}
    slots = _pairs(parent, init, p, c, ax.neurons.src, seed, weights, per_tensor, losses)
    entries: dict[str, Entry] = {}
    entries.update(state_rules(child, parent, p, c, ax))
    entries.update(synapse_rules(child, parent, p, c, ax))
    entries.update(feature_rules(child, parent, c, ax))
    entries.update(projection_rules(child, parent, ax, slots["out"], slots.get("action")))
    for role, slot_map in slots.items():
        if f"sync_{role}.theta" in parent:
            entries[f"sync_{role}.theta"] = Entry(f"sync_{role}.theta", [slot_map.but(fill="init")], "decay θ [P]")
        else:
            entries[f"sync_{role}.theta"] = Entry(None, [], "decay θ of new pairs: the child's init")

    reinitialised = tuple(k for k in heads if k in init)
    for name in reinitialised:
        entries[name] = Entry(None, [], "re-initialised: the task's shape decides it")
    if heads:
        changes = ", ".join(f"{k} {tuple(parent[k].shape) if k in parent else '-'} → "
                            f"{tuple(init[k].shape) if k in init else '-'}" for k in heads)
        losses.insert(0, f"another task: re-initialised {changes}")
    used: set[str] = {k for k in parent if k.endswith((".left", ".right")) or k in heads}
    generic: dict[tuple[str, str], list[str]] = defaultdict(list)
    counts: dict[str, tuple[int, int]] = {}
    for name, value in init.items():
        if name in weights:
            continue
        entry = entries.get(name)
        done = _apply(name, entry, value, parent, seed) if entry is not None else None
        if done is None:
            tensor, count, note, exact = _generic(name, value, parent, seed)
            if not exact and (value.is_floating_point() or name in parameters):
                generic[(name.split(".")[0], note.split(" (")[0].split(" ")[0])].append(name)
            if name in parent:
                used.add(name)
        else:
            tensor, count, note = done
            if entry.source is not None:
                used.add(entry.source)
        weights[name] = tensor
        per_tensor[name] = note
        counts[name] = (count, value.numel())
    for k in parent:
        if k not in used and parent[k].is_floating_point():
            generic[(k.split(".")[0], "unused")].append(k)
    losses += [_generic_loss(module, kind, names) for (module, kind), names in generic.items()]
    _clamp_thetas(weights, parent, p, c, slots, losses)

    inherited = sum(counts[n][0] for n in parameters)
    total = sum(counts[n][1] for n in parameters)
    weights = {k: weights[k] for k in init}  # the child's state-dict order
    return Inherited(weights=weights, inherited_fraction=inherited / total if total else 0.0,
                     parent_hash=parent_genome.hash, function_preserving=not losses, not_preserved=tuple(losses),
                     per_module=_per_module(counts, per_tensor), per_tensor=per_tensor, genes=dict(ax.notes),
                     reinitialised=reinitialised)


def _generic_loss(module: str, kind: str, names: list[str]) -> str:
    """One line per module and kind of generic-rule loss (``child's`` init, ``overlap`` or an ``unused`` parent
    tensor), naming the tensors."""
    what = {"child's": "the child's init", "overlap": "an overlap copy", "unused": "parent tensors not used"}[kind]
    shown = ", ".join(names[:3]) + (f", … ({len(names)} in all)" if len(names) > 3 else "")
    return f"{module}: {what}: {shown}"


def _clamp_thetas(weights: dict[str, Tensor], parent: dict[str, Tensor], p: ModelSpec, c: ModelSpec,
                  slots: dict[str, AxisMap], losses: list[str]) -> None:
    """Kept decays take the parent's effective θ (clamped to its decay_clamp), then the child's clamp."""
    for role, slot_map in slots.items():
        name = f"sync_{role}.theta"
        if name not in parent or name not in weights:
            continue
        kept = torch.from_numpy(slot_map.src >= 0)
        theta = weights[name]
        effective = theta.clamp(0.0, p.decay_clamp)
        if bool((effective[kept] > c.decay_clamp).any()):
            losses.append(f"{name}: parent decays above decay_clamp = {c.decay_clamp}")
        weights[name] = torch.where(kept, effective.clamp(max=c.decay_clamp), theta)


def _per_module(counts: dict[str, tuple[int, int]], per_tensor: dict[str, str]) -> dict[str, str]:
    """Per top-level module: the share of its elements from the parent and the distinct notes of its tensors."""
    grouped: dict[str, list[str]] = defaultdict(list)
    for name in per_tensor:
        grouped[name.split(".")[0]].append(name)
    out = {}
    for module, names in grouped.items():
        got = sum(counts[n][0] for n in names if n in counts)
        total = sum(counts[n][1] for n in names if n in counts)
        notes = list(dict.fromkeys(per_tensor[n] for n in names))
        share = f"{got / total:.2f} from parent; " if total else ""
        out[module] = share + "; ".join(notes)
    return out


__all__ = ["InheritError", "Inherited", "inherit", "task_tensors"]

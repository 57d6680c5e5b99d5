"""Cost model: parameter count and multiply-accumulates of a CTM, from the genes alone.

:func:`resolve` turns a genome plus a task's shapes into a :class:`ModelSpec` (every layer size, plain data);
``ctm.build_model`` builds exactly that spec, and :func:`estimate` counts it. Keeping both on one spec is what
makes the count exact (``tests/ctm`` compares it with the built model's parameters).

MACs count multiply-accumulates of linear maps, convolutions, the attention products, the neuron-level
models' contraction and one per synchronisation pair per tick; normalisations, activations and softmax are
not counted. Key/value projections of the input tokens are computed once per forward, not once per tick (once per
observation for a stepped task, whose T ticks also run once per observation); the rotational positions (a
Linear(2 → D_in) over the N positions) are counted once per forward of one sample.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from genome.genome import Genome

UNET_BOTTLENECK = 16
BackboneKind = Literal["embedding", "scalar", "conv", "linear"]


@dataclass(frozen=True, kw_only=True)
class BackboneSpec:
    """How a task turns its input into ``n_tokens`` feature tokens of width ``d_input``.

    - ``embedding``: integer tokens from a vocabulary of ``vocab`` values (parity).
    - ``scalar``: one real value per token, ``Linear(1 → d_input)`` (sorting, tabular).
    - ``linear``: a vector per token, ``Linear(in_features → d_input)``.
    These three add 1-D positions as the genome's ``positional_embedding`` gene says: ``rotational`` (the
    paper's: ``Linear(2 → d_input)`` of the unit vector (−sin θ_p, cos θ_p), θ_p = π·p/(N − 1)) or ``learned``
    (a table [N, d_input]).
    - ``conv``: an image ``[in_channels, height, width]``: ``conv_layers`` 3×3 convolutions to ``d_input``
      channels (the first with stride ``stride``), each followed by GELU; fixed 2-D sinusoidal positions.
    """

    kind: BackboneKind
    n_tokens: int
    vocab: int = 0
    in_features: int = 0
    in_channels: int = 0
    height: int = 0
    width: int = 0
    conv_layers: int = 2
    stride: int = 1


@dataclass(frozen=True, kw_only=True)
class TaskShape:
    """What the cost model needs to know about a task: its backbone and its output size.

    ``steps`` > 1 marks a stepped task: the input holds ``steps`` observations (each one the backbone's input),
    the CTM runs its T ticks once per observation and answers one position (``out_classes`` logits) per step, so
    ``out_positions == steps``.
    """

    name: str
    backbone: BackboneSpec
    out_positions: int
    out_classes: int
    steps: int = 1

    def __post_init__(self) -> None:
        if self.steps < 1 or (self.steps > 1 and self.out_positions != self.steps):
            raise ValueError(f"task shape {self.name!r}: steps = {self.steps}: allowed is 1, or the number of output "
                             f"positions ({self.out_positions}) for a stepped task")

    @property
    def out_width(self) -> int:
        """Rows of W_out: every position at once, or one position per step for a stepped task."""
        return self.out_dim if self.steps == 1 else self.out_classes

    @property
    def out_dim(self) -> int:
        return self.out_positions * self.out_classes


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """Every layer size of a CTM for one task, resolved from a genome (the content of ``model.yaml``)."""

    task: TaskShape
    ticks: int
    d_model: int
    d_input: int
    memory_length: int
    heads: int
    n_tokens: int
    positional_embedding: str
    synapse_widths: list[int]
    nlm_depth: int
    nlm_hidden: int
    sync_select: str
    n_sync_out: int
    n_sync_action: int
    n_self_pairs: int
    sync_out_size: int
    sync_action_size: int
    decay_learned: bool
    decay_init: str
    decay_init_max: float
    decay_clamp: float
    dropout: float
    dropout_nlm: float
    out_dim: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CostEstimate:
    params: int
    params_by_part: dict[str, int]
    macs_backbone: int
    macs_per_tick: int
    macs_per_forward: int


def synapse_widths(d_model: int, depth: int) -> list[int]:
    """Widths of the U-Net levels, exactly as the reference: ``int()`` (truncation) of ``numpy.linspace(D, 16, k)``.

    The bottleneck is always 16, so for D < 16 the widths grow towards it (D = 8, k = 3: [8, 12, 16]); when
    (D − 16)/(k − 1) is not whole the inner levels are truncated (D = 32, k = 4: [32, 26, 21, 16]). Depth 1 is the
    Linear+GLU synapse and has the single width ``[D]``.
    """
    if depth == 1:
        return [d_model]
    return [int(w) for w in np.linspace(d_model, UNET_BOTTLENECK, depth)]


def positions_of(genome: Genome, backbone: BackboneSpec) -> str:
    """The positional embedding a model uses: the gene for 1-D token backbones, fixed 2-D sinusoids for conv."""
    return "sinusoidal-2d" if backbone.kind == "conv" else genome.positional_embedding


def sync_size(sync_select: str, n: int) -> int:
    """Length of the synchronisation vector S for n neurons (first-last, random) or n pairs (random-pairing)."""
    return n if sync_select == "random-pairing" else n * (n + 1) // 2


def resolve(genome: Genome, task: TaskShape) -> ModelSpec:
    g = genome
    return ModelSpec(
        task=task, ticks=g.ticks, d_model=g.d_model, d_input=g.d_input, memory_length=g.memory_length,
        heads=g.heads, n_tokens=task.backbone.n_tokens, positional_embedding=positions_of(g, task.backbone),
        synapse_widths=synapse_widths(g.d_model, g.synapse_depth), nlm_depth=g.nlm_depth,
        nlm_hidden=g.nlm_hidden, sync_select=g.sync_select, n_sync_out=g.n_sync_out,
        n_sync_action=g.n_sync_action, n_self_pairs=g.n_self_pairs,
        sync_out_size=sync_size(g.sync_select, g.n_sync_out),
        sync_action_size=sync_size(g.sync_select, g.n_sync_action), decay_learned=g.decay_learned,
        decay_init=g.decay_init, decay_init_max=g.decay_init_max, decay_clamp=g.decay_clamp,
        dropout=g.dropout, dropout_nlm=g.dropout_nlm, out_dim=task.out_dim,
    )


def _linear(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def _positions(b: BackboneSpec, d_in: int, positions: str) -> tuple[int, int]:
    """(params, MACs) of 1-D positions: the rotational Linear(2 → D_in) over N positions, or a table [N, D_in]."""
    if positions == "rotational":
        return _linear(2, d_in), b.n_tokens * 2 * d_in
    if positions == "learned":
        return b.n_tokens * d_in, 0
    raise ValueError(f"positional_embedding = {positions!r}: allowed is one of rotational, learned")


def _backbone(b: BackboneSpec, d_in: int, positions: str) -> tuple[int, int]:
    """(params, MACs per sample) of the backbone and its positional embedding."""
    if b.kind in ("embedding", "scalar", "linear"):
        pos_params, pos_macs = _positions(b, d_in, positions)
        if b.kind == "embedding":
            return b.vocab * d_in + pos_params, pos_macs
        if b.kind == "scalar":
            return _linear(1, d_in) + pos_params, b.n_tokens * d_in + pos_macs
        return _linear(b.in_features, d_in) + pos_params, b.n_tokens * b.in_features * d_in + pos_macs
    if b.kind == "conv":
        params = macs = 0
        channels = b.in_channels
        out_h, out_w = b.height, b.width
        for layer in range(b.conv_layers):
            stride = b.stride if layer == 0 else 1
            out_h, out_w = (out_h - 1) // stride + 1, (out_w - 1) // stride + 1
            params += channels * d_in * 9 + d_in
            macs += channels * d_in * 9 * out_h * out_w
            channels = d_in
        if out_h * out_w != b.n_tokens:
            raise ValueError(f"conv backbone gives {out_h * out_w} tokens but n_tokens = {b.n_tokens}")
        return params, macs
    raise ValueError(f"unknown backbone kind {b.kind!r}: use one of embedding, scalar, linear, conv")


def estimate(genome: Genome, task: TaskShape) -> CostEstimate:
    """Exact parameter count and MACs (per tick, per forward, per sample) of ``ctm.build_model(genome, task)``."""
    s = resolve(genome, task)
    d, d_in, m, n = s.d_model, s.d_input, s.memory_length, s.n_tokens
    parts: dict[str, int] = {}

    backbone_params, macs_backbone = _backbone(task.backbone, d_in, s.positional_embedding)
    parts["backbone"] = backbone_params
    parts["kv_projection"] = _linear(d_in, d_in) + 2 * d_in  # Linear + LayerNorm
    parts["start_state"] = d * m + d  # start trace A0 [D, M] and start post-activation z0 [D]
    parts["attention"] = 4 * _linear(d_in, d_in)  # W_q, W_k, W_v, W_o
    if s.n_sync_action > 0:
        parts["query_projection"] = _linear(s.sync_action_size, d_in)
    else:
        parts["query_projection"] = d_in  # a learned query vector
    widths = s.synapse_widths
    if len(widths) == 1:
        parts["synapses"] = _linear(d_in + d, 2 * d) + 2 * d  # Linear → GLU → LayerNorm
        synapse_macs = (d_in + d) * 2 * d
    else:
        params = _linear(d_in + d, widths[0]) + 2 * widths[0]
        synapse_macs = (d_in + d) * widths[0]
        for a, b in itertools.pairwise(widths):
            params += _linear(a, b) + 2 * b  # down: Linear, LayerNorm
            params += _linear(b, a) + 2 * a + 2 * a  # up: Linear, LayerNorm, then skip-add and LayerNorm
            synapse_macs += 2 * a * b
        parts["synapses"] = params
    if s.nlm_depth == 1:
        parts["neuron_level_models"] = m * 2 * d + 2 * d + 1  # weights [M, 2, D], bias [D, 2], temperature
        nlm_macs = m * 2 * d
    else:
        h = s.nlm_hidden
        parts["neuron_level_models"] = (m * 2 * h * d + 2 * h * d + 1) + (h * 2 * d + 2 * d + 1)
        nlm_macs = m * 2 * h * d + h * 2 * d
    parts["decay"] = (s.sync_out_size + s.sync_action_size) if s.decay_learned else 0
    parts["output_projection"] = _linear(s.sync_out_size, task.out_width)

    macs_once = macs_backbone + n * d_in * d_in + 2 * n * d_in * d_in  # backbone, kv projection, K and V
    attention_macs = 2 * d_in * d_in + 2 * n * d_in  # q and output projections; scores and weighted sum
    query_macs = s.sync_action_size * d_in if s.n_sync_action > 0 else 0
    if s.n_sync_action == 0:
        attention_macs = 0  # a constant query: attention is computed once, outside the tick loop
        macs_once += 2 * d_in * d_in + 2 * n * d_in
    sync_macs = s.sync_out_size + s.sync_action_size
    per_tick = (query_macs + attention_macs + synapse_macs + nlm_macs + sync_macs
                + s.sync_out_size * task.out_width)
    # a stepped task: features, K and V per observation and T ticks per observation; the rotational position
    # table does not depend on the input, so it is computed once per forward however many observations
    steps = task.steps
    shared = _positions(task.backbone, d_in, "rotational")[1] if s.positional_embedding == "rotational" else 0
    macs_all = steps * macs_once - (steps - 1) * shared
    return CostEstimate(
        params=sum(parts.values()), params_by_part=parts, macs_backbone=macs_all,
        macs_per_tick=per_tick, macs_per_forward=macs_all + steps * s.ticks * per_tick,
    )


def training_memory_bytes(genome: Genome, task: TaskShape, batch_size: int | None = None) -> int:
    """A rough upper estimate of GPU memory for one fp32 training step (weights, AdamW state, activations).

    Used to size an evaluation's GPU share; it errs high so that packed evaluations do not run out of memory.
    """
    cost = estimate(genome, task)
    s = resolve(genome, task)
    b = batch_size or genome.batch_size
    weights = 4 * 4 * cost.params  # weights, gradients, two AdamW moments
    per_tick = (s.d_model * (s.memory_length + 4 + 2 * s.nlm_hidden * (s.nlm_depth == 2))
                + sum(s.synapse_widths) * 3 + s.d_input * (4 + s.n_tokens / max(s.heads, 1))
                + 2 * (s.sync_out_size + s.sync_action_size) + 2 * s.out_dim)
    tokens = s.n_tokens * s.d_input * 4
    activations = 4 * b * task.steps * (s.ticks * per_tick + tokens)
    return int(weights + 2 * activations)

"""Gene specifications: what each gene means, its hard limits, default value and default search domain.

Every gene has
- *limits*: what is ever a valid value (``ticks >= 1``, ``dropout < 1``); no campaign may go beyond them;
- a *default domain*: what a campaign searches unless its YAML narrows or widens it (within the limits);
- a *default value*: used to fill genes a hand-written genome file leaves out.

Symbols follow the CTM paper (see ``../shared/ctm-reference.md``): T = ticks, M = memory_length,
D = d_model, D_in = d_input, H = nlm_hidden.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

Scale = Literal["linear", "log"]
Value = int | float | str | bool

FLOAT_SIGNIFICANT_DIGITS = 4


def quantise_float(value: float) -> float:
    """Round to ``FLOAT_SIGNIFICANT_DIGITS`` significant digits so that floats hash and round-trip exactly."""
    if value == 0:
        return 0.0  # also turns -0.0 into 0.0, which would otherwise hash differently
    if not math.isfinite(value):
        return float(value)
    digits = FLOAT_SIGNIFICANT_DIGITS - 1 - math.floor(math.log10(abs(value)))
    return float(round(value, digits))


@dataclass(frozen=True, kw_only=True)
class IntGene:
    """An integer gene. ``scale="log"`` mutates and encodes on a log scale (for widths)."""

    name: str
    doc: str
    low: int
    high: int
    default: int
    domain: tuple[int, int]
    scale: Scale = "linear"

    @property
    def limits(self) -> tuple[int, int]:
        return (self.low, self.high)

    def coerce(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"expected an integer, got {type(value).__name__} {value!r}")
        if isinstance(value, float) and not value.is_integer():
            raise TypeError(f"expected an integer, got {value!r}")
        return int(value)

    def allowed(self, domain: tuple[int, int] | None = None) -> str:
        lo, hi = domain or (self.low, self.high)
        return f"an integer in [{lo}, {hi}]"

    def contains(self, value: int, domain: tuple[int, int]) -> bool:
        return domain[0] <= value <= domain[1]

    def to_unit(self, value: int, domain: tuple[int, int]) -> float:
        lo, hi = domain
        if hi == lo:
            return 0.5
        if self.scale == "log":
            return math.log(value - lo + 1) / math.log(hi - lo + 1)
        return (value - lo) / (hi - lo)

    def from_unit(self, u: float, domain: tuple[int, int]) -> int:
        lo, hi = domain
        u = min(max(float(u), 0.0), 1.0)
        value = lo - 1 + math.exp(u * math.log(hi - lo + 1)) if self.scale == "log" else lo + u * (hi - lo)
        return int(min(max(math.floor(value + 0.5), lo), hi))


@dataclass(frozen=True, kw_only=True)
class FloatGene:
    """A real-valued gene, quantised to a few significant digits."""

    name: str
    doc: str
    low: float
    high: float
    default: float
    domain: tuple[float, float]
    scale: Scale = "linear"

    @property
    def limits(self) -> tuple[float, float]:
        return (self.low, self.high)

    def coerce(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"expected a number, got {type(value).__name__} {value!r}")
        if not math.isfinite(value):
            raise TypeError(f"expected a finite number, got {value!r}")
        return quantise_float(float(value))

    def allowed(self, domain: tuple[float, float] | None = None) -> str:
        lo, hi = domain or (self.low, self.high)
        return f"a number in [{lo:g}, {hi:g}]"

    def contains(self, value: float, domain: tuple[float, float]) -> bool:
        return domain[0] <= value <= domain[1]

    def to_unit(self, value: float, domain: tuple[float, float]) -> float:
        lo, hi = domain
        if hi == lo:
            return 0.5
        if self.scale == "log":
            return (math.log(value) - math.log(lo)) / (math.log(hi) - math.log(lo))
        return (value - lo) / (hi - lo)

    def from_unit(self, u: float, domain: tuple[float, float]) -> float:
        lo, hi = domain
        u = min(max(float(u), 0.0), 1.0)
        if self.scale == "log":
            value = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
        else:
            value = lo + u * (hi - lo)
        return min(max(quantise_float(value), lo), hi)


@dataclass(frozen=True, kw_only=True)
class ChoiceGene:
    """A categorical gene (strings, booleans or a small set of integers)."""

    name: str
    doc: str
    choices: tuple[Value, ...]
    default: Value
    domain: tuple[Value, ...]

    @property
    def limits(self) -> tuple[Value, ...]:
        return self.choices

    def coerce(self, value: Any) -> Value:
        kind = type(self.choices[0])
        if kind is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        if type(value) is not kind:
            raise TypeError(f"expected one of {list(self.choices)}, got {type(value).__name__} {value!r}")
        return value

    def allowed(self, domain: tuple[Value, ...] | None = None) -> str:
        return f"one of {list(domain or self.choices)}"

    def contains(self, value: Value, domain: tuple[Value, ...]) -> bool:
        return value in domain

    def to_unit(self, value: Value, domain: tuple[Value, ...]) -> float:
        return (domain.index(value) + 0.5) / len(domain)

    def from_unit(self, u: float, domain: tuple[Value, ...]) -> Value:
        index = min(int(min(max(float(u), 0.0), 1.0) * len(domain)), len(domain) - 1)
        return domain[index]


Gene = IntGene | FloatGene | ChoiceGene

SYNC_SELECTIONS = ("first-last", "random", "random-pairing")
DECAY_INITS = ("zeros", "spread", "random")
POSITIONAL_EMBEDDINGS = ("rotational", "learned")

GENES: tuple[Gene, ...] = (
    IntGene(name="ticks", doc="T: internal thought steps per input", low=1, high=1000, default=25,
            domain=(1, 100)),
    IntGene(name="memory_length", doc="M: past pre-activations each neuron-level model sees", low=1,
            high=256, default=10, domain=(1, 50)),
    ChoiceGene(name="nlm_depth", doc="neuron-level model depth: 1 = Linear+GLU, 2 = two layers with width H",
               choices=(1, 2), default=2, domain=(1, 2)),
    IntGene(name="nlm_hidden", doc="H: hidden width of a depth-2 neuron-level model", low=1, high=256,
            default=16, domain=(2, 64), scale="log"),
    IntGene(name="d_model", doc="D: number of neurons", low=4, high=16384, default=256, domain=(32, 1024),
            scale="log"),
    IntGene(name="d_input", doc="D_in: width of attention and input features", low=2, high=4096, default=64,
            domain=(16, 512), scale="log"),
    ChoiceGene(name="heads", doc="attention heads (must divide d_input)", choices=(1, 2, 4, 8, 16, 32),
               default=4, domain=(1, 2, 4, 8, 16)),
    IntGene(name="synapse_depth", doc="synapses: 1 = Linear+GLU, k > 1 = U-Net MLP with k levels", low=1,
            high=16, default=1, domain=(1, 8)),
    ChoiceGene(name="sync_select", doc="how synchronisation pairs are chosen", choices=SYNC_SELECTIONS,
               default="random", domain=SYNC_SELECTIONS),
    IntGene(name="n_sync_out", doc="n_out: neurons (or pairs) synchronised for the output", low=1,
            high=16384, default=32, domain=(4, 256), scale="log"),
    IntGene(name="n_sync_action", doc="n_action: neurons (or pairs) synchronised for the attention query; "
            "0 = a learned, state-independent query", low=0, high=16384, default=32, domain=(0, 256),
            scale="log"),
    IntGene(name="n_self_pairs", doc="random-pairing only: how many of the pairs are self-pairs (i = j)",
            low=0, high=4096, default=0, domain=(0, 16), scale="log"),
    ChoiceGene(name="decay_init", doc="initial decay θ: zeros (no decay), spread (time scales spread over "
               "pairs), random (uniform in [0, decay_init_max])", choices=DECAY_INITS, default="zeros",
               domain=DECAY_INITS),
    FloatGene(name="decay_init_max", doc="upper end of the initial θ for spread and random", low=0.0,
              high=100.0, default=4.0, domain=(0.5, 8.0)),
    ChoiceGene(name="decay_learned", doc="whether θ is learned (a parameter) or fixed (a buffer)",
               choices=(True, False), default=True, domain=(True, False)),
    FloatGene(name="decay_clamp", doc="θ is clamped to [0, decay_clamp]", low=0.1, high=100.0, default=15.0,
              domain=(15.0, 15.0)),
    FloatGene(name="dropout", doc="dropout on the attention weights and inside the synapses (before the GLU "
              "synapse's linear map, before each U-Net level)", low=0.0, high=0.9, default=0.0,
              domain=(0.0, 0.3)),
    FloatGene(name="dropout_nlm", doc="dropout before each neuron-level model layer (on the history, and on "
              "the hidden layer of a depth-2 NLM); a genome that leaves it out takes the value of dropout",
              low=0.0, high=0.9, default=0.0, domain=(0.0, 0.3)),
    FloatGene(name="learning_rate", doc="AdamW learning rate (a training gene, fixed unless a campaign "
              "widens its domain)", low=1e-6, high=1.0, default=1e-3, domain=(1e-3, 1e-3), scale="log"),
    IntGene(name="batch_size", doc="training batch size (a training gene, fixed unless a campaign widens "
            "its domain)", low=1, high=4096, default=64, domain=(64, 64), scale="log"),
    # Genes added after schema 1 come last, so that the per-gene random draws (sampling, crossover) of the
    # earlier genes keep their order.
    ChoiceGene(name="positional_embedding", doc="positions of 1-D input tokens: rotational (the paper's: a "
               "learned Linear(2 → D_in) of a unit 2-vector rotating from 0 to 180 degrees over the tokens, "
               "3·D_in parameters) or learned (a free table, N·D_in parameters); image (conv) inputs always "
               "use fixed 2-D sinusoidal positions. Not searched unless a campaign opens its domain",
               choices=POSITIONAL_EMBEDDINGS, default="rotational", domain=("rotational",)),
)

GENE_BY_NAME: dict[str, Gene] = {gene.name: gene for gene in GENES}
GENE_NAMES: tuple[str, ...] = tuple(gene.name for gene in GENES)

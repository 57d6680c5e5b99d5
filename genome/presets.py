"""The paper's CTM configurations as named genomes: ``Genome.preset("parity-paper")``.

Each preset lists the genes its configuration sets; every other gene keeps its default (decay θ starts at 0,
is learned and clamped to [0, 15], as in the reference). Sources: the configurations table of
``../shared/ctm-reference.md`` and the reference's training scripts (SakanaAI/continuous-thought-machines,
``tasks/*/scripts``, ``tasks/mazes/README.md``). The genome fixes the CTM core; the backbone comes from the
task, so image presets (mazes, CIFAR-10, ImageNet) get ctmevo's backbone for the task they are used with, not
the reference's ResNet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from genome.errors import GeneProblem, GenomeError


@dataclass(frozen=True)
class Preset:
    """A named configuration: a one-line description, the task it was made for, and the genes it sets."""

    name: str
    description: str
    task: str
    genes: Mapping[str, Any] = field(default_factory=dict)


_PARITY = dict(ticks=75, memory_length=25, d_model=1024, d_input=512, heads=8, synapse_depth=1, n_sync_out=32,
               n_sync_action=32, sync_select="random", nlm_depth=2, nlm_hidden=16,
               positional_embedding="rotational", dropout=0.0, learning_rate=1e-4, batch_size=64)
_MAZE = dict(ticks=75, memory_length=25, d_model=2048, d_input=512, heads=8, synapse_depth=4, n_sync_out=64,
             n_sync_action=32, sync_select="first-last", nlm_depth=2, nlm_hidden=32, dropout=0.1,
             learning_rate=1e-4, batch_size=64)
PARITY_SWEEP = ((1, 1), (10, 5), (25, 10), (50, 25), (100, 50))  # (T, M) besides the paper's (75, 25)


def _presets() -> dict[str, Preset]:
    out = [
        Preset("parity-paper", "cumulative parity as in the paper: T=75, M=25, D=1024, D_in=512, 8 heads, "
               "32/32 random sync, NLM H=16, rotational positions (5,719,714 parameters at length 64)",
               "parity (length 64)", _PARITY),
        *(Preset(f"parity-t{t}-m{m}", f"the paper's parity sweep point T={t}, M={m} (otherwise parity-paper)",
                 "parity (length 64)", {**_PARITY, "ticks": t, "memory_length": m}) for t, m in PARITY_SWEEP),
        Preset("maze-paper", "2-D mazes as in the reference's README command: T=75, M=25, D=2048, D_in=512, "
               "8 heads, U-Net depth 4, 64/32 first-last sync, H=32, dropout 0.1", "maze (39x39)", _MAZE),
        Preset("maze-paper-large", "2-D mazes as in the reference's training script: maze-paper with 16 heads "
               "and U-Net depth 8", "maze (39x39)", {**_MAZE, "heads": 16, "synapse_depth": 8}),
        Preset("maze-small", "the reference's CPU-sized maze run: T=50, M=25, D=1024, D_in=256, 4 heads, U-Net "
               "depth 8, 128/128 random-pairing sync, H=32", "maze (small)",
               dict(ticks=50, memory_length=25, d_model=1024, d_input=256, heads=4, synapse_depth=8,
                    n_sync_out=128, n_sync_action=128, sync_select="random-pairing", n_self_pairs=0, nlm_depth=2,
                    nlm_hidden=32, dropout=0.0, learning_rate=1e-4, batch_size=64)),
        Preset("sort-paper", "sorting, approximately: the paper's sizes (T=50, M=25, D=512, U-Net depth 4, 32 "
               "random-pairing output pairs, H=4); the reference feeds the 30 inputs directly, here one head "
               "of attention reads them with a learned query (no action sync)", "sort (30 values)",
               dict(ticks=50, memory_length=25, d_model=512, d_input=30, heads=1, synapse_depth=4, n_sync_out=32,
                    n_sync_action=0, sync_select="random-pairing", n_self_pairs=0, nlm_depth=2, nlm_hidden=4,
                    dropout=0.0, learning_rate=1e-3, batch_size=32)),
        Preset("cifar10-paper", "CIFAR-10 as in the paper: T=50, M=15, D=256, D_in=64, 16 heads, U-Net depth 5, "
               "256/512 random-pairing sync, H=64", "image classification (CIFAR-10)",
               dict(ticks=50, memory_length=15, d_model=256, d_input=64, heads=16, synapse_depth=5,
                    n_sync_out=256, n_sync_action=512, sync_select="random-pairing", n_self_pairs=0, nlm_depth=2,
                    nlm_hidden=64, dropout=0.0, dropout_nlm=0.0, learning_rate=1e-4, batch_size=512)),
        Preset("imagenet-paper", "ImageNet-1K as in the paper: T=50, M=25, D=4096, D_in=1024, 16 heads, U-Net "
               "depth 8, 8192/2048 random-pairing sync with 32 self-pairs, H=64, dropout 0.2",
               "image classification (ImageNet)",
               dict(ticks=50, memory_length=25, d_model=4096, d_input=1024, heads=16, synapse_depth=8,
                    n_sync_out=8192, n_sync_action=2048, sync_select="random-pairing", n_self_pairs=32,
                    nlm_depth=2, nlm_hidden=64, dropout=0.2, dropout_nlm=0.0, learning_rate=5e-4, batch_size=64)),
    ]
    return {p.name: Preset(p.name, p.description, p.task, MappingProxyType(dict(p.genes))) for p in out}


PRESETS: Mapping[str, Preset] = MappingProxyType(_presets())


def preset_names() -> tuple[str, ...]:
    return tuple(PRESETS)


def preset_genes(name: str) -> dict[str, Any]:
    """The genes of preset ``name``; an unknown name raises a :class:`GenomeError` listing the valid names."""
    preset = PRESETS.get(name) if isinstance(name, str) else None
    if preset is None:
        raise GenomeError([GeneProblem("preset", name, f"one of {list(PRESETS)}")])
    return dict(preset.genes)

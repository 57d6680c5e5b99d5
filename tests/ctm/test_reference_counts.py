"""Parameter counts at the paper's sizes: ctmevo's cost model and built model against the reference's formulas
and against counts measured on the reference implementation itself.

``MEASURED`` was obtained once by instantiating ``models.ctm.ContinuousThoughtMachine`` of
SakanaAI/continuous-thought-machines (commit aecfb63) with each configuration, running one forward pass to
materialise its lazy layers, and summing ``p.numel()`` over its parameters. Parity models are complete (parity
backbone and rotational positions, length 64). Maze and image models are counted without their backbone: the
reference was built with ``backbone_type='none'`` on tokens of width D_in (its ResNets are not ctmevo's
backbones), which is ctmevo's count minus its ``backbone`` part.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from ctm import build_model
from ctm.model import CTM, count_parameters
from genome import BackboneSpec, Genome, TaskShape, estimate, resolve

MEASURED = {
    "parity-paper": 5_719_714, "parity-t1-m1": 4_908_706, "parity-t10-m5": 5_043_874,
    "parity-t25-m10": 5_212_834, "parity-t50-m25": 5_719_714, "parity-t100-m50": 6_564_514,
    "maze-paper": 19_032_882, "maze-paper-large": 30_854_702, "maze-small": 8_411_308,
    "cifar10-paper": 882_812, "imagenet-paper": 127_921_422,
}
PARITY = TaskShape(name="parity", backbone=BackboneSpec(kind="embedding", n_tokens=64, vocab=2), out_positions=64,
                   out_classes=2)


def image_task(positions: int, classes: int) -> TaskShape:
    conv = BackboneSpec(kind="conv", n_tokens=4, in_channels=3, height=2, width=2, conv_layers=1)
    return TaskShape(name="image", backbone=conv, out_positions=positions, out_classes=classes)


TASKS = {"maze-paper": image_task(100, 5), "maze-paper-large": image_task(100, 5), "maze-small": image_task(50, 5),
         "cifar10-paper": image_task(1, 10), "imagenet-paper": image_task(1, 1000)}


def reference_formula(g: Genome, out_dims: int, *, parity: bool) -> int:
    """The reference model's parameters, module by module, as ``models/ctm.py`` and ``models/modules.py`` define
    them (SuperLinear: w1 [in, out, D], b1 [1, D, out], T [1]; U-Net widths int(linspace(D, 16, k)))."""
    d, d_in, m, h = g.d_model, g.d_input, g.memory_length, g.nlm_hidden

    def sync(n: int) -> int:
        return n if g.sync_select == "random-pairing" else n * (n + 1) // 2

    total = 2 * d_in + 3 * d_in if parity else 0  # Embedding(2, D_in); CustomRotationalEmbedding1D Linear(2, D_in)
    total += d_in * d_in + d_in + 2 * d_in  # kv_proj: Linear(D_in → D_in), LayerNorm
    total += sync(g.n_sync_action) * d_in + d_in  # q_proj
    total += 3 * d_in * d_in + 3 * d_in + d_in * d_in + d_in  # MultiheadAttention: in_proj, out_proj
    if g.synapse_depth == 1:
        total += (d_in + d) * 2 * d + 2 * d + 2 * d  # Dropout, Linear(→ 2D), GLU, LayerNorm(D)
    else:
        widths = [int(w) for w in np.linspace(d, 16, g.synapse_depth)]
        total += (d_in + d) * widths[0] + widths[0] + 2 * widths[0]  # first projection: Linear, LayerNorm
        for a, b in itertools.pairwise(widths):  # down (Linear, LN), up (Linear, LN), skip LayerNorm
            total += (a * b + b + 2 * b) + (b * a + a + 2 * a) + 2 * a
    if g.nlm_depth == 2:
        total += (m * 2 * h * d + d * 2 * h + 1) + (h * 2 * d + d * 2 + 1)
    else:
        total += m * 2 * d + d * 2 + 1
    total += d + d * m  # start_activated_state, start_trace
    total += sync(g.n_sync_action) + sync(g.n_sync_out)  # decay_params_action, decay_params_out
    return total + sync(g.n_sync_out) * out_dims + out_dims  # output_projector


@pytest.mark.parametrize("name", [n for n in MEASURED if n.startswith("parity")])
def test_parity_presets_count_as_the_reference(name: str) -> None:
    genome = Genome.preset(name)
    assert reference_formula(genome, 128, parity=True) == MEASURED[name]
    assert estimate(genome, PARITY).params == MEASURED[name]


def test_parity_paper_built_model_counts_as_the_reference() -> None:
    assert count_parameters(build_model(Genome.preset("parity-paper"), PARITY)) == MEASURED["parity-paper"]


def test_rotational_positions_are_3_d_input_parameters_where_the_table_was_n_d_input() -> None:
    paper = Genome.preset("parity-paper")
    learned = estimate(paper.replace(positional_embedding="learned"), PARITY)
    rotational = estimate(paper, PARITY)
    assert learned.params - rotational.params == 64 * 512 - 3 * 512


@pytest.mark.parametrize("name", sorted(TASKS))
def test_maze_and_image_presets_count_as_the_reference_core(name: str) -> None:
    genome, task = Genome.preset(name), TASKS[name]
    assert reference_formula(genome, task.out_dim, parity=False) == MEASURED[name]
    cost = estimate(genome, task)
    assert cost.params - cost.params_by_part["backbone"] == MEASURED[name]
    with torch.device("meta"):  # built without allocating memory
        model = CTM(resolve(genome, task))
    backbone = sum(p.numel() for p in model.features.backbone.parameters())
    assert count_parameters(model) - backbone == MEASURED[name]

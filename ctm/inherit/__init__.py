"""Weight inheritance along lineages: a child starts from its parent's trained weights, mapped gene by gene.

``inherit(parent_genome, parent_weights, child_genome, task, seed=...)`` builds the child with ``seed`` (its own
init), then overwrites what maps from the parent. The rules, one per gene or module:

- ``ticks`` (T): no parameter changes (``ctm.inherit.rules``).
- ``memory_length`` (M), ``nlm_hidden`` (H), ``d_model`` (D), ``d_input`` (D_in): axis maps, function-preserving
  for M padding, H widening, and D / D_in widening by an integer factor where LayerNorm allows it
  (``ctm.inherit.rules`` works out which).
- synchronisation pairs: the child takes the parent's pairs first; kept pairs keep their decay θ and their
  columns in W_out and W_S, new pairs get the child's θ and zero columns (``ctm.inherit.pairs``).
- everything else (``heads``, ``synapse_depth``, renamed or new parameters): copied by name where the shape
  matches, the overlapping block where only the size differs, else the child's init (``ctm.inherit.core``).

The result (:class:`Inherited`) is plain data: the weights, the inherited share of parameters, a per-module
report, the parent's hash and whether the function is preserved.

Across tasks (``parent_task=``: a transfer in an open-ended campaign) the CTM core maps the same way and the
tensors the task's shape decides (:func:`task_tensors`: input embedding, positions, output head) keep the
child's init, named in ``Inherited.reinitialised``.
"""

from __future__ import annotations

from ctm.inherit.core import Inherited, InheritError, inherit, task_tensors

__all__ = ["InheritError", "Inherited", "inherit", "task_tensors"]

"""Helpers for the ctm tests (a uniquely named module: tests/ctm is not a package, to avoid shadowing ``ctm``)."""

from __future__ import annotations

from typing import Any

from genome.genome import Genome


def tiny(**genes: Any) -> Genome:
    """A small CTM genome (the machine is a shared 2-core CPU); ``genes`` override the small defaults."""
    base: dict[str, Any] = dict(d_model=24, d_input=16, heads=2, ticks=5, memory_length=4, nlm_hidden=4,
                                n_sync_out=6, n_sync_action=5, batch_size=8)
    base.update(genes)
    return Genome(**base)

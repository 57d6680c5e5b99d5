"""The ``ctmevo`` command line: the room that turns arguments into calls of the other rooms.

=====================  ======================================================================================
``base``               :class:`Command`, :class:`UsageError` (exit 2), exit codes, opening a campaign
``app``                the parser and :func:`main` (the ``ctmevo`` entry point)
``validate``           ``ctmevo validate``
``campaign_commands``  ``run``, ``resume``, ``status``, ``sync``, ``lineage``, ``relocate``
``ui_command``         ``ui``: the MLflow UI of a campaign's store, on its evaluations
``train_commands``     ``export``, ``train``
``model_commands``     ``presets``, ``import-reference``, ``export-reference``
``train_progress``     ``train``'s progress lines (in logs), model card writer, callback fan-out
=====================  ======================================================================================

May import every other room of ``search`` and the layers below. Commands import what they need when they run.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """The ``ctmevo`` entry point: :func:`search.cli.app.main`, imported here so that a Ctrl-C while the
    command's modules load still ends in one line (exit 130), not a traceback."""
    try:
        from search.cli.app import main as run
    except KeyboardInterrupt:
        print("ctmevo: interrupted", file=sys.stderr)
        return 130
    return run(argv)

"""Package hygiene: ``ctm.result`` (plain data) loads without torch; the public names are exported."""

from __future__ import annotations

import subprocess
import sys

import ctm


def test_importing_ctm_result_does_not_import_torch() -> None:
    code = "import sys, ctm, ctm.result; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_names() -> None:
    for name in ("build_model", "make_task", "evaluate", "EvalResult", "EvalBudget", "TaskSpec", "Failure",
                 "BEHAVIOUR_POINTS"):
        assert hasattr(ctm, name), name
    assert callable(ctm.evaluate) and callable(ctm.build_model) and callable(ctm.make_task)

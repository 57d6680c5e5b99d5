"""``import evotorch`` without its import-time noise, and nothing else filtered.

- evotorch 0.6 decorates functions with ``torch.jit.script``, which torch now deprecates: exactly that
  DeprecationWarning is ignored during the import;
- evotorch logs "The logger is already configured ..." at import whenever the root logger has handlers (a
  campaign's logging, pytest): exactly that record is dropped during the import;
- evotorch's INFO lines (one per Problem created) are silenced by setting its logger to WARNING.
"""

from __future__ import annotations

import logging
import warnings


class _DropAlreadyConfigured(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("The logger is already configured")


_drop = _DropAlreadyConfigured()
logging.getLogger("evotorch").addFilter(_drop)
try:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated",
                                category=DeprecationWarning)
        import evotorch
        from evotorch.algorithms import CMAES, GeneticAlgorithm
        from evotorch.algorithms.searchalgorithm import SearchAlgorithm
        from evotorch.operators import GaussianMutation, SimulatedBinaryCrossOver
finally:
    logging.getLogger("evotorch").removeFilter(_drop)
logging.getLogger("evotorch").setLevel(logging.WARNING)

__all__ = ["CMAES", "GaussianMutation", "GeneticAlgorithm", "SearchAlgorithm", "SimulatedBinaryCrossOver",
           "evotorch"]

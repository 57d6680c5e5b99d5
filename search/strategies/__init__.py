"""Search strategies behind one asynchronous ask/tell contract (see :mod:`search.strategies.base`).

``make_strategy(name, space=..., seed=..., descriptors=..., settings=...)`` builds one by its YAML name:

==========================  =====================================================================
``surrogate_elites``        MAP-Elites whose children a Gaussian process screens (model-guided QD)
``map_elites``              MAP-Elites over a grid of the descriptors (search.archive)
``cvt_map_elites``          CVT-MAP-Elites (k-means centroids), for more descriptors
``novelty``                 novelty search (Lehman & Stanley), adaptive novelty archive
``nslc``                    novelty search with local competition
``dns``                     dominated novelty search (pyribs DNSArchive)
``random``                  random search
``regularized_evolution``   regularised (aging) evolution (alias ``aging_evolution``)
``optuna_tpe``              Optuna TPE over the genome's vector codec
``optuna_nsga2``            Optuna NSGA-II, multi-objective (e.g. fitness vs. MACs)
``evotorch_cmaes``          EvoTorch CMA-ES over the codec
``evotorch_ga``             EvoTorch genetic algorithm over the codec
==========================  =====================================================================

Optuna and EvoTorch are imported only when one of their strategies is made.

May import: the modules directly in ``search/`` (records, descriptors, archive, errors) and the layers below
(``ctm.result``, ``genome``); never the other rooms of ``search``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from genome import GenomeSpace
from search.descriptors import Descriptor
from search.strategies.base import Strategy, UnknownProposalError
from search.strategies.baselines import RandomSearch, RegularizedEvolution
from search.strategies.dns import DominatedNoveltySearch
from search.strategies.evaluated import Evaluated
from search.strategies.map_elites import CVTMapElites, MapElites
from search.strategies.novelty import NoveltySearch, NoveltySearchLocalCompetition
from search.strategies.settings import Setting, StrategyConfigError
from search.strategies.surrogate_elites import SurrogateElites


def _optuna(name: str) -> type[Strategy]:
    from search.strategies.optuna_strategy import OptunaNSGA2, OptunaTPE

    return {"optuna_tpe": OptunaTPE, "optuna_nsga2": OptunaNSGA2}[name]


def _evotorch(name: str) -> type[Strategy]:
    from search.strategies.evotorch_strategy import EvoTorchCMAES, EvoTorchGA

    return {"evotorch_cmaes": EvoTorchCMAES, "evotorch_ga": EvoTorchGA}[name]


_LOCAL: dict[str, type[Strategy]] = {cls.NAME: cls for cls in (
    SurrogateElites, MapElites, CVTMapElites, NoveltySearch, NoveltySearchLocalCompetition, DominatedNoveltySearch,
    RandomSearch, RegularizedEvolution)}
_LAZY = {"optuna_tpe": _optuna, "optuna_nsga2": _optuna, "evotorch_cmaes": _evotorch, "evotorch_ga": _evotorch}
ALIASES = {"aging_evolution": "regularized_evolution", "regularised_evolution": "regularized_evolution",
           "cvt": "cvt_map_elites", "me": "map_elites"}
STRATEGY_NAMES: tuple[str, ...] = (*_LOCAL, *_LAZY)


def strategy_class(name: str, *, field: str = "strategy") -> type[Strategy]:
    """The class registered under ``name`` (or an alias); unknown names raise StrategyConfigError."""
    if not isinstance(name, str):
        raise StrategyConfigError(f"{field}.name", name, f"one of {list(STRATEGY_NAMES)}")
    name = ALIASES.get(name, name)
    if name in _LOCAL:
        return _LOCAL[name]
    if name in _LAZY:
        return _LAZY[name](name)
    raise StrategyConfigError(f"{field}.name", name, f"one of {list(STRATEGY_NAMES)} (aliases: "
                              f"{sorted(ALIASES)})")


def make_strategy(name: str, *, space: GenomeSpace, seed: int, descriptors: Sequence[Descriptor] = (),
                  settings: Mapping[str, Any] | None = None, field: str = "strategy") -> Strategy:
    """Build a strategy from its YAML name and settings; every bad input names ``{field}.…``."""
    cls = strategy_class(name, field=field)
    if settings is not None and not isinstance(settings, Mapping):
        raise StrategyConfigError(f"{field}.settings", settings, "a mapping of setting name to value")
    bad = [k for k in (settings or {}) if not isinstance(k, str) or k in ("space", "seed", "descriptors",
                                                                       "field")]
    if bad:
        raise StrategyConfigError(f"{field}.settings.{bad[0]}", (settings or {})[bad[0]],
                                  f"a known setting of {cls.NAME}")
    return cls(space=space, seed=seed, descriptors=list(descriptors), field=field, **dict(settings or {}))


def strategy_settings(name: str) -> dict[str, Setting]:
    """Every setting ``name`` accepts (with type, default and meaning), for docs and ``ctmevo --help``."""
    from search.strategies.settings import COMMON_SETTINGS

    return {**COMMON_SETTINGS, **strategy_class(name).SETTINGS}


__all__ = [
    "ALIASES", "STRATEGY_NAMES", "CVTMapElites", "DominatedNoveltySearch", "Evaluated", "MapElites",
    "NoveltySearch", "NoveltySearchLocalCompetition", "RandomSearch", "RegularizedEvolution", "Setting",
    "Strategy", "StrategyConfigError", "SurrogateElites", "UnknownProposalError", "make_strategy", "strategy_class",
    "strategy_settings",
]

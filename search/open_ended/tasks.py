"""Tasks of an open-ended campaign as plain values, and the pure rules that admit them (POET's ingredients).

- :func:`mutate`: a new task from an admitted one: each difficulty axis moves by ``step`` × (−2, −1, +1, +2)
  with probability ½ (at least one axis moves), clipped to the axis's range. :func:`propose` draws the new
  candidates of a round; once every coarse neighbour of the parents has been seen and the caller says the
  frontier has stopped, it fills in between them at the axes' ``fine_step`` (coarse while the frontier moves;
  finer once it has stopped, so the family does not run dry).
- :func:`minimal_criterion`: the current elites, fine-tuned briefly on a candidate, are neither all failing
  it nor already solving it: the best screened score lies in ``[low, high)``.
- :func:`pata_ec` and :func:`novelty`: a task is characterised by how it *ranks* the elites (POET's PATA-EC:
  scores clipped to the band, ranked, centred to [−0.5, 0.5]); a candidate's novelty is the mean distance of its
  ranking to the k nearest rankings of the tasks seen so far, over the elites scored on both. The scores are
  the ones already paid for (the screen of each candidate, each task's own elite, the transfers), so novelty
  costs no evaluation beyond the screen the minimal criterion needs.

Everything here is a function of its arguments and an explicit ``numpy.random.Generator``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["Agent", "minimal_criterion", "mutate", "novelty", "pata_ec", "propose", "task_id", "task_key", "verdict"]

Agent = str  # an elite as "<home task id>/<genome hash>": the same genome trained on another task is another agent


def task_id(number: int, params: Mapping[str, Any], axes: Sequence[str]) -> str:
    """``t03-length8``: the task's number, then each difficulty parameter and its value."""
    return f"t{number:02d}-" + "-".join(f"{name}{params[name]}" for name in axes)


def task_key(params: Mapping[str, Any], axes: Iterable[str]) -> tuple[Any, ...]:
    """What makes two tasks the same task: their values of the difficulty axes, in the axes' order."""
    return tuple(params[a] for a in axes)


def mutate(params: Mapping[str, Any], axes: Mapping[str, Any], rng: np.random.Generator, *,
           fine: bool = False) -> dict[str, Any]:
    """A neighbour of ``params`` along the difficulty ``axes`` (each with ``min``, ``max``, ``step``, and
    optionally ``fine_step``, used instead of ``step`` when ``fine``)."""
    out = dict(params)
    names = list(axes)
    moving = [n for n in names if rng.random() < 0.5] or [names[int(rng.integers(len(names)))]]
    for name in moving:
        axis = axes[name]
        lo, hi, step = _get(axis, "min"), _get(axis, "max"), _get(axis, "step")
        if fine and (fine_step := _optional(axis, "fine_step")):
            step = fine_step
        shift = int(rng.choice([-2, -1, 1, 2])) * step
        out[name] = int(min(hi, max(lo, int(params[name]) + shift)))
    return out


def propose(parents: Sequence[tuple[str, Mapping[str, Any]]], axes: Mapping[str, Any], seen: set[tuple[Any, ...]],
            rng: np.random.Generator, *, want: int, tries: int, refine: bool = True
            ) -> list[tuple[str, dict[str, Any]]]:
    """Up to ``want`` new tasks ``(parent id, params)``, each mutated from a random parent and never in ``seen``
    (keys: :func:`task_key`; the new ones are added). ``tries`` mutations at the axes' ``step``; when
    none of them is new, ``refine`` is true and some axis has a ``fine_step``, as many at that step."""
    out: list[tuple[str, dict[str, Any]]] = []
    fine_too = refine and any(_optional(axis, "fine_step") for axis in axes.values())
    for fine in (False, True) if fine_too else (False,):
        for _ in range(tries if parents else 0):
            if len(out) >= want:
                break
            parent_id, parent = parents[int(rng.integers(len(parents)))]
            params = mutate(parent, axes, rng, fine=fine)
            key = task_key(params, axes)
            if key not in seen:
                seen.add(key)
                out.append((parent_id, params))
        if out:
            break
    return out


def _get(axis: Any, key: str) -> int:
    return int(axis[key] if isinstance(axis, Mapping) else getattr(axis, key))


def _optional(axis: Any, key: str) -> int | None:
    value = axis.get(key) if isinstance(axis, Mapping) else getattr(axis, key, None)
    return None if value is None else int(value)


def minimal_criterion(scores: Sequence[float], band: tuple[float, float]) -> str | None:
    """``None`` when the candidate passes, else why not: ``"too hard"`` (every elite below ``low``) or
    ``"too easy"`` (an elite already at ``high`` or above)."""
    low, high = band
    if not scores or max(scores) < low:
        return "too hard"
    if max(scores) >= high:
        return "too easy"
    return None


def pata_ec(scores: Mapping[Agent, float], agents: Sequence[Agent], band: tuple[float, float]) -> np.ndarray:
    """The ranking of ``agents`` that ``scores`` make: clipped to ``band``, ranked (ties share their mean rank),
    centred to [−0.5, 0.5]."""
    values = np.clip(np.array([scores[a] for a in agents], dtype=float), band[0], band[1])
    if len(values) < 2:
        return np.zeros(len(values))
    order = values.argsort(kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values), dtype=float)
    for value in np.unique(values):  # ties: the mean of their ranks
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks / (len(values) - 1) - 0.5


def novelty(candidate: Mapping[Agent, float], seen: Mapping[str, Mapping[Agent, float]], band: tuple[float, float],
            *, k: int) -> float | None:
    """Mean distance of the candidate's ranking to the ``k`` nearest tasks in ``seen`` (task → agent scores), each
    compared over the agents both scored (at least two, normalised by their number); ``None`` when no task
    shares two agents with the candidate (nothing says it is a copy)."""
    distances = []
    for scores in seen.values():
        common = sorted(set(candidate) & set(scores))
        if len(common) < 2:
            continue
        a, b = pata_ec(candidate, common, band), pata_ec(scores, common, band)
        distances.append(float(np.linalg.norm(a - b)) / np.sqrt(len(common)))
    if not distances:
        return None
    return float(np.mean(sorted(distances)[:k]))


def verdict(scores: Sequence[float], band: tuple[float, float], novelty_value: float | None, novelty_min: float
            ) -> str | None:
    """Why a screened candidate is refused (the minimal criterion first, then novelty), or ``None``."""
    why = minimal_criterion(scores, band)
    if why is None and novelty_value is not None and novelty_value < novelty_min:
        why = f"not novel ({novelty_value:.3f} < {novelty_min:g})"
    return why

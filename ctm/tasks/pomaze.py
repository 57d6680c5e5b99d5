"""Partially observed mazes: walk from start to goal seeing only a small window, one move per observation step.

An episode is a perfect maze (``ctm.tasks.mazegen``, ``size`` × ``size`` pixels, rotated/flipped when
``augment``), a start cell and a goal cell that the expert reaches in between ⌈R/2⌉ and R moves (R =
``route_length``; the farthest cell within R when none is that far). The agent sees, at each of R steps, the
``window`` × ``window`` pixels around its position (channels: passage, outside the maze, goal) and, with
``compass`` (default: when the expert steers by it), the goal's offset (Δrow, Δcol) / window, clipped to
[−1, 1], in two more channels; the CTM thinks T
ticks per step, its state carried from step to step (``TaskShape.steps``, :meth:`ctm.model.CTM.act`), and
answers one move per step (up, down, left, right, wait: wait once at the goal).

The expert (``expert``) is what the agent imitates:
- ``explore`` (default): depth-first exploration steered by the compass (:func:`explorer`): the unvisited
  neighbour most in the goal's direction, one step back along its trail from a dead end. Its next move follows
  from the walls in sight, the compass and the places it has been, so the agent can match it exactly if it
  remembers where it went; the longer the route, the more it must remember (a CTM trained on routes of 8 moves,
  0.98 on them, reached the goal in 56% of routes of 16 and 16% of routes of 32 with no further training).
- ``wall``: the right-hand rule (:func:`wall_follower`), with no compass. Its next move needs only the walls in
  sight and the last move, so a policy learnt on short routes walks long ones too: as a task family it saturates
  (every longer route was "too easy" at once).
- ``shortest``: the shortest route (BFS), which knows the whole maze. With the window and the compass the agent
  cannot tell at a junction which branch leads to the goal, so imitation has a ceiling set by the mazes, not by
  the CTM (measured: docs/open_ended.md#partially-observed-mazes).

Training is behaviour cloning under teacher forcing: observation s is the window at the expert's position after
s moves, and the target is the expert's next move. Loss and answer are per step: at each step the CTM's tick
selection (min-loss tick and most-certain tick of that step) and the move at that step's most certain tick. Only
the route's steps count (its moves and the wait on arriving), not the waits that pad a short route to R, which
would make long ``route_length`` in small mazes look easy. ``answer`` is the per-step accuracy over those steps
(``val_accuracy``); ``sequence`` (every one right) is a lower bound on closed-loop success, because an agent that
makes the expert's move wherever the expert went walks the expert's route.

The fitness is the success itself (:meth:`PartialMazeTask.closed_loop`, ``closed_loop_success``, by
``ctm.evaluation``): the agent's own moves decide what it sees next (a move into a wall leaves it in place), and
an episode succeeds when it stands on the goal within R steps. Teacher forcing flatters an agent: in a campaign
of this family (shortest-route expert), a best at 0.966 per-step accuracy over routes of up to 12 moves reached
the goal in 71% of the episodes (sequence accuracy 70%).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from ctm.loss import normalised_entropy, per_tick_cross_entropy, split_logits
from ctm.tasks import mazegen
from ctm.tasks.base import ClassificationTask, Param, Scores, TaskError, rng_for, take_params
from genome.cost import BackboneSpec, TaskShape

EXPERTS = ("explore", "wall", "shortest")
SCHEMA = {
    "size": Param(9, int, low=5, high=255),
    "route_length": Param(8, int, low=2, high=1_000),
    "window": Param(5, int, low=3, high=15),
    "expert": Param("explore", str, choices=EXPERTS),
    "compass": Param(None, bool),
    "conv_layers": Param(1, int, low=1, high=4),
    "augment": Param(True, bool),
}
PASSAGE, OUTSIDE, GOAL, COMPASS_ROW, COMPASS_COL = range(5)
RIGHT_OF = {mazegen.UP: mazegen.RIGHT, mazegen.RIGHT: mazegen.DOWN, mazegen.DOWN: mazegen.LEFT,
            mazegen.LEFT: mazegen.UP}
LEFT_OF = {turned: move for move, turned in RIGHT_OF.items()}
BACK = {mazegen.UP: mazegen.DOWN, mazegen.DOWN: mazegen.UP, mazegen.LEFT: mazegen.RIGHT, mazegen.RIGHT: mazegen.LEFT}


class PartialMazeTask(ClassificationTask):
    name = "pomaze"

    def __init__(self, *, size: int = 9, route_length: int = 8, window: int = 5, expert: str = "explore",
                 compass: bool | None = None, conv_layers: int = 1, augment: bool = True):
        for key, value in (("size", size), ("window", window)):
            if value % 2 == 0:
                raise TaskError(f"task 'pomaze': params.{key} = {value}: allowed is an odd integer (the "
                                f"{'maze generator grid' if key == 'size' else 'window is centred on the agent'})")
        if compass is None:  # shown when the expert steers by it
            compass = expert != "wall"
        self.size, self.route_length, self.window, self.compass = size, route_length, window, compass
        self.expert = expert
        self.augment = augment
        self.channels = 5 if compass else 3
        backbone = BackboneSpec(kind="conv", n_tokens=window * window, in_channels=self.channels, height=window,
                                width=window, conv_layers=conv_layers, stride=1)
        self.shape = TaskShape(name="pomaze", backbone=backbone, out_positions=route_length,
                               out_classes=len(mazegen.MOVES), steps=route_length)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> PartialMazeTask:
        return cls(**take_params("pomaze", params, SCHEMA))

    # episodes and observations

    def episode(self, rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int], tuple[int, int], list[int]]:
        """(grid bool [size, size], start, goal, the expert's moves padded with WAIT to R)."""
        grid = mazegen.generate(self.size, rng)
        if self.augment:
            grid = mazegen.transform_image(grid, int(rng.integers(4)), bool(rng.integers(2)))
        cells = [(r, c) for r in range(1, self.size, 2) for c in range(1, self.size, 2)]
        start = cells[int(rng.integers(len(cells)))]
        if self.expert == "wall":
            walk = wall_follower(grid, start, self.route_length)
            distance = np.full(grid.shape, np.iinfo(np.int32).max // 2, dtype=np.int64)
            for t, position in reversed(list(enumerate(_positions(grid, start, walk)))):
                distance[position] = t  # the step at which the walk first stands there
        else:
            distance = mazegen.distances(grid, start)
        far = [cell for cell in cells if -(-self.route_length // 2) <= distance[cell] <= self.route_length]
        if self.expert == "explore":
            return self._exploring(grid, start, far, rng)
        if not far:
            reach = max(distance[cell] for cell in cells if distance[cell] <= self.route_length)
            far = [cell for cell in cells if distance[cell] == reach]
        goal = far[int(rng.integers(len(far)))]
        if self.expert == "wall":
            moves = walk[:int(distance[goal])]
        else:
            moves = mazegen.bfs_route(grid, start, goal) if goal != start else []
        return grid, start, goal, moves + [mazegen.WAIT] * (self.route_length - len(moves))

    def _exploring(self, grid: np.ndarray, start: tuple[int, int], far: list[tuple[int, int]],
                   rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int], tuple[int, int], list[int]]:
        """An episode of the explorer: a goal between R/2 and R moves away by the shortest route that the explorer
        reaches within R moves (up to 16 tried), else the cell joined to the start's (2 moves straight there)."""
        for index in rng.permutation(len(far))[:16]:
            moves = explorer(grid, start, far[int(index)], self.route_length, self.window)
            if moves is not None:
                return grid, start, far[int(index)], moves + [mazegen.WAIT] * (self.route_length - len(moves))
        joined = [m for m in (mazegen.UP, mazegen.DOWN, mazegen.LEFT, mazegen.RIGHT)
                  if mazegen.step(grid, start, m) != start]
        move = joined[int(rng.integers(len(joined)))]
        goal = mazegen.step(grid, mazegen.step(grid, start, move), move)
        moves = explorer(grid, start, goal, self.route_length, self.window) or []
        return grid, start, goal, moves + [mazegen.WAIT] * (self.route_length - len(moves))

    def observe(self, grid: np.ndarray, position: tuple[int, int], goal: tuple[int, int]) -> np.ndarray:
        """The agent's view at ``position``: float32 [channels, window, window]."""
        half, size = self.window // 2, self.size
        view = np.zeros((self.channels, self.window, self.window), dtype=np.float32)
        r0, c0 = position[0] - half, position[1] - half
        rows, cols = np.arange(r0, r0 + self.window), np.arange(c0, c0 + self.window)
        inside = ((rows >= 0) & (rows < size))[:, None] & ((cols >= 0) & (cols < size))[None, :]
        view[OUTSIDE] = ~inside
        rr, cc = np.clip(rows, 0, size - 1), np.clip(cols, 0, size - 1)
        view[PASSAGE] = grid[np.ix_(rr, cc)] & inside
        if r0 <= goal[0] < r0 + self.window and c0 <= goal[1] < c0 + self.window:
            view[GOAL, goal[0] - r0, goal[1] - c0] = 1.0
        if self.compass:
            view[COMPASS_ROW], view[COMPASS_COL] = compass(position, goal, self.window)
        return view

    def batch(self, split: str, index: int, batch_size: int, seed: int) -> tuple[Tensor, Tensor]:
        """Observations float32 [B, R, channels, window, window] along the expert's route; moves int64 [B, R]."""
        rng = rng_for(seed, split, index)
        views = np.empty((batch_size, self.route_length, self.channels, self.window, self.window), dtype=np.float32)
        moves = np.empty((batch_size, self.route_length), dtype=np.int64)
        for b in range(batch_size):
            grid, position, goal, route = self.episode(rng)
            for s, move in enumerate(route):
                views[b, s] = self.observe(grid, position, goal)
                position = mazegen.step(grid, position, move)
            moves[b] = route
        return torch.from_numpy(views), torch.from_numpy(moves)

    # loss and scores: per step, over the route's moves and the stop at the goal

    def _per_step(self, predictions: Tensor, targets: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """logits [B, R, C, T], each step's certainty [B, R, T] (1 − normalised entropy), and the steps that count
        [B, R]: the expert's moves and its first wait at the goal, not the waits that pad the route to R."""
        logits = split_logits(predictions, self.shape.out_positions, self.shape.out_classes)
        certainty = 1.0 - normalised_entropy(logits)
        waits = targets == mazegen.WAIT
        arrival = torch.where(waits.any(1), waits.float().argmax(1), targets.shape[1])  # steps to the goal
        counted = torch.arange(targets.shape[1], device=targets.device).unsqueeze(0) <= arrival.unsqueeze(1)
        return logits, certainty, counted.float()

    def loss(self, predictions: Tensor, certainties: Tensor, targets: Tensor) -> Tensor:
        """The CTM tick selection within each counted step, averaged over those steps, then over samples."""
        logits, certainty, counted = self._per_step(predictions, targets)
        losses = per_tick_cross_entropy(logits, targets)  # [B, R, T]
        best = losses.gather(2, losses.argmin(dim=2, keepdim=True)).squeeze(2)
        sure = losses.gather(2, certainty.argmax(dim=2, keepdim=True)).squeeze(2)
        return (0.5 * (best + sure) * counted).sum(1).div(counted.sum(1)).mean()

    @torch.no_grad()
    def score(self, predictions: Tensor, certainties: Tensor, targets: Tensor) -> Scores:
        logits, certainty, counted = self._per_step(predictions, targets)
        right = (logits.argmax(2) == targets.unsqueeze(-1)).float()  # [B, R, T]
        at_sure = right.gather(2, certainty.argmax(2, keepdim=True)).squeeze(2)  # [B, R]
        steps = counted.sum(1)
        confidence, chosen = torch.softmax(logits, dim=2).mean(-1).max(2)
        keep = counted.flatten().bool()
        return Scores(per_tick=((right * counted.unsqueeze(-1)).sum(1) / steps.unsqueeze(-1)).cpu(),
                      answer=((at_sure * counted).sum(1) / steps).cpu(),
                      sequence=(at_sure + (1 - counted)).clamp(max=1).min(1).values.cpu(),
                      confidence=confidence.flatten()[keep].cpu(),
                      correct=(chosen == targets).float().flatten()[keep].cpu())

    # closed loop

    @torch.no_grad()
    def closed_loop(self, model: Any, *, samples: int, seed: int, device: torch.device | str = "cpu",
                    batch_size: int = 256) -> float:
        """Share of ``samples`` fresh episodes (split ``val``, ``seed``) in which the agent, acting on its own
        moves (each step's move at that step's most certain tick), stands on the goal within R steps."""
        rng = rng_for(seed, "val", 0)  # the episodes of ``batch("val", 0, samples, seed)``
        episodes = [self.episode(rng) for _ in range(samples)]
        solved = 0
        for lo in range(0, samples, batch_size):
            chunk = episodes[lo:lo + batch_size]
            grids, goals = [e[0] for e in chunk], [e[2] for e in chunk]
            positions = [e[1] for e in chunk]
            done = np.array([start == goal for start, goal in zip(positions, goals, strict=True)])
            state = model.start(len(chunk))
            for _ in range(self.route_length):
                views = np.stack([self.observe(*view) for view in zip(grids, positions, goals, strict=True)])
                predictions, certainties, state = model.act(state, torch.from_numpy(views).to(device))
                sure = certainties[:, 1].argmax(1)  # [B]
                moves = predictions.argmax(1).gather(1, sure.unsqueeze(1)).squeeze(1).tolist()
                positions = [mazegen.step(*args) for args in zip(grids, positions, moves, strict=True)]
                done |= np.array([pos == goal for pos, goal in zip(positions, goals, strict=True)])
            solved += int(done.sum())
        return solved / samples


def compass(position: tuple[int, int], goal: tuple[int, int], window: int) -> tuple[float, float]:
    """The goal's offset in windows, clipped to [−1, 1]: the same reading in every maze size of the family."""
    return (float(np.clip((goal[0] - position[0]) / window, -1.0, 1.0)),
            float(np.clip((goal[1] - position[1]) / window, -1.0, 1.0)))


def explorer(grid: np.ndarray, start: tuple[int, int], goal: tuple[int, int], limit: int, window: int
             ) -> list[int] | None:
    """Depth-first exploration steered by the compass, until the goal (``None`` if not within ``limit`` moves): go
    to the unvisited neighbour most in the compass's direction (ties: up, down, left, right), and back one step
    along the way it came when none is left. Its next move follows from the walls in sight, the compass and the
    places it has been: the longer the route, the more the agent must remember."""
    visited, trail, position, moves = {start}, [start], start, []
    while position != goal:
        if len(moves) >= limit:
            return None
        options = [m for m in (mazegen.UP, mazegen.DOWN, mazegen.LEFT, mazegen.RIGHT)
                   if mazegen.step(grid, position, m) not in visited]  # a wall leaves it where it was: visited
        if options:
            dr, dc = compass(position, goal, window)
            move = max(options, key=lambda m: float(mazegen.DELTAS[m, 0]) * dr + float(mazegen.DELTAS[m, 1]) * dc)
            position = mazegen.step(grid, position, move)
            visited.add(position)
            trail.append(position)
        else:
            trail.pop()
            back = (trail[-1][0] - position[0], trail[-1][1] - position[1])
            move = next(m for m in range(4) if tuple(int(v) for v in mazegen.DELTAS[m]) == back)
            position = trail[-1]
        moves.append(move)
    return moves


def wall_follower(grid: np.ndarray, start: tuple[int, int], steps: int) -> list[int]:
    """``steps`` moves of the right-hand rule from ``start``, heading up at first: turn right if the passage
    allows, else go straight, else left, else back. In a perfect maze this walk reaches every cell, and what it
    does next is a function of the walls beside it and its heading: the last move, which the agent must remember."""
    heading, position, moves = mazegen.UP, start, []
    for _ in range(steps):
        for move in (RIGHT_OF[heading], heading, LEFT_OF[heading], BACK[heading]):
            if (nxt := mazegen.step(grid, position, move)) != position:
                heading, position = move, nxt
                moves.append(move)
                break
    return moves


def _positions(grid: np.ndarray, start: tuple[int, int], moves: list[int]) -> list[tuple[int, int]]:
    positions = [start]
    for move in moves:
        positions.append(mazegen.step(grid, positions[-1], move))
    return positions

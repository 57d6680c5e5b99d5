"""Procedural perfect mazes, shortest routes by BFS, and the eight rotations/flips with remapped moves.

A maze of ``size`` × ``size`` pixels (size odd) has (size − 1)/2 cells per side at odd coordinates; walls and
passages are pixels. Randomised depth-first search carves a spanning tree over the cells, so the maze is
*perfect*: every two passage pixels are joined by exactly one simple path. Moves are pixel steps.
"""

from __future__ import annotations

from collections import deque

import numpy as np

UP, DOWN, LEFT, RIGHT, WAIT = 0, 1, 2, 3, 4
MOVES = ("up", "down", "left", "right", "wait")
DELTAS = np.array([(-1, 0), (1, 0), (0, -1), (0, 1), (0, 0)])


def generate(size: int, rng: np.random.Generator) -> np.ndarray:
    """A perfect maze: bool [size, size], True = passage. Randomised depth-first search over the cells."""
    if size < 5 or size % 2 == 0:
        raise ValueError(f"size = {size}: allowed is an odd integer >= 5")
    cells = (size - 1) // 2
    grid = np.zeros((size, size), dtype=bool)
    visited = np.zeros((cells, cells), dtype=bool)
    start = (int(rng.integers(cells)), int(rng.integers(cells)))
    visited[start] = True
    grid[2 * start[0] + 1, 2 * start[1] + 1] = True
    stack = [start]
    steps = DELTAS[:4]
    while stack:
        r, c = stack[-1]
        options = [(r + dr, c + dc) for dr, dc in steps
                   if 0 <= r + dr < cells and 0 <= c + dc < cells and not visited[r + dr, c + dc]]
        if not options:
            stack.pop()
            continue
        nr, nc = options[int(rng.integers(len(options)))]
        visited[nr, nc] = True
        grid[2 * nr + 1, 2 * nc + 1] = True
        grid[r + nr + 1, c + nc + 1] = True  # the wall pixel between the two cells
        stack.append((nr, nc))
    return grid


def step(grid: np.ndarray, position: tuple[int, int], move: int) -> tuple[int, int]:
    """The position after ``move``: one pixel onto a passage, else (a wall, the edge, a wait) where it was."""
    r, c = position[0] + int(DELTAS[move, 0]), position[1] + int(DELTAS[move, 1])
    return (r, c) if 0 <= r < grid.shape[0] and 0 <= c < grid.shape[1] and grid[r, c] else position


def _search(grid: np.ndarray, start: tuple[int, int], goal: tuple[int, int] | None = None
            ) -> dict[tuple[int, int], tuple[tuple[int, int], int, int]]:
    """Breadth-first search from ``start`` over passage pixels (moves tried UP, DOWN, LEFT, RIGHT), until ``goal``
    is reached or everything reachable is: pixel → (previous pixel, move taken, route length)."""
    came: dict[tuple[int, int], tuple[tuple[int, int], int, int]] = {start: (start, -1, 0)}
    queue = deque([start])
    while queue:
        pos = queue.popleft()
        if pos == goal:
            break
        for move in (UP, DOWN, LEFT, RIGHT):
            nxt = step(grid, pos, move)
            if nxt not in came:
                came[nxt] = (pos, move, came[pos][2] + 1)
                queue.append(nxt)
    return came


def bfs_route(grid: np.ndarray, start: tuple[int, int], goal: tuple[int, int]) -> list[int]:
    """Shortest route from ``start`` to ``goal`` over passage pixels, as moves (UP/DOWN/LEFT/RIGHT)."""
    came = _search(grid, start, goal)
    if goal not in came:
        raise ValueError(f"goal {goal} is not reachable from start {start}")
    moves: list[int] = []
    pos = goal
    while pos != start:
        pos, move, _ = came[pos]
        moves.append(move)
    return moves[::-1]


def distances(grid: np.ndarray, start: tuple[int, int]) -> np.ndarray:
    """Route length (moves) from ``start`` to every pixel; pixels it cannot reach (walls included) a large
    number."""
    out = np.full(grid.shape, np.iinfo(np.int32).max // 2, dtype=np.int64)
    for pos, (_, _, length) in _search(grid, start).items():
        out[pos] = length
    return out


def transform_point(point: tuple[int, int], size: int, rotations: int, flip: bool) -> tuple[int, int]:
    """Where pixel (r, c) goes under ``np.rot90(·, rotations)`` then (if ``flip``) ``np.fliplr``."""
    r, c = point
    for _ in range(rotations % 4):
        r, c = size - 1 - c, r
    if flip:
        c = size - 1 - c
    return r, c


def transform_moves(moves: np.ndarray, rotations: int, flip: bool) -> np.ndarray:
    """Remap moves under the same transform: a step (dr, dc) becomes (−dc, dr) per rotation, (dr, −dc) on flip."""
    table = np.arange(5)
    for move in range(4):
        dr, dc = (int(v) for v in DELTAS[move])
        for _ in range(rotations % 4):
            dr, dc = -dc, dr
        if flip:
            dc = -dc
        table[move] = next(m for m in range(4) if tuple(DELTAS[m]) == (dr, dc))
    return table[moves]


def transform_image(image: np.ndarray, rotations: int, flip: bool) -> np.ndarray:
    """Apply the transform to the last two axes of ``image``."""
    out = np.rot90(image, rotations % 4, axes=(-2, -1))
    if flip:
        out = out[..., ::-1]
    return np.ascontiguousarray(out)


def sample(size: int, route_length: int, rng: np.random.Generator, augment: bool = True
           ) -> tuple[np.ndarray, np.ndarray]:
    """One example: image float32 [3, size, size] (passage, start, goal) and moves int64 [route_length]
    (the first ``route_length`` moves of the BFS route, padded with WAIT)."""
    grid = generate(size, rng)
    cells = (size - 1) // 2
    picks = rng.choice(cells * cells, size=2, replace=False)
    start, goal = ((2 * (int(p) // cells) + 1, 2 * (int(p) % cells) + 1) for p in picks)
    route = np.asarray(bfs_route(grid, start, goal), dtype=np.int64)
    image = np.zeros((3, size, size), dtype=np.float32)
    image[0] = grid
    image[1][start] = 1.0
    image[2][goal] = 1.0
    if augment:
        rotations, flip = int(rng.integers(4)), bool(rng.integers(2))
        image = transform_image(image, rotations, flip)
        route = transform_moves(route, rotations, flip)
    moves = np.full(route_length, WAIT, dtype=np.int64)
    moves[: min(route_length, len(route))] = route[:route_length]
    return image, moves

"""Tasks: parity, procedural mazes, sorting with CTC, the .npz array task, user tasks, and errors."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
import torch

from ctm import TaskSpec, make_task
from ctm.tasks import TaskError, TaskMismatch, mazegen
from ctm.tasks.sort import SortTask
from genome.genome import Genome


def test_parity_targets_and_determinism() -> None:
    task = make_task(TaskSpec(name="parity", params={"length": 10}))
    x, y = task.batch("train", 3, 16, seed=1)
    assert x.shape == y.shape == (16, 10) and x.dtype == y.dtype == torch.long
    assert torch.equal(y, x.cumsum(1) % 2)
    assert torch.equal(task.batch("train", 3, 16, seed=1)[0], x)
    assert not torch.equal(task.batch("train", 4, 16, seed=1)[0], x)
    assert not torch.equal(task.batch("val", 3, 16, seed=1)[0], x)
    assert task.shape.out_positions == 10 and task.shape.out_classes == 2


# -- mazes ----------------------------------------------------------------------------------------------------
def neighbours(grid: np.ndarray, pos: tuple[int, int]) -> list[tuple[int, int]]:
    out = []
    for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        r, c = pos[0] + dr, pos[1] + dc
        if 0 <= r < grid.shape[0] and 0 <= c < grid.shape[1] and grid[r, c]:
            out.append((r, c))
    return out


def walk(grid: np.ndarray, start: tuple[int, int], moves: np.ndarray) -> tuple[int, int]:
    pos = start
    for move in moves:
        dr, dc = mazegen.DELTAS[move]
        pos = (pos[0] + int(dr), pos[1] + int(dc))
        assert grid[pos], f"move onto a wall at {pos}"
    return pos


@pytest.mark.parametrize("size", [5, 9, 15])
def test_generated_mazes_are_perfect(size: int) -> None:
    for seed in range(5):
        grid = mazegen.generate(size, np.random.default_rng(seed))
        cells = (size - 1) // 2
        assert grid[1::2, 1::2].all() and not grid[0].any() and not grid[:, -1].any()
        nodes = list(zip(*np.nonzero(grid), strict=True))
        edges = sum(len(neighbours(grid, p)) for p in nodes) // 2
        assert len(nodes) == 2 * cells * cells - 1 and edges == len(nodes) - 1  # a tree ...
        seen, queue = {nodes[0]}, deque([nodes[0]])
        while queue:
            for n in neighbours(grid, queue.popleft()):
                if n not in seen:
                    seen.add(n)
                    queue.append(n)
        assert len(seen) == len(nodes)  # ... that is connected: exactly one path between any two passages


def test_bfs_route_is_valid_and_shortest() -> None:
    grid = mazegen.generate(11, np.random.default_rng(3))
    start, goal = (1, 1), (9, 9)
    moves = np.asarray(mazegen.bfs_route(grid, start, goal))
    assert walk(grid, start, moves) == goal
    dist = {start: 0}
    queue = deque([start])
    while queue:
        p = queue.popleft()
        for n in neighbours(grid, p):
            if n not in dist:
                dist[n] = dist[p] + 1
                queue.append(n)
    assert len(moves) == dist[goal]
    assert mazegen.bfs_route(grid, start, start) == []


def test_distances_and_steps_agree_with_the_shortest_routes() -> None:
    grid = mazegen.generate(11, np.random.default_rng(5))
    start = (1, 1)
    distance = mazegen.distances(grid, start)
    for r, c in zip(*np.nonzero(grid), strict=True):  # every passage pixel: the length of its shortest route
        moves = mazegen.bfs_route(grid, start, (int(r), int(c)))
        assert distance[r, c] == len(moves)
        position = start
        for move in moves:
            position = mazegen.step(grid, position, move)
        assert position == (r, c)
    assert (distance[~grid] > grid.size).all()  # walls are never reached
    assert mazegen.step(grid, (0, 0), mazegen.UP) == (0, 0)  # off the edge: stays
    assert mazegen.step(grid, start, mazegen.WAIT) == start


@pytest.mark.parametrize("rotations", [0, 1, 2, 3])
@pytest.mark.parametrize("flip", [False, True])
def test_rotations_and_flips_remap_moves(rotations: int, flip: bool) -> None:
    size = 13
    grid = mazegen.generate(size, np.random.default_rng(rotations))
    start, goal = (1, 11), (11, 3)
    moves = np.asarray(mazegen.bfs_route(grid, start, goal))
    new_grid = mazegen.transform_image(grid, rotations, flip)
    new_start = mazegen.transform_point(start, size, rotations, flip)
    new_goal = mazegen.transform_point(goal, size, rotations, flip)
    new_moves = mazegen.transform_moves(moves, rotations, flip)
    assert new_grid[new_start] and new_grid[new_goal]
    assert walk(new_grid, new_start, new_moves) == new_goal
    assert new_moves.tolist() == mazegen.bfs_route(new_grid, new_start, new_goal)  # the unique path
    assert mazegen.transform_moves(np.array([mazegen.WAIT]), rotations, flip).tolist() == [mazegen.WAIT]
    if rotations == 1 and not flip:  # np.rot90 turns counter-clockwise: right becomes up
        assert mazegen.transform_moves(np.array([mazegen.RIGHT]), 1, False).tolist() == [mazegen.UP]


def test_maze_task_samples_follow_the_route() -> None:
    task = make_task(TaskSpec(name="maze", params={"size": 9, "route_length": 40}))
    images, moves = task.batch("train", 0, 6, seed=2)
    assert images.shape == (6, 3, 9, 9) and moves.shape == (6, 40)
    for image, route in zip(images.numpy(), moves.numpy(), strict=True):
        start = tuple(int(v) for v in np.argwhere(image[1] == 1)[0])
        goal = tuple(int(v) for v in np.argwhere(image[2] == 1)[0])
        steps = route[route != mazegen.WAIT]
        assert (route[len(steps):] == mazegen.WAIT).all()  # padding only after the route
        assert walk(image[0] > 0, start, steps) == goal
    assert torch.equal(task.batch("train", 0, 6, seed=2)[0], images)
    assert task.shape.backbone.n_tokens == 81 and task.shape.out_classes == 5


def test_maze_route_truncated_to_route_length() -> None:
    _, moves = mazegen.sample(21, 3, np.random.default_rng(0))
    assert moves.shape == (3,) and (moves != mazegen.WAIT).sum() <= 3


# -- sorting --------------------------------------------------------------------------------------------------
def test_sort_targets_and_ctc() -> None:
    task = make_task(TaskSpec(name="sort", params={"length": 4}))
    x, y = task.batch("train", 0, 5, seed=0)
    assert torch.equal(y, x.argsort(1)) and task.shape.out_classes == 5
    ticks = 7
    perfect = torch.full((5, 5, ticks), -30.0)
    for b in range(5):  # emit blank, then each index once (with a repeat), blanks after
        path = [task.blank, y[b, 0], y[b, 0], y[b, 1], y[b, 2], task.blank, y[b, 3]]
        for t, c in enumerate(path):
            perfect[b, int(c), t] = 30.0
    certainties = torch.zeros(5, 2, ticks)
    assert task.loss(perfect, certainties, y).item() < 1e-3
    scores = task.score(perfect, certainties, y)
    assert scores.sequence.tolist() == [1.0] * 5 and scores.answer.tolist() == [1.0] * 5
    assert scores.per_tick[0].tolist() == [0, 0.25, 0.25, 0.5, 0.75, 0.75, 1.0]
    wrong = perfect.roll(1, dims=1)
    assert task.loss(wrong, certainties, y).item() > 10
    assert task.score(wrong, certainties, y).sequence.sum() == 0


def test_sort_decoding_counts_positions() -> None:
    task = SortTask(length=3)
    targets = torch.tensor([[2, 0, 1]])
    path = [2, 1, 1, 3, 1]  # decodes to [2, 1, 1]: positions 0 and 2 right
    logits = torch.full((1, 4, 5), -9.0)
    for t, c in enumerate(path):
        logits[0, c, t] = 9.0
    scores = task.score(logits, torch.zeros(1, 2, 5), targets)
    assert scores.answer.item() == pytest.approx(2 / 3) and scores.sequence.item() == 0


def test_sort_needs_enough_ticks() -> None:
    task = make_task(TaskSpec(name="sort", params={"length": 8}))
    with pytest.raises(TaskMismatch, match="ticks = 5"):
        task.check_genome(Genome(ticks=5))
    task.check_genome(Genome(ticks=8))


# -- array files ----------------------------------------------------------------------------------------------
def write_tabular(path, n: int = 120, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    inputs = rng.normal(size=(n, 5)).astype(np.float32) * 3 + 1
    labels = (inputs[:, 0] + inputs[:, 2] > 2).astype(np.int64)
    np.savez(path, inputs=inputs, labels=labels)


def test_array_task_tabular(tmp_path) -> None:
    path = tmp_path / "tab.npz"
    write_tabular(path)
    task = make_task(TaskSpec(name="array", params={"path": str(path), "val_fraction": 0.25}))
    assert task.shape.backbone.kind == "scalar" and task.shape.backbone.n_tokens == 5
    assert task.shape.out_classes == 2 and len(task.val_y) == 30 and len(task.train_y) == 90
    x, y = task.batch("train", 0, 16, seed=0)
    assert x.shape == (16, 5) and y.shape == (16, 1)
    assert abs(float(task.train_x.mean())) < 1e-4 and abs(float(task.train_x.std()) - 1) < 0.02
    vx, vy = task.batch("val", 0, 1000, seed=0)
    assert len(vx) == 30 and torch.equal(vy, task.val_y)


def test_array_task_images(tmp_path) -> None:
    path = tmp_path / "img.npz"
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(40, 20, 20, 3)).astype(np.uint8)
    np.savez(path, inputs=images, labels=rng.integers(0, 4, size=40),
             inputs_val=images[:8], labels_val=np.arange(8) % 4)
    task = make_task(TaskSpec(name="array", params={"path": str(path), "channels_last": True}))
    b = task.shape.backbone
    assert (b.kind, b.in_channels, b.height, b.width, b.stride, b.n_tokens) == ("conv", 3, 20, 20, 2, 100)
    assert task.shape.out_classes == 4 and task.batch("train", 0, 5, 0)[0].shape == (5, 3, 20, 20)


def test_array_task_errors(tmp_path) -> None:
    with pytest.raises(TaskError, match=r"params\.path"):
        make_task(TaskSpec(name="array", params={"path": str(tmp_path / "missing.npz")}))
    np.savez(tmp_path / "bad.npz", x=np.zeros((4, 2)), y=np.zeros(4))
    with pytest.raises(TaskError, match="'inputs' and 'labels'"):
        make_task(TaskSpec(name="array", params={"path": str(tmp_path / "bad.npz")}))
    with pytest.raises(TaskError, match=r"params\.path is required"):
        make_task(TaskSpec(name="array"))


# -- user tasks and errors ------------------------------------------------------------------------------------
USER_MODULE = '''
import torch
from ctm.tasks.base import ClassificationTask, rng_for
from genome.cost import BackboneSpec, TaskShape


class Majority(ClassificationTask):
    """Is the sum of n bits more than half?"""

    name = "majority"

    def __init__(self, n=5):
        self.n = n
        self.shape = TaskShape(name="majority", backbone=BackboneSpec(kind="embedding", n_tokens=n, vocab=2),
                               out_positions=1, out_classes=2)

    def batch(self, split, index, batch_size, seed):
        bits = torch.from_numpy(rng_for(seed, split, index).integers(0, 2, size=(batch_size, self.n)))
        return bits, (bits.sum(1, keepdim=True) * 2 > self.n).long()


class NotATask:
    def __init__(self):
        pass
'''


def test_user_task_module_class(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_ctm_tasks.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    task = make_task(TaskSpec(name="my_ctm_tasks:Majority", params={"n": 7}))
    assert task.shape.backbone.n_tokens == 7
    x, y = task.batch("train", 0, 4, 0)
    assert x.shape == (4, 7) and y.shape == (4, 1)
    with pytest.raises(TaskError, match="lacks batch, loss, score, shape"):
        make_task(TaskSpec(name="my_ctm_tasks:NotATask"))
    with pytest.raises(TaskError, match="no class 'Nope'"):
        make_task(TaskSpec(name="my_ctm_tasks:Nope"))
    with pytest.raises(TaskError, match=r"allowed is what Majority\(...\) accepts"):
        make_task(TaskSpec(name="my_ctm_tasks:Majority", params={"bogus": 1}))
    with pytest.raises(TaskError, match="cannot be imported"):
        make_task(TaskSpec(name="no_such_module_xyz:Task"))


@pytest.mark.parametrize("spec,match", [
    (TaskSpec(name="parityy"), "task.name = 'parityy': allowed is one of"),
    (TaskSpec(name="parity", params={"lenght": 8}), "params.lenght = 8 is not a parameter"),
    (TaskSpec(name="parity", params={"length": 0}), r"params.length = 0: allowed is an integer >= 1"),
    (TaskSpec(name="parity", params={"length": "8"}), "params.length = '8'"),
    (TaskSpec(name="maze", params={"size": 10}), "params.size = 10: allowed is an odd integer"),
    (TaskSpec(name="maze", params={"augment": 1}), "params.augment = 1: allowed is a bool"),
    (TaskSpec(name="sort", params={"length": 1}), "params.length = 1"),
    (TaskSpec(name=":Class"), "'module:Class'"),
])
def test_bad_task_names_and_params_raise_clear_errors(spec: TaskSpec, match: str) -> None:
    with pytest.raises(TaskError, match=match):
        make_task(spec)

"""The partially observed maze: episodes, the agent's view, a stepped CTM that only sees the past, and the closed
loop in which the agent's own moves decide what it sees next."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ctm_testutil import tiny

from ctm import TaskSpec, build_model, make_task
from ctm.evaluation import evaluate, measure_state
from ctm.result import EvalBudget
from ctm.tasks import TaskError, mazegen
from ctm.tasks.base import rng_for
from ctm.tasks.pomaze import COMPASS_COL, COMPASS_ROW, GOAL, OUTSIDE, PASSAGE, PartialMazeTask


def walk(grid: np.ndarray, start: tuple[int, int], moves: list[int]) -> list[tuple[int, int]]:
    positions = [start]
    for move in moves:
        nxt = mazegen.step(grid, positions[-1], move)
        assert move == mazegen.WAIT or nxt != positions[-1], "the expert never walks into a wall"
        positions.append(nxt)
    return positions


@pytest.mark.parametrize(("size", "route"), [(7, 4), (9, 8), (11, 30)])
def test_shortest_route_episodes_are_bfs_routes_of_the_asked_length(size: int, route: int) -> None:
    task = PartialMazeTask(size=size, route_length=route, expert="shortest", compass=True)
    rng = np.random.default_rng(0)
    lengths = []
    for _ in range(40):
        grid, start, goal, moves = task.episode(rng)
        assert len(moves) == route and start != goal
        path = walk(grid, start, moves)
        arrive = path.index(goal)
        assert all(p == goal for p in path[arrive:]) and all(m == mazegen.WAIT for m in moves[arrive:])
        assert arrive == len(mazegen.bfs_route(grid, start, goal)) <= route
        lengths.append(arrive)
    if route <= 8:  # a goal between R/2 and R moves away exists in these mazes
        assert min(lengths) >= -(-route // 2)


@pytest.mark.parametrize(("size", "route"), [(5, 2), (9, 8), (11, 30)])
def test_wall_follower_episodes_keep_a_hand_on_the_right_wall_until_the_goal(size: int, route: int) -> None:
    """Each move is the first open one of: right of the heading, straight, left, back (heading up at first); the
    goal is where the walk first arrives after ⌈R/2⌉ to R moves, and the walk stops there."""
    task = PartialMazeTask(size=size, route_length=route, expert="wall")
    rng = np.random.default_rng(1)
    right_of = {mazegen.UP: mazegen.RIGHT, mazegen.RIGHT: mazegen.DOWN, mazegen.DOWN: mazegen.LEFT,
                mazegen.LEFT: mazegen.UP}
    for _ in range(30):
        grid, start, goal, moves = task.episode(rng)
        path = walk(grid, start, moves)
        arrive = path.index(goal)
        assert 0 < arrive <= route and all(m == mazegen.WAIT for m in moves[arrive:])
        heading = mazegen.UP
        for position, move in zip(path[:arrive], moves[:arrive], strict=True):
            turns = [right_of[heading], heading, right_of[right_of[right_of[heading]]], right_of[right_of[heading]]]
            first_open = next(m for m in turns if mazegen.step(grid, position, m) != position)
            assert move == first_open
            heading = move
        if route <= 8:
            assert arrive >= -(-route // 2)


@pytest.mark.parametrize(("size", "route"), [(5, 2), (9, 8), (15, 32)])
def test_the_explorer_goes_depth_first_towards_the_compass_and_backtracks_from_dead_ends(size: int, route: int
                                                                                         ) -> None:
    task = PartialMazeTask(size=size, route_length=route)
    rng = np.random.default_rng(2)
    backtracked = 0
    for _ in range(30):
        grid, start, goal, moves = task.episode(rng)
        path = walk(grid, start, moves)
        arrive = path.index(goal)
        assert 0 < arrive <= route and all(m == mazegen.WAIT for m in moves[arrive:])
        visited, trail = {start}, [start]
        for position, move, nxt in zip(path[:arrive], moves[:arrive], path[1:arrive + 1], strict=True):
            fresh = [m for m in range(4) if mazegen.step(grid, position, m) not in visited | {position}]
            if fresh:  # forward: the unvisited neighbour most in the compass's direction
                dr, dc = task.observe(grid, position, goal)[[COMPASS_ROW, COMPASS_COL], 0, 0]
                scores = [mazegen.DELTAS[m, 0] * dr + mazegen.DELTAS[m, 1] * dc for m in fresh]
                assert move == fresh[int(np.argmax(scores))]
                visited.add(nxt)
                trail.append(nxt)
            else:  # a dead end: one step back the way it came
                trail.pop()
                assert nxt == trail[-1]
                backtracked += 1
    if route >= 32:
        assert backtracked > 0  # long routes make it turn back from dead ends


def test_the_view_is_a_window_centred_on_the_agent() -> None:
    task = PartialMazeTask(size=9, route_length=4, window=5, compass=True)
    grid = mazegen.generate(9, np.random.default_rng(3))
    view = task.observe(grid, (1, 1), (3, 7))
    assert view.shape == (5, 5, 5)
    assert view[PASSAGE, 2, 2] == 1 and view[OUTSIDE, 2, 2] == 0  # the agent stands on a passage
    assert view[OUTSIDE, 0].all() and view[OUTSIDE, :, 0].all() and not view[OUTSIDE, 1:, 1:].any()
    assert not view[PASSAGE][view[OUTSIDE] == 1].any()
    np.testing.assert_array_equal(view[PASSAGE, 1:, 1:], grid[0:4, 0:4])
    assert view[GOAL].sum() == 0  # the goal (3, 7) is outside the window
    assert view[COMPASS_ROW, 0, 0] == pytest.approx(2 / 5) and view[COMPASS_COL, 4, 4] == pytest.approx(1.0)
    near = task.observe(grid, (3, 5), (3, 7))
    assert near[GOAL, 2, 4] == 1 and near[GOAL].sum() == 1
    assert PartialMazeTask(size=9, route_length=4, expert="wall").observe(grid, (1, 1), (3, 7)).shape == (3, 5, 5)


def test_batches_are_views_along_the_expert_route_and_deterministic() -> None:
    task = make_task({"name": "pomaze", "params": {"size": 7, "route_length": 6}})
    x, y = task.batch("train", 2, 3, seed=5)
    assert x.shape == (3, 6, 5, 5, 5) and y.shape == (3, 6) and x.dtype == torch.float32  # window and compass
    assert task.shape.steps == task.shape.out_positions == 6 and task.shape.backbone.n_tokens == 25
    rng = rng_for(5, "train", 2)
    grid, start, goal, moves = task.episode(rng)
    assert y[0].tolist() == moves
    for s, position in enumerate(walk(grid, start, moves)[:6]):
        np.testing.assert_array_equal(x[0, s].numpy(), task.observe(grid, position, goal))
    assert torch.equal(task.batch("train", 2, 3, seed=5)[0], x)
    assert not torch.equal(task.batch("val", 2, 3, seed=5)[0], x)


def test_a_stepped_ctm_answers_each_step_from_the_past_only_and_acts_one_step_at_a_time() -> None:
    task = PartialMazeTask(size=7, route_length=5)
    model = build_model(tiny(ticks=3), task, seed=1).eval()
    x, _ = task.batch("val", 0, 4, seed=0)
    with torch.no_grad():
        predictions, certainties = model(x)
        assert predictions.shape == (4, 5 * 5, 3) and certainties.shape == (4, 2, 3)
        changed = x.clone()
        changed[:, 3:] = torch.rand_like(changed[:, 3:])
        after, _ = model(changed)
        assert torch.equal(after[:, :3 * 5], predictions[:, :3 * 5])  # steps 0-2 never saw observations 3-4
        assert not torch.allclose(after[:, 3 * 5:], predictions[:, 3 * 5:])
        state = model.start(4)
        for s in range(5):  # the closed-loop API computes the same answers, one observation at a time
            step, _, state = model.act(state, x[:, s])
            torch.testing.assert_close(step, predictions[:, 5 * s:5 * (s + 1)], rtol=1e-5, atol=1e-6)


class Scripted:
    """A fake agent: replays ``moves[sample][step]`` (as one certain tick), ignoring what it sees."""

    def __init__(self, moves: list[list[int]]):
        self.moves, self.batch_start, self.batch = moves, 0, 0

    def start(self, batch: int) -> int:  # episodes come in chunks, in order
        self.batch_start, self.batch = self.batch_start + self.batch, batch
        return 0

    def act(self, step: int, views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        rows = [self.moves[self.batch_start + b][step] for b in range(len(views))]
        predictions = torch.full((len(views), 5, 2), -10.0)
        predictions[torch.arange(len(views)), torch.tensor(rows)] = 10.0
        certainties = torch.tensor([[0.9, 0.1], [0.1, 0.9]]).T.expand(len(views), 2, 2)
        return predictions, certainties, step + 1


def test_closed_loop_success_counts_episodes_that_reach_the_goal() -> None:
    task = PartialMazeTask(size=9, route_length=8)
    rng = rng_for(11, "val", 0)
    expert = [task.episode(rng)[3] for _ in range(10)]
    assert task.closed_loop(Scripted(expert), samples=10, seed=11, batch_size=4) == 1.0
    waiting = [[mazegen.WAIT] * 8 for _ in range(10)]
    assert task.closed_loop(Scripted(waiting), samples=10, seed=11, batch_size=4) == 0.0
    late = [[mazegen.WAIT, *moves[:-1]] for moves in expert]  # the expert one step late: arrives if a step is spare
    spare = sum(moves.count(mazegen.WAIT) > 0 for moves in expert) / 10
    assert task.closed_loop(Scripted(late), samples=10, seed=11, batch_size=4) == pytest.approx(spare)


def test_evaluation_reports_closed_loop_success_and_learns_short_routes() -> None:
    """Routes of at most 2 moves in a maze of 2×2 cells: two moves straight towards the compass, then a wait. 200
    steps learn it (5 moves: chance is 0.2), and the agent then walks to the goal on its own."""
    genome, task = tiny(ticks=2, d_model=32, batch_size=16, learning_rate=0.01), PartialMazeTask(size=5, route_length=2)
    result = evaluate(genome, task, EvalBudget(steps=200, val_samples=64), seed=2, want_checkpoint=True)
    assert result.status == "ok", result
    assert result.metrics["val_accuracy"] >= 0.9  # per step, under teacher forcing
    assert result.fitness == result.metrics["closed_loop_success"] >= 0.9  # an agent is judged by what it does
    fresh = measure_state(genome, task, result.checkpoint, samples=32, seed=99)
    assert fresh >= 0.9  # fresh episodes, judged by the same closed loop


@pytest.mark.parametrize(("params", "match"), [
    ({"size": 8}, "params.size = 8: allowed is an odd integer"),
    ({"window": 4}, "params.window = 4: allowed is an odd integer"),
    ({"window": 1}, r"params.window = 1: allowed is an integer >= 3 and <= 15"),
    ({"route_length": 0}, "params.route_length = 0"),
    ({"sight": 3}, r"params.sight = 3 is not a parameter; allowed are \["),
    ({"expert": "oracle"}, r"params.expert = 'oracle': allowed is one of \['explore', 'wall', 'shortest'\]"),
])
def test_bad_params_name_the_field(params: dict, match: str) -> None:
    with pytest.raises(TaskError, match=match):
        make_task({"name": "pomaze", "params": params})


def test_every_maze_of_the_family_shares_the_whole_ctm_so_transfers_reinitialise_nothing() -> None:
    """One move per step and a conv backbone over the window: larger mazes, longer routes and other windows all
    take the same tensors (an open-ended campaign's transfers carry the whole trained model); the wall follower's
    tasks show no compass, which changes the backbone's input channels, so that tensor starts from the child's init."""
    from ctm.inherit import task_tensors

    genome = tiny(ticks=2)
    first = TaskSpec(name="pomaze", params={"size": 7, "route_length": 4})
    for params in ({"size": 15, "route_length": 24}, {"size": 9, "route_length": 8, "window": 7}):
        assert task_tensors(genome, first, TaskSpec(name="pomaze", params=params)) == ()
    blind = task_tensors(genome, first, TaskSpec(name="pomaze", params={"size": 7, "route_length": 4,
                                                                         "expert": "wall"}))
    assert blind == ("features.backbone.embed.0.weight",)


def test_scores_count_the_route_and_the_stop_not_the_waits_that_pad_it() -> None:
    """Route of 2 moves in R = 4 steps: steps 0-1 move, step 2 waits on arriving (counted), step 3 pads."""
    task = PartialMazeTask(size=7, route_length=4)
    targets = torch.tensor([[mazegen.UP, mazegen.UP, mazegen.WAIT, mazegen.WAIT]])

    def answering(moves: list[int]) -> torch.Tensor:
        logits = torch.full((1, 4, 5, 1), -5.0)
        for step, move in enumerate(moves):
            logits[0, step, move] = 5.0
        return logits.reshape(1, 20, 1)

    padding_wrong = answering([mazegen.UP, mazegen.UP, mazegen.WAIT, mazegen.LEFT])
    scores = task.score(padding_wrong, torch.zeros(1, 2, 1), targets)
    assert scores.answer.item() == 1.0 and scores.sequence.item() == 1.0 and len(scores.correct) == 3
    no_stop = answering([mazegen.UP, mazegen.UP, mazegen.DOWN, mazegen.WAIT])
    scores = task.score(no_stop, torch.zeros(1, 2, 1), targets)
    assert scores.answer.item() == pytest.approx(2 / 3) and scores.sequence.item() == 0.0
    assert task.loss(no_stop, torch.zeros(1, 2, 1), targets) > task.loss(padding_wrong, torch.zeros(1, 2, 1), targets)

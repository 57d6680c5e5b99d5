"""Campaign files: one YAML describes the task, genome space, strategy, descriptors, budgets, workers, tracking.

The file is checked completely at start-up, before any evaluation runs: its structure here (pydantic), the genome space
by :mod:`genome.space`, and the strategy, descriptors, task and workers by their own factories
(:func:`validate_components`). Every error names the file, the field, the value (cut short) and what is allowed. The
file is read bounded (:mod:`genome.textio`: regular UTF-8 file, size cap, YAML alias and nesting caps);
:func:`check_places` checks the places it will write (:mod:`search.campaign.checks`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ctm.result import EvalBudget, TaskSpec, increasing_steps
from genome import GenomeError, GenomeSpace
from genome.errors import quoted
from genome.textio import FileReadError, load_yaml_file
from search.campaign.checks import check_output_dir, tracking_uri_problem
from search.descriptors import Descriptor, make_descriptors
from search.errors import ConfigError, FieldError
from search.paths import directory_problem
from search.strategies import Strategy, make_strategy
from workers import WorkersConfig

MAX_NAME_CHARS = 191  # the campaign id "<name>-xxxxxxxx" is at most 200 characters (MLflow run names and tags)
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
PROCESS_FROM = 10_000  # tracking.consumers auto: a process of their own above this many evaluations


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskSection(_Section):
    name: str = Field(min_length=1, description="parity, maze, sort, array, or module:Class")
    params: dict[str, Any] = Field(default_factory=dict)

    def spec(self) -> TaskSpec:
        return TaskSpec(name=self.name, params=dict(self.params))


class StrategySection(_Section):
    name: str = Field(min_length=1)
    settings: dict[str, Any] = Field(default_factory=dict)


class FidelitySection(_Section):
    """Fidelity rungs (asynchronous successive halving, :mod:`search.campaign.rungs`): ``rungs``, cumulative training
    steps (the first is ``evaluation.steps``), or ``factor`` and ``max_steps`` (``steps, steps*factor, ...``)."""

    rungs: list[int] | None = Field(default=None, min_length=2, max_length=20)
    factor: float | None = Field(default=None, ge=1.5, le=100)
    max_steps: int | None = Field(default=None, ge=2)
    eta: float = Field(default=3.0, gt=1, le=100, description="promote the top 1/eta of each rung")
    promote: Literal["continue", "fresh"] = Field(default="continue", description="continue: from the genome's "
        "checkpoint of the rung below (its seed); fresh: from scratch with a fresh seed (costs the whole rung)")
    cell_share: float = Field(default=0.0, ge=0, lt=1, description="share of steps to take each cell's elite up")


class RepeatSection(_Section):
    """Re-evaluation with fresh seeds: the best genomes get ``seeds`` seeds, using at most ``share`` of the training
    steps (a repeat trains from scratch to the top rung); what is reported as best is a mean over at least
    ``seeds`` seeds once any genome has them."""

    seeds: int = Field(default=3, ge=2, le=100)
    share: float = Field(default=0.15, gt=0, lt=1)


class EvaluationSection(_Section):
    """The training budget of one fitness evaluation (see :class:`ctm.result.EvalBudget`); with ``fidelity``,
    the budget of the first rung."""

    steps: int | None = Field(default=200, ge=1)
    seconds: float | None = Field(default=None, gt=0)
    val_samples: int = Field(default=512, ge=1)
    exit_threshold: float = Field(default=0.8, gt=0, le=1)
    warmup_steps: int = Field(default=0, ge=0)
    grad_clip: float = Field(default=1.0, gt=0)
    fidelity: FidelitySection | None = None
    repeats: RepeatSection | None = None
    inherit: Literal["none", "parent"] = Field(
        default="none", description="parent: a child starts from its parent's trained weights (ctm.inherit)")

    @model_validator(mode="after")
    def _some_limit(self) -> EvaluationSection:
        if self.steps is None and self.seconds is None:
            raise ValueError("set steps or seconds (or both): an evaluation needs a limit")
        f = self.fidelity
        if f is not None:
            if self.steps is None:
                raise ValueError("fidelity rungs count training steps: set evaluation.steps (the first rung)")
            if (f.rungs is None) == (f.factor is None):
                raise ValueError("fidelity: give either rungs: [steps, ...] or factor and max_steps")
            if f.factor is not None and (f.max_steps is None or f.max_steps <= self.steps):
                raise ValueError(f"fidelity.max_steps = {f.max_steps}: allowed: above evaluation.steps = {self.steps}")
            rungs = increasing_steps(self.rungs(), field="fidelity.rungs")
            if rungs[0] != self.steps:
                raise ValueError(f"fidelity.rungs = {f.rungs}: allowed is increasing step counts starting at "
                                 f"evaluation.steps = {self.steps}")
        return self

    flat = property(lambda self: len(self.rungs()) == 1 and (self.repeats is None or self.repeats.seeds <= 1),
                    doc="One rung and one seed: no genome is ever evaluated twice (no promotion, no repeat).")

    def rungs(self) -> list[int]:
        """The cumulative training steps of each fidelity rung (one rung, ``[steps]``, without fidelity)."""
        f = self.fidelity
        if f is None or self.steps is None:
            return [self.steps or 0]
        if f.rungs is not None:
            return list(f.rungs)
        assert f.factor is not None and f.max_steps is not None
        out = [self.steps]
        while round(out[-1] * f.factor) <= f.max_steps:
            out.append(round(out[-1] * f.factor))
        return out

    def budget(self) -> EvalBudget:
        return EvalBudget(**self.model_dump(exclude={"fidelity", "repeats", "inherit"}))


class BudgetSection(_Section):
    """When the campaign stops; both unset means open-ended (until Ctrl-C)."""

    evaluations: int | None = Field(default=None, ge=1)
    wall_time_s: float | None = Field(default=None, gt=0)
    steps: int | None = Field(default=None, ge=1, description="total optimizer steps trained by all evaluations "
                              "(compute); a continued evaluation counts only the steps it adds")


class AxisSection(_Section):
    """A difficulty parameter of a task family, whole values in [``min``, ``max``]: a new task moves it by ``step`` ×
    (-2, -1, +1, +2), clipped; by ``fine_step`` × the same once no coarse move is new and the frontier stopped."""

    min: int = Field(ge=0)
    max: int = Field(ge=0)
    step: int = Field(default=1, ge=1)
    fine_step: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> AxisSection:
        if self.max <= self.min:
            raise ValueError(f"max = {self.max}: allowed is a value above min = {self.min}")
        if self.fine_step is not None and self.fine_step >= self.step:
            raise ValueError(f"fine_step = {self.fine_step}: allowed is a whole number below step = {self.step}")
        return self


class OpenEndedSection(_Section):
    """An open-ended campaign (:mod:`search.open_ended`): tasks of one family that grow harder as their archives
    master them. ``task.params`` is the first task; ``axes`` the parameters new tasks change."""

    axes: dict[str, AxisSection] = Field(min_length=1, description="difficulty parameters: {min, max, step, fine_step}")
    solved: float = Field(default=0.95, description="a task is solved when its best reaches this fitness")
    criterion: tuple[float, float] = Field(default=(0.6, 0.95), description="minimal criterion: [low, high)")
    reproduce: float = Field(default=0.8, description="a task may parent new tasks once its best reaches this")
    max_active: int = Field(default=3, ge=1, le=64, description="active tasks at once; see stall_rounds")
    stall_rounds: int = Field(default=3, ge=0, description="a new task retires the oldest solved one, else one "
                              "whose best rose < stall_delta over its last stall_rounds slices (0: never unsolved)")
    stall_delta: float = Field(default=0.01, ge=0, description="the rise of a task's best that is progress")
    slice: int = Field(default=8, ge=1, description="evaluations of each active task per round")
    allocation: Literal["equal", "progress"] = Field(
        default="equal", description="how a round's slice × tasks evaluations are shared: equally, or by each "
        "task's rise over its last stall_rounds slices (3 when 0), a third of an equal share at least")
    new_tasks_every: int = Field(default=2, ge=1, description="rounds between two generations of candidates")
    candidates: int = Field(default=3, ge=1, le=32, description="candidate tasks per generation")
    admit: int = Field(default=1, ge=1, le=32, description="candidates admitted per generation at most")
    screen_elites: int = Field(default=4, ge=1, le=32, description="elites fine-tuned on each candidate")
    transfer_every: int = Field(default=2, ge=0, description="rounds between transfers of elites (0: never)")
    novelty_k: int = Field(default=3, ge=1, description="novelty of a task: mean distance to its k nearest")
    novelty_min: float = Field(default=0.0, ge=0, description="candidates less novel than this are refused")

    @field_validator("criterion")
    @classmethod
    def _band(cls, band: tuple[float, float]) -> tuple[float, float]:
        if not band[0] < band[1]:
            raise ValueError("allowed is [low, high] with low < high (fitness values)")
        return band


class TrackingSection(_Section):
    uri: str | None = Field(default=None, description="MLflow tracking URI; default: sqlite in the campaign dir")
    experiment: str | None = Field(default=None, min_length=1, max_length=256)
    checkpoints: Literal["none", "elites", "all"] = "none"
    log_every: int = Field(default=1, ge=1, description="log campaign metrics every N evaluations")
    retry_after_s: float = Field(default=30.0, gt=0, le=3600, description="first wait before trying an "
                                 "unreachable server again (doubling while it stays away, at most 10 minutes)")
    consumers: Literal["auto", "thread", "process"] = Field(
        default="auto", description="where MLflow and the pictures follow the journal: threads of the driver, or "
        f"a process of their own (no shared interpreter lock); auto: a process for campaigns of more than "
        f"{PROCESS_FROM:,} evaluations or with no budget at all")

    def consumers_process(self, budget: BudgetSection) -> bool:
        """Whether this campaign's consumers run in their own process (``consumers``, ``auto`` resolved)."""
        if self.consumers != "auto":
            return self.consumers == "process"
        unbounded = budget.evaluations is None and budget.steps is None and budget.wall_time_s is None
        return unbounded or (budget.evaluations or 0) > PROCESS_FROM

    @field_validator("uri")
    @classmethod
    def _known_scheme(cls, uri: str | None) -> str | None:
        if uri is not None and (problem := tracking_uri_problem(uri)):
            raise ValueError(problem)
        return uri


class CampaignConfig(_Section):
    name: str = Field(description=f"1 to {MAX_NAME_CHARS} letters, digits, '_', '.', '-'")
    seed: int = Field(default=0, ge=0)
    output_dir: str | None = Field(default=None, description="campaign directory; default campaigns/<name>")
    task: TaskSection
    genome_space: dict[str, Any] = Field(default_factory=dict)
    strategy: StrategySection
    descriptors: list[dict[str, Any]] = Field(default_factory=list)
    evaluation: EvaluationSection = Field(default_factory=EvaluationSection)
    budget: BudgetSection = Field(default_factory=BudgetSection)
    workers: dict[str, Any] = Field(default_factory=dict)
    tracking: TrackingSection = Field(default_factory=TrackingSection)
    snapshot_every: int = Field(default=100, ge=1, description="save the loop state every N evaluations and at stops")
    plot_every_s: float = Field(default=60.0, gt=0, description="redraw the pictures every N seconds and at the end")
    open_ended: OpenEndedSection | None = Field(default=None, description="tasks that grow harder (search.open_ended)")

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not (1 <= len(name) <= MAX_NAME_CHARS and _NAME.match(name)) or name in (".", ".."):
            raise ValueError(f"allowed is 1 to {MAX_NAME_CHARS} letters, digits, '_', '.' or '-' (it names the "
                             "campaign's directory and MLflow runs)")
        return name

    @field_validator("genome_space", mode="before")
    @classmethod
    def _space_mapping(cls, value: Any) -> Any:
        return {} if value is None else value

    def space(self) -> GenomeSpace:
        return GenomeSpace.from_config(self.genome_space)

    def searcher(self) -> tuple[GenomeSpace, list[Descriptor], Strategy]:
        """The genome space, the archive's descriptors and a fresh strategy this file describes (a campaign
        restores the strategy's state from its journal; validation and the consumers' process only build it)."""
        space = self.space()
        descriptors = make_descriptors(self.descriptors, field="descriptors", space=space)
        return space, descriptors, make_strategy(self.strategy.name, space=space, seed=self.seed,
                                                 descriptors=descriptors, settings=dict(self.strategy.settings),
                                                 field="strategy")

    def directory(self, base: Path | None = None) -> Path:
        path = Path(self.output_dir) if self.output_dir else Path("campaigns") / self.name
        return path if path.is_absolute() or base is None else base / path

    def summary(self) -> str:
        budget = (f"{self.budget.evaluations} evaluations" if self.budget.evaluations else "no evaluation limit")
        if self.budget.steps:
            budget += f", at most {self.budget.steps:,} training steps"
        if self.budget.wall_time_s:
            budget += f", at most {self.budget.wall_time_s:g} s"
        if (f := self.evaluation.fidelity) is not None:
            cells = f", cell promotions <= {f.cell_share:.0%} of the steps" if f.cell_share else ""
            budget += f", fidelity rungs {self.evaluation.rungs()} (eta {f.eta:g}, promotions {f.promote}{cells})"
        if self.evaluation.inherit != "none":
            budget += ", children inherit their parent's weights"
        if self.open_ended is not None:
            budget += f", open-ended over {', '.join(self.open_ended.axes)} (docs/open_ended.md)"
        return (f"task {self.task.name}, strategy {self.strategy.name}, {len(self.space().evolvable)} searched genes, "
                f"{len(self.descriptors)} descriptors, {budget}")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def _format_pydantic(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        value = err.get("input")
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown field (check the spelling; see experiments/quickstart.yaml for every field)"
        elif err["type"] == "missing":
            lines.append(f"  - {field}: required field is missing")
            continue
        lines.append(f"  - {field} = {quoted(value)}: {message}")
    return f"{source}: invalid campaign file:\n" + "\n".join(lines)


def parse_campaign_config(data: Any, *, source: str = "<campaign>", components: bool = True) -> CampaignConfig:
    """Validate a mapping (e.g. from YAML) into a config; raise :class:`ConfigError` naming every problem.
    ``components=False`` skips building the task, strategy and workers (:func:`validate_components`, which imports
    torch): for readers of a campaign that was validated when it started."""
    if data is None:
        raise ConfigError(f"{source}: the file is empty; a campaign file is a YAML mapping (name, task, strategy, "
                          "...: see experiments/quickstart.yaml)")
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a campaign file must be a YAML mapping (name, task, strategy, ...), got "
                          f"{type(data).__name__} {quoted(data, 60)}")
    try:
        config = CampaignConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_pydantic(exc, source)) from None
    try:
        config.space()
    except GenomeError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    if components:
        validate_components(config, source=source)
    return config


def load_campaign_config(path: str | Path, *, components: bool = True) -> CampaignConfig:
    """Read and validate a campaign file; :class:`ConfigError` naming the file for anything wrong with it."""
    path = Path(path)
    try:
        data = load_yaml_file(path, what="campaign file")
    except FileReadError as exc:
        raise ConfigError(str(exc)) from None
    return parse_campaign_config(data, source=str(path), components=components)


def check_places(config: CampaignConfig, *, source: str, directory: Path | None = None,
                 field: str = "output_dir") -> None:
    """Check every place on this machine the campaign will write: its directory (``directory`` overrides
    ``output_dir``) and the folder of a ``sqlite:///`` tracking store; :class:`FieldError` for the first that
    cannot be created or written."""
    check_output_dir(directory if directory is not None else config.directory(),
                     source="" if field.startswith("--") else source, field=field)  # an option names itself
    uri = config.tracking.uri
    if uri and uri.startswith("sqlite:///"):
        folder = Path(uri[len("sqlite:///"):]).expanduser().parent
        problem = directory_problem(folder)
        if problem is not None:
            raise FieldError(f"{source}: tracking.uri", uri, f"a database in a folder you can create and write to "
                             f"({folder}: {problem})")


def validate_components(config: CampaignConfig, *, source: str) -> None:
    """Build the task, descriptors, strategy and workers config once, so that their errors surface now."""
    from ctm import make_task

    try:
        make_task(config.task.spec())
        for name, axis in (config.open_ended.axes.items() if config.open_ended else ()):
            value = config.task.params.get(name)
            if isinstance(value, bool) or not isinstance(value, int) or not axis.min <= value <= axis.max:
                what = f"task.params.{name} = {quoted(value)}" if value is not None else f"task.params.{name}: missing"
                raise ValueError(f"{what}: allowed is a whole number within open_ended.axes.{name} [{axis.min}, "
                                 f"{axis.max}] (the first task's value of each difficulty axis)")
            for end in (axis.min, axis.max):
                try:
                    make_task(TaskSpec(name=config.task.name, params={**config.task.params, name: end}))
                except (ValueError, TypeError) as exc:
                    raise ValueError(f"open_ended.axes.{name} = [{axis.min}, {axis.max}]: the task with {name} = "
                                     f"{end} cannot be built ({exc}); allowed is a range the task accepts") from None
        share = config.evaluation.fidelity.cell_share if config.evaluation.fidelity else 0.0
        if config.searcher()[2].qd is None and share > 0:
            raise ValueError(f"evaluation.fidelity.cell_share = {share:g}: allowed only with a strategy that keeps an "
                             f"archive (map_elites, surrogate_elites, ...), not {config.strategy.name}")
        WorkersConfig.from_dict(config.workers)
    except (ValueError, TypeError, ImportError) as exc:
        raise ConfigError(f"{source}: {exc}") from None

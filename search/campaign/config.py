"""Campaign files: one YAML describes the task, genome space, strategy, descriptors, budgets, workers, tracking.

The file is checked completely at start-up, before any evaluation runs: its structure here (pydantic), the
genome space by :mod:`genome.space`, and the strategy, descriptors, task and workers by their own factories
(:func:`validate_components`). Every error names the file, the field, the value and what is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ctm.result import EvalBudget, TaskSpec
from genome import GenomeError, GenomeSpace
from search.descriptors import make_descriptors
from search.errors import ConfigError
from search.strategies import make_strategy
from workers import WorkersConfig


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


class EvaluationSection(_Section):
    """The training budget of one fitness evaluation (see :class:`ctm.result.EvalBudget`)."""

    steps: int | None = Field(default=200, ge=1)
    seconds: float | None = Field(default=None, gt=0)
    val_samples: int = Field(default=512, ge=1)
    exit_threshold: float = Field(default=0.8, gt=0, le=1)
    warmup_steps: int = Field(default=0, ge=0)
    grad_clip: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _some_limit(self) -> EvaluationSection:
        if self.steps is None and self.seconds is None:
            raise ValueError("set steps or seconds (or both): an evaluation needs a limit")
        return self

    def budget(self) -> EvalBudget:
        return EvalBudget(**self.model_dump())


class BudgetSection(_Section):
    """When the campaign stops; both unset means open-ended (until Ctrl-C)."""

    evaluations: int | None = Field(default=None, ge=1)
    wall_time_s: float | None = Field(default=None, gt=0)


class TrackingSection(_Section):
    uri: str | None = Field(default=None, description="MLflow tracking URI; default: sqlite in the campaign dir")
    experiment: str | None = None
    checkpoints: Literal["none", "elites", "all"] = "none"
    log_every: int = Field(default=1, ge=1, description="log campaign metrics every N evaluations")
    retry_after_s: float = Field(default=30.0, gt=0, le=3600, description="first wait before trying an "
                                 "unreachable server again (doubling while it stays away, at most 10 minutes)")


class CampaignConfig(_Section):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
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
    snapshot_every: int = Field(default=100, ge=1, description="snapshot the loop state every N evaluations (and "
                                "at every stop); the snapshot is small, the journal holds the rest")
    plot_every_s: float = Field(default=60.0, gt=0, description="redraw the pictures every N seconds (and at the "
                                "end), beside the loop")

    @field_validator("genome_space", mode="before")
    @classmethod
    def _space_mapping(cls, value: Any) -> Any:
        return {} if value is None else value

    def space(self) -> GenomeSpace:
        return GenomeSpace.from_config(self.genome_space)

    def directory(self, base: Path | None = None) -> Path:
        path = Path(self.output_dir) if self.output_dir else Path("campaigns") / self.name
        return path if path.is_absolute() or base is None else base / path

    def summary(self) -> str:
        budget = (f"{self.budget.evaluations} evaluations" if self.budget.evaluations else "open-ended")
        if self.budget.wall_time_s:
            budget += f", at most {self.budget.wall_time_s:g} s"
        space = self.space()
        return (f"task {self.task.name}, strategy {self.strategy.name}, {len(space.evolvable)} searched genes, "
                f"{len(self.descriptors)} descriptors, {budget}")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def _format_pydantic(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        value = err.get("input")
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown field (check the spelling; see experiments/quickstart.yaml for every field)"
        elif err["type"] == "missing":
            message = "required field is missing"
            lines.append(f"  - {field}: {message}")
            continue
        lines.append(f"  - {field} = {value!r}: {message}")
    return f"{source}: invalid campaign file:\n" + "\n".join(lines)


def parse_campaign_config(data: Any, *, source: str = "<campaign>") -> CampaignConfig:
    """Validate a mapping (e.g. from YAML) into a config; raise :class:`ConfigError` naming every problem."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a campaign file must be a YAML mapping, got {type(data).__name__}")
    try:
        config = CampaignConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_pydantic(exc, source)) from None
    try:
        config.space()
    except GenomeError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    validate_components(config, source=source)
    return config


def load_campaign_config(path: str | Path) -> CampaignConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such campaign file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: malformed YAML: {exc}") from None
    return parse_campaign_config(data, source=str(path))


def validate_components(config: CampaignConfig, *, source: str) -> None:
    """Build the task, descriptors, strategy and workers config once, so that their errors surface now."""
    from ctm import make_task

    try:
        make_task(config.task.spec())
        descriptors = make_descriptors(config.descriptors, field="descriptors", space=config.space())
        make_strategy(config.strategy.name, space=config.space(), seed=config.seed, descriptors=descriptors,
                      settings=dict(config.strategy.settings), field="strategy")
        WorkersConfig.from_dict(config.workers)
    except (ValueError, TypeError, ImportError) as exc:
        raise ConfigError(f"{source}: {exc}") from None

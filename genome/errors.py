"""Errors that name every offending gene, its value and what is allowed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GeneProblem:
    gene: str
    value: Any
    allowed: str

    def __str__(self) -> str:
        return f"{self.gene} = {quoted(self.value)}: allowed is {self.allowed}"


class GenomeError(ValueError):
    """An invalid genome or genome file. ``problems`` lists every offending gene at once."""

    def __init__(self, problems: list[GeneProblem], *, source: str | None = None):
        self.problems = list(problems)
        self.source = source
        where = f"{source}: " if source else ""
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{where}invalid genome ({len(self.problems)} problem(s)):\n{lines}")


class SchemaError(ValueError):
    """A genome file whose schema version this ctmevo cannot read."""


MAX_QUOTED_CHARS = 200


def quoted(value: Any, limit: int = MAX_QUOTED_CHARS) -> str:
    """``repr(value)`` cut to ``limit`` characters, so a huge value never makes a huge error message."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters)"

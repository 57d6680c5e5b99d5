"""The errors ``search`` shows to a user, in one hierarchy; each message says what to change.

::

    SearchError                      anything a user can fix; the CLI prints it without a traceback
    ├── ConfigError (ValueError)     a campaign file (or its strategy / descriptors sections) that cannot run
    │   └── FieldError               one field: "<field> = <value>: allowed is <what>"
    │       ├── DescriptorError      (search.descriptors)
    │       └── StrategyConfigError  (search.strategies.settings)
    └── CampaignError                a campaign directory that cannot be created, opened or resumed as asked
        └── CampaignStorageError     a campaign file that cannot be written (disk full, read-only directory)

The CLI exits with status 2 for all of them. Values quoted in messages are cut short (:func:`genome.errors.quoted`),
so a 10 MB value never makes a 10 MB message. Lower layers have their own errors (``genome.GenomeError``,
``workers.WorkersConfigError``, ``ctm.train.TrainError``); the CLI treats them as bad input too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genome.errors import quoted

__all__ = ["CampaignError", "CampaignStorageError", "ConfigError", "FieldError", "SearchError", "quoted"]


class SearchError(Exception):
    """A problem the user can fix; the message names it and says how."""


class ConfigError(SearchError, ValueError):
    """A campaign file (or a section of one) that cannot be run as written."""


class FieldError(ConfigError):
    """A bad value of one setting: names the field, the value (cut short) and what is allowed."""

    def __init__(self, field: str, value: Any, allowed: str):
        self.field, self.value, self.allowed = field, value, allowed
        super().__init__(f"{field} = {quoted(value)}: allowed is {allowed}")


class CampaignError(SearchError, RuntimeError):
    """A campaign directory that cannot be created, opened or resumed as asked."""


class CampaignStorageError(CampaignError):
    """A campaign file could not be written (disk full, read-only or vanished directory)."""

    def __init__(self, path: Path, exc: OSError) -> None:
        self.path, self.reason = path, exc.strerror or str(exc)
        super().__init__(f"cannot write {path}: {self.reason} (errno {exc.errno})")

"""``ctmevo validate FILE``: check a genome or campaign file without running anything.

A campaign file passes only if ``ctmevo run`` would start it: its fields, its components (task, strategy,
descriptors, workers, tracking URI) and its campaign directory (creatable and writable; nothing is created).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from search.cli.base import Command, UsageError


def _cmd_validate(args: argparse.Namespace) -> int:
    from genome.textio import FileReadError, load_yaml_file

    path = Path(args.file)
    try:
        doc = load_yaml_file(path, what="genome or campaign file")
    except FileReadError as exc:
        hint = ""
        if path.is_dir():
            hint = ("; to see the campaign in a directory: ctmevo status " + str(path) if (path / "campaign.json")
                    .exists() else "; give the campaign's .yaml file (see experiments/) or a genome file")
        raise UsageError(f"{exc}{hint}") from None
    if isinstance(doc, dict) and "genes" in doc:
        from genome import GenomeError, SchemaError
        from genome.io import genome_from_document

        try:
            genome = genome_from_document(doc, source=str(path))
        except (GenomeError, SchemaError) as exc:
            raise UsageError(str(exc)) from None
        print(f"{path}: valid genome {genome.hash}: {_genome_summary(genome, args.task)}")
        return 0
    from search.campaign.config import check_places, parse_campaign_config
    from search.errors import ConfigError

    try:
        config = parse_campaign_config(doc, source=str(path))
        check_places(config, source=str(path))
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    print(f"{path}: valid campaign '{config.name}': {config.summary()}")
    return 0


def _genome_summary(genome, task_name: str | None) -> str:
    from genome import estimate

    if task_name is None:
        task_name = "parity"
    from ctm import make_task
    from ctm.result import TaskSpec

    shape = make_task(TaskSpec(name=task_name)).shape
    cost = estimate(genome, shape)
    return (f"{genome.sizes()}, {cost.params:,} parameters and {cost.macs_per_forward:,} MACs per forward on "
            f"{task_name}")


def _setup_validate(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="a genome file (with 'genes:') or a campaign file")
    p.add_argument("--task", default=None, help="task for the genome's cost summary (default: parity)")


COMMANDS = [Command("validate", "check a genome or campaign file and print a one-line summary", _setup_validate,
                    _cmd_validate)]

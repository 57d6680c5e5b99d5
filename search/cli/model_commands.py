"""``ctmevo presets``, ``ctmevo import-reference`` and ``ctmevo export-reference``: the paper's CTMs by name, and
checkpoints of the reference implementation in and out."""

from __future__ import annotations

import argparse
from pathlib import Path

from search.cli.base import Command, UsageError, say


def cmd_presets(args: argparse.Namespace) -> int:
    from genome import PRESETS, Genome

    width, task_width = max(map(len, PRESETS)), max(len(p.task) for p in PRESETS.values())
    for name in sorted(PRESETS):
        preset, genome = PRESETS[name], Genome.preset(name)
        genes = genome.sizes()
        say(f"{name:<{width}}  {preset.task:<{task_width}}  {genes:<28}  {preset.description}")
    say("\nUse one as a genome (Genome.preset(NAME)), to seed a campaign (strategy.settings.seed_genomes: [NAME]) "
        "or as the centre of its genome space (genome_space: {centre: NAME, spread: 2}).")
    return 0


def cmd_import_reference(args: argparse.Namespace) -> int:
    from ctm.bundle import BundleError, BundleExistsError
    from ctm.reference import import_reference
    from ctm.reference_weights import ReferenceFormatError

    source = Path(args.checkpoint)
    if not source.is_file():
        raise UsageError(f"{source}: no such checkpoint file")
    try:
        out = import_reference(source, args.out, overwrite=args.force)
    except BundleExistsError as exc:
        raise UsageError(f"--out {exc.path}: the directory is not empty; choose another --out, or add --force to "
                         "replace what is there") from None
    except (ReferenceFormatError, BundleError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    say(f"imported {source} into the bundle {out}")
    say(f"  train it : ctmevo train {out} --steps 10000")
    return 0


def cmd_export_reference(args: argparse.Namespace) -> int:
    from ctm.bundle import BundleError
    from ctm.reference import export_reference
    from ctm.reference_weights import ReferenceFormatError

    try:
        out = export_reference(args.bundle, args.out)
    except (ReferenceFormatError, BundleError, ValueError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from None
    say(f"wrote {out}: a checkpoint the reference implementation loads (its state dict and args)")
    return 0


def _setup_presets(p: argparse.ArgumentParser) -> None:
    return None


def _setup_import(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="a .pt checkpoint saved by the reference implementation (parity)")
    p.add_argument("--out", required=True, help="the bundle directory to write")
    p.add_argument("--force", action="store_true", help="overwrite an existing bundle in --out")


def _setup_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", help="a bundle directory (from ctmevo export, import-reference or train)")
    p.add_argument("--out", required=True, help="the .pt file to write")


COMMANDS = [
    Command("presets", "list the paper's CTM configurations available by name", _setup_presets, cmd_presets),
    Command("import-reference", "turn a checkpoint of the reference CTM implementation into a bundle",
            _setup_import, cmd_import_reference),
    Command("export-reference", "write a bundle as a checkpoint the reference CTM implementation loads",
            _setup_export, cmd_export_reference),
]

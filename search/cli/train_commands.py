"""``ctmevo export`` and ``ctmevo train``: take an architecture out of a campaign and train it at full scale.

    ctmevo export (RUN_ID | HASH | --best [--by METRIC] | --cell CELL) [--campaign DIR] --out DIR
    ctmevo train BUNDLE_OR_GENOME.yaml [--task TASK [--param K=V ...]] [--steps N] [--device cuda] [--resume]

Bad input (a missing file, a bundle or genome from a newer schema, corrupted weights, a task whose shapes do not
match the genome or the weights, an output directory that already holds a run) exits with status 2 and a
message naming the file and what to change; existing checkpoints are never overwritten.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from search.cli.base import Command, UsageError

TRAIN_EXPERIMENT = "ctmevo-training"


# -- export --------------------------------------------------------------------------------------------------
def cmd_export(args: argparse.Namespace) -> int:
    from search.export import ExportError, export, locate

    if args.by is not None and not args.best:
        raise UsageError("--by METRIC goes with --best")
    try:
        found = locate(args.run, best=args.best, by=args.by, cell=args.cell, campaign=args.campaign,
                       tracking_uri=args.tracking_uri)
        result = export(found, args.out, register=not args.no_mlflow, overwrite=args.force,
                        registered_name=args.register_as)
    except ExportError as exc:
        raise UsageError(str(exc)) from None
    except Exception as exc:
        from search.cli.base import OperationalError
        from search.tracking.client import is_transient, server_down

        uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or "the campaign's store"
        if not (type(exc).__module__.startswith(("mlflow", "requests", "urllib3")) and is_transient(exc)):
            raise
        raise OperationalError(f"{server_down(uri, exc)}. Start it (or check --tracking-uri), then run the "
                               "command again; --no-mlflow skips registering the model") from None
    r = found.record
    print(f"exported {r.genome.hash} (fitness {found.fitness_text()}, campaign {r.campaign}) to {result.bundle}")
    print(f"  weights : {'from ' + str(found.checkpoint_source) if found.checkpoint else 'none (no checkpoint kept)'}")
    print(f"  card    : {result.bundle / 'MODEL_CARD.md'}")
    if found.run_id:
        print(f"  source  : MLflow run {found.run_id} at {found.tracking_uri}")
    if result.model_uri:
        print(f"  MLflow  : logged model {result.model_uri} (run {result.export_run_id}); with "
              f"mlflow.set_tracking_uri({found.tracking_uri!r}): mlflow.pytorch.load_model({result.model_uri!r})")
    if result.warning:
        print(f"  warning : {result.warning}")
    print(f"  train   : ctmevo train {result.bundle} --steps 10000 --device cuda")
    return 0


def _setup_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", nargs="?", help="an MLflow run id, or a genome hash (or a unique prefix of one)")
    p.add_argument("--best", action="store_true", help="the best evaluation (by fitness unless --by)")
    p.add_argument("--by", metavar="METRIC", help="with --best: a metric (val_accuracy, exit_tick_mean, ece, a "
                   "descriptor, ...); lower-is-better metrics are minimised; force with min:NAME or max:NAME")
    p.add_argument("--cell", help="the elite of this archive cell (e.g. 3_7)")
    p.add_argument("--campaign", help="the campaign directory (else MLflow alone, via --tracking-uri)")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: the campaign's, or "
                   "$MLFLOW_TRACKING_URI)")
    p.add_argument("--out", required=True, help="the bundle directory to write")
    p.add_argument("--force", action="store_true", help="overwrite an existing bundle in --out")
    p.add_argument("--no-mlflow", action="store_true", help="do not register the model in MLflow")
    p.add_argument("--register-as", metavar="NAME", help="also register it in the MLflow Model Registry as NAME")


# -- train ---------------------------------------------------------------------------------------------------
def parse_params(items: list[str] | None) -> dict[str, Any]:
    """``["length=64", "augment=false"]`` → ``{"length": 64, "augment": False}`` (values read as YAML)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--param {item!r}: allowed is KEY=VALUE, e.g. --param length=64")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def _config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    given = {"steps": args.steps, "batch_size": args.batch_size, "learning_rate": args.lr,
             "weight_decay": args.weight_decay, "warmup_steps": args.warmup, "grad_clip": args.grad_clip,
             "seed": args.seed, "eval_every": args.eval_every, "eval_samples": args.eval_samples,
             "checkpoint_every": args.checkpoint_every, "device": args.device,
             "amp": False if args.no_amp else None}
    return {k: v for k, v in given.items() if v is not None}


def _prepare(args: argparse.Namespace) -> dict[str, Any]:
    """Genome, task, model (with the bundle's weights unless --from-scratch) and provenance for ``train``."""
    from ctm.bundle import BundleError, build, is_bundle, load_bundle, make_task_from_spec, read_genome
    from ctm.result import TaskSpec

    source = Path(args.source)
    if not source.exists():
        raise UsageError(f"{source}: no such bundle directory or genome file")
    task_spec = TaskSpec(name=args.task, params=parse_params(args.param)) if args.task else None
    if task_spec is None and args.param:
        raise UsageError("--param needs --task")
    try:
        if is_bundle(source):
            bundle = load_bundle(source, task=task_spec, weights=not args.from_scratch)
            provenance = {"bundle": str(bundle.path.resolve()), **{k: v for k, v in bundle.source.items()
                                                                  if k in ("run_id", "campaign", "tracking_uri",
                                                                           "experiment_id")}}
            seed = int(bundle.manifest.get("model_seed", 0)) if args.seed is None else args.seed
            if args.from_scratch:
                bundle.model = build(bundle.genome, bundle.task, seed=seed)
            return {"genome": bundle.genome, "task": bundle.task, "task_spec": bundle.task_spec,
                    "model": bundle.model, "source": provenance, "model_seed": seed}
        if source.is_dir():
            campaign = (source / "campaign.json").exists()
            raise UsageError(f"{source} is a directory but not a bundle (no model.yaml): "
                             + (f"it is a campaign; export an architecture from it first: ctmevo export --best "
                                f"--campaign {source} --out BUNDLE_DIR" if campaign else
                                "give a bundle made by 'ctmevo export', or a genome file with --task"))
        if task_spec is None:
            raise UsageError(f"{source} is a genome file, not a bundle: say which task to train on with --task "
                             "(e.g. --task parity --param length=64)")
        genome = read_genome(source)
        task = make_task_from_spec(task_spec)
        seed = args.seed or 0
        return {"genome": genome, "task": task, "task_spec": task_spec, "model": build(genome, task, seed=seed),
                "source": {"genome_file": str(source.resolve())}, "model_seed": seed}
    except BundleError as exc:
        hint = "; train from the genome alone with --from-scratch" if "do not" in str(exc) else ""
        raise UsageError(f"{exc}{hint}") from None


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from ctm.train import TrainConfig, TrainError, saved_config, train

    try:
        torch.device(args.device or "cpu")
    except RuntimeError as exc:
        raise UsageError(f"--device {args.device!r}: {exc}") from None
    prepared = _prepare(args)
    genome, task_spec = prepared["genome"], prepared["task_spec"]
    out = Path(args.out) if args.out else Path("training") / f"{genome.hash}-{task_spec.name.replace(':', '_')}"
    overrides = _config_overrides(args)
    base = saved_config(out) if args.resume else None
    try:
        config = TrainConfig(**{**(base.to_dict() if base else {}), **overrides})
    except (TrainError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    from search.cli.train_progress import CardWriter, FanOut, ProgressLines

    uri, why = train_store(args, prepared["source"])
    print(f"MLflow: logging to {uri} ({why})" if uri else f"MLflow: not logging ({why})", flush=True)
    callback = None
    if uri:
        from search.tracking.train_logger import MlflowTrainLogger

        callback = MlflowTrainLogger(uri, experiment=args.experiment or TRAIN_EXPERIMENT, out_dir=out,
                                     source=prepared["source"])
    lines = ProgressLines() if not (args.no_progress or sys.stdout.isatty()) else None  # a log: lines, no bar
    hooks = FanOut(lines, CardWriter(source=prepared["source"], logger=callback), callback)
    try:
        result = train(prepared["model"], prepared["task"], genome=genome, task_spec=task_spec, config=config,
                       out_dir=out, resume=args.resume, callback=hooks, progress=not args.no_progress,
                       source=prepared["source"], model_seed=prepared["model_seed"])
    except TrainError as exc:
        raise UsageError(str(exc)) from None
    except KeyboardInterrupt:
        print(f"\nStopped; the last checkpoint is in {out / 'checkpoints'}.\nContinue with:  ctmevo train "
              f"{args.source} --out {out} --resume", flush=True)
        return 130
    final = {k: v for k, v in result.final.items() if isinstance(v, float)}
    print(f"trained {genome.hash} on {task_spec.name} for {result.steps} steps: "
          + ", ".join(f"{k} {v:.4g}" for k, v in final.items()))
    print(f"  bundle      : {result.bundle}  (load with ctm.bundle.load_bundle; card: MODEL_CARD.md)")
    print(f"  checkpoints : {out / 'checkpoints'}")
    if callback is not None and callback.run_id:
        print(f"  MLflow      : run {callback.run_id} at {uri}")
    return 0


def train_store(args: argparse.Namespace, source: dict[str, Any]) -> tuple[str | None, str]:
    """Where ``ctmevo train`` logs, and why: --tracking-uri, else $MLFLOW_TRACKING_URI, else the store of the
    bundle's source campaign (if it is still there), else nowhere."""
    if args.no_mlflow:
        return None, "--no-mlflow"
    if args.tracking_uri:
        return args.tracking_uri, "--tracking-uri"
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"], "$MLFLOW_TRACKING_URI"
    uri = str(source.get("tracking_uri") or "")
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
        return None, f"the bundle's source store {uri} is gone (moved?); pass --tracking-uri"
    if uri:
        return uri, f"the store of source campaign {source.get('campaign') or '?'}, beside its evaluation run"
    return None, "no --tracking-uri, no $MLFLOW_TRACKING_URI, and the bundle names no store"


def _setup_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="a bundle directory (or its model.yaml) from 'ctmevo export', or a genome file")
    p.add_argument("--task", help="task name (parity, maze, sort, array, module:Class); default: the bundle's")
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="a task parameter (repeatable)")
    p.add_argument("--steps", type=int, help="optimizer steps (default 10000)")
    p.add_argument("--batch-size", type=int, help="default: the genome's batch_size gene")
    p.add_argument("--lr", type=float, help="peak learning rate (default: the genome's learning_rate gene)")
    p.add_argument("--weight-decay", type=float, help="AdamW weight decay (default 0)")
    p.add_argument("--warmup", type=int, help="linear warm-up steps before the cosine decay (default min(500, "
                   "steps/10))")
    p.add_argument("--grad-clip", type=float, help="gradient norm clip (default 1.0; 0 = off)")
    p.add_argument("--seed", type=int, help="data stream and dropout seed (default 0)")
    p.add_argument("--eval-every", type=int, help="validate every N steps (default 1000)")
    p.add_argument("--eval-samples", type=int, help="validation samples (default 1024)")
    p.add_argument("--checkpoint-every", type=int, help="checkpoint every N steps (default 1000)")
    p.add_argument("--device", help="cpu (default), cuda, cuda:1, ...")
    p.add_argument("--no-amp", action="store_true", help="no bf16 autocast on CUDA")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
    p.add_argument("--out", help="training directory (default training/HASH-TASK)")
    p.add_argument("--from-scratch", action="store_true", help="ignore the bundle's weights; start from a fresh "
                   "initialisation (needed when --task changes the shapes)")
    p.add_argument("--tracking-uri", default=None, help="log to this MLflow store (default $MLFLOW_TRACKING_URI, "
                   "else the store of the bundle's source campaign)")
    p.add_argument("--experiment", help=f"MLflow experiment (default {TRAIN_EXPERIMENT})")
    p.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (on a terminal) or progress lines "
                   "(in a log)")


COMMANDS = [
    Command("export", "write a self-contained bundle (genome, model, weights, card) of an evaluated architecture",
            _setup_export, cmd_export),
    Command("train", "train an exported architecture at full scale (checkpoints, resume, evaluation, MLflow)",
            _setup_train, cmd_train),
]

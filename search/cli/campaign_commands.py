"""Campaign sub-commands of ``ctmevo``: run, resume, status, sync, lineage."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from search.cli.base import Command, UsageError, open_campaign, say

if TYPE_CHECKING:
    from search.campaign.loop import Campaign


def _run_campaign(campaign: Campaign, *, offline: bool) -> int:
    from search.errors import SearchError
    from search.records import best_record
    from search.tracking.tracker import TrackingURIError
    from workers import PoolDisconnected

    try:
        campaign.run(offline_ok=offline)
    except SearchError as exc:
        raise UsageError(str(exc)) from None
    except PoolDisconnected as exc:
        print(f"ctmevo: lost the Ray cluster: {exc}\nEvery completed evaluation is saved. When the cluster is "
              f"back: ctmevo resume {campaign.paths.root}", file=sys.stderr)
        return 1
    except TrackingURIError as exc:
        raise UsageError(f"{exc}\nNothing was evaluated. Start the tracking server or fix tracking.uri in "
                         f"{campaign.paths.config}, then: ctmevo resume {campaign.paths.root}  (or add --offline "
                         "to run now and send the records later with ctmevo sync)") from None
    except KeyboardInterrupt:
        say(f"\nStopped after {campaign.progress.done} evaluations; the state is saved.\n"
            f"Continue with:  ctmevo resume {campaign.paths.root}")
        return 130
    best = best_record(campaign.records)
    uri = campaign.tracking_uri
    say(f"\nCampaign '{campaign.config.name}' finished: {campaign.progress.done} evaluations "
        f"({campaign.progress.failures} failed) in {campaign.progress.elapsed_s:.0f} s.")
    say(f"  campaign directory : {campaign.paths.root}")
    if best is not None:
        say(f"  best genome        : {best.result.genome_hash}  fitness {best.result.fitness:.4f}  "
            f"(ctmevo lineage {best.result.genome_hash} --tracking-uri {uri})")
    say(f"  archive picture    : {campaign.paths.plots / 'archive.png'}")
    say(f"  archive table      : {campaign.paths.plots / 'archive.csv'}")
    if uri.startswith("sqlite:///"):
        say(f"  MLflow UI          : mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000")
    else:
        say(f"  MLflow             : {uri}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from search.campaign.config import check_places, load_campaign_config
    from search.campaign.loop import start
    from search.errors import SearchError

    try:
        config = load_campaign_config(Path(args.file))  # every message about the file before anything is created
        check_places(config, source=str(args.file), directory=Path(args.dir) if args.dir else None,
                     field="--dir" if args.dir else "output_dir")
        _check_cluster_answers(config.workers, source=str(args.file))
        campaign = start(Path(args.file), directory=Path(args.dir) if args.dir else None, fresh=args.fresh)
    except (SearchError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from None
    return _run_campaign(campaign, offline=args.offline)


def _check_cluster_answers(workers: dict, *, source: str) -> None:
    """Before the campaign directory exists: a ``workers.address`` where nothing answers is an operational
    failure (exit 1) that a plain re-run fixes once the cluster is up."""
    from search.cli.base import OperationalError
    from workers.reach import address_problem

    address = workers.get("address")
    if workers.get("backend", "ray") != "ray" or not isinstance(address, str):
        return
    if address == "auto":
        from workers.cluster_info import bootstrap_address

        address = bootstrap_address(address)
    problem = address_problem(address)
    if problem is not None:
        raise OperationalError(f"{source}: workers.address = {workers['address']!r}: {problem}. Nothing was "
                               "created: start the Ray cluster (ray start --head) or fix workers.address, then run "
                               "the same command again")


def cmd_resume(args: argparse.Namespace) -> int:
    campaign = open_campaign(args.dir)
    if campaign.finished() and not args.more:
        say(f"{args.dir}: the campaign has already spent its budget ({campaign.progress.done} evaluations); "
               "raise budget.evaluations in campaign.yaml to continue")
        return 0
    return _run_campaign(campaign, offline=args.offline)


def cmd_status(args: argparse.Namespace) -> int:
    from search.records import ranked

    campaign = open_campaign(args.dir)
    p = campaign.progress
    m = p.metrics
    say(f"campaign {campaign.config.name} ({campaign.campaign_id}) in {campaign.paths.root}")
    budget = campaign.config.budget.evaluations
    say(f"  evaluations: {p.done}{f' of {budget}' if budget else ''}, failed {p.failures}, "
           f"to re-submit on resume {campaign.pending}, elapsed {p.elapsed_s:.0f} s")
    for key in ("best_fitness", "coverage", "qd_score", "archive_size", "novelty_archive_size"):
        if key in m:
            say(f"  {key}: {m[key]:.4g}")
    best = ranked(campaign.records)[: args.top]
    if best:
        say("  best genomes:")
        for r in best:
            g = r.genome
            say(f"    {r.result.genome_hash}  fitness {r.result.fitness:.4f}  T={g.ticks} M={g.memory_length} "
                   f"D={g.d_model} cell={campaign.strategy.cell_of(r.result.genome_hash)}")
    say(f"  archive picture: {campaign.paths.plots / 'archive.png'}")
    say(f"  tracking: {campaign.tracking_uri}")
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    from search.cli.base import OperationalError
    from search.tracking import Tracker
    from search.tracking.spool import Spool
    from search.tracking.tracker import MAX_ATTEMPTS, TrackingURIError

    campaign = open_campaign(args.dir)
    uri = campaign.tracking_uri
    spool = Spool(campaign.paths.spool)
    before = len(spool)
    if before == 0:
        say(f"0 spooled record(s) sent to {uri}; 0 still pending (nothing waited)")
        return 0
    quiet = _Quiet()  # the tracker's "records are spooled" start-up warning: we say it better below
    logging.getLogger("ctmevo.tracking").addFilter(quiet)
    try:
        tracker = Tracker(tracking_uri=uri, campaign_id=campaign.campaign_id,
                          experiment_name=campaign.config.tracking.experiment or campaign.config.name,
                          spool_dir=campaign.paths.spool, offline_ok=True)
    except TrackingURIError as exc:
        raise UsageError(f"{exc}\n{before} record(s) still wait in {spool.path}") from None
    finally:
        logging.getLogger("ctmevo.tracking").removeFilter(quiet)
    sent = tracker.replay(force=True) if tracker.online else 0
    after = tracker.pending()
    if after and not tracker.online:
        raise OperationalError(f"the MLflow tracking server at {uri} does not answer; {sent} record(s) sent, "
                               f"{after} still wait in {spool.path}. Start the tracking server (or fix tracking.uri "
                               f"in {campaign.paths.config}), then run again: ctmevo sync {args.dir}")
    say(f"{sent} spooled record(s) sent to {uri}; {after} still pending")
    if after:
        say(f"  MLflow refused some records (see the warnings above); run 'ctmevo sync {args.dir}' to retry them "
            f"(after {MAX_ATTEMPTS} refusals a record is set aside in {spool.rejected_path})")
    return 0 if after == 0 else 1


class _Quiet:
    """A logging filter dropping the tracker's 'unavailable during start-up' warning (sync says it itself)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "unavailable during start-up" not in record.getMessage()


def cmd_lineage(args: argparse.Namespace) -> int:
    from search.campaign.config import tracking_uri_problem
    from search.cli.base import OperationalError
    from search.tracking.client import down_reason, is_transient, server_down
    from search.tracking.lineages import LineageError, lineage, lineage_from_records

    campaign = None
    uri = args.tracking_uri  # explicit --tracking-uri, then --campaign, then $MLFLOW_TRACKING_URI
    if uri is None and args.campaign:
        campaign = open_campaign(args.campaign)
        uri, args.campaign_id = campaign.tracking_uri, campaign.campaign_id
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri is None:
        raise UsageError("say where the runs are: --tracking-uri URI (or --campaign DIR, or MLFLOW_TRACKING_URI)")
    problem = tracking_uri_problem(uri)
    if problem:
        raise UsageError(f"--tracking-uri = {uri!r}: {problem}")
    try:
        if campaign is not None and uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists():
            raise FileNotFoundError(f"{uri[len('sqlite:///'):]} does not exist")  # never create an empty store
        graph = lineage(uri, args.run, depth=args.depth, campaign=args.campaign_id)
    except LineageError as exc:
        raise UsageError(str(exc)) from None
    except Exception as exc:
        if not (is_transient(exc) or isinstance(exc, FileNotFoundError)):
            raise
        if campaign is None:
            raise OperationalError(f"{server_down(uri, exc)}. Start it (or check --tracking-uri), then run the "
                                   "command again") from None
        print(f"ctmevo lineage: MLflow at {uri} cannot be read ({down_reason(exc)}); "
              f"the lineage comes from {campaign.paths.journal} (no run ids)", file=sys.stderr)
        try:
            graph = lineage_from_records(campaign.records, args.run, depth=args.depth)
        except LineageError as inner:
            raise UsageError(str(inner)) from None
    if args.format == "tree":
        say(graph.to_tree_text())
        return 0
    out = Path(args.out or f"lineage-{args.run[:16]}.{args.format}")
    if args.format == "dot":
        out.write_text(graph.to_dot())
    elif args.format == "html":
        out.write_text(graph.to_html())
    else:
        graph.to_png(out)
    say(f"wrote {out}")
    return 0


def _setup_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="campaign YAML file (see experiments/)")
    p.add_argument("--dir", help="campaign directory (default: output_dir from the file, or campaigns/NAME)")
    p.add_argument("--fresh", action="store_true", help="delete an earlier campaign in that directory first")
    _add_offline(p)


def _add_offline(p: argparse.ArgumentParser) -> None:
    p.add_argument("--offline", action="store_true",
                   help="start even if the MLflow server is unreachable; records are spooled for 'ctmevo sync'")


def _setup_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", help="a campaign directory made by 'ctmevo run'")


def _setup_resume(p: argparse.ArgumentParser) -> None:
    _setup_dir(p)
    _add_offline(p)
    p.add_argument("--more", action="store_true", help=argparse.SUPPRESS)


def _setup_status(p: argparse.ArgumentParser) -> None:
    _setup_dir(p)
    p.add_argument("--top", type=int, default=5, help="how many of the best genomes to list (default 5)")


def _setup_lineage(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="an MLflow run id, or a genome hash (or a unique prefix of one)")
    p.add_argument("--depth", type=int, default=None, help="generations to go back (default: to the founders)")
    p.add_argument("--format", choices=("tree", "dot", "html", "png"), default="tree")
    p.add_argument("--out", help="output file for dot/html/png (default lineage-RUN.FORMAT)")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI (default: the --campaign's store, else $MLFLOW_TRACKING_URI)")
    p.add_argument("--campaign", help="read the tracking URI from this campaign directory")
    p.set_defaults(campaign_id=None)


COMMANDS = [
    Command("run", "start a search campaign from a YAML file", _setup_run, cmd_run),
    Command("resume", "continue a stopped campaign exactly where it stopped", _setup_resume, cmd_resume),
    Command("status", "summarise a running or stopped campaign", _setup_status, cmd_status),
    Command("sync", "re-send MLflow records spooled while the tracking server was away", _setup_dir, cmd_sync),
    Command("lineage", "print or draw the ancestry of an evaluated genome", _setup_lineage, cmd_lineage),
]
